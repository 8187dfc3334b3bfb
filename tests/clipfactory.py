"""Tiny generated data sets for the loader tests: a few short VP9 clips in the project layout.

Nothing is downloaded: each clip comes from an ffmpeg lavfi source (moving, asymmetric content, so
flips, rotations and frame order are visible), encoded the way the loaders expect it (VP9 in .mp4,
yuv420p, constant frame rate, a 4-frame GOP, no hidden/alt-ref frames), and its PNG frames are
extracted with ffmpeg exactly as tools/extract_frames.py names them (000001.png, 1-based).

The session fixtures that use these helpers (`tiny_data_dir`, `demo_source`) live in conftest.py, so
each is built once per test session. `build_data_dir(..., codec="h264")` makes the same clips in
H.264 (no B-frames) for DALI's GPU readers (NVDEC).
"""
from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vsrvfi.core import layout
from vsrvfi.core.ffmpeg import ffmpeg_binary
from vsrvfi.tools.extract_frames import extract_clip

FPS = 24
GOP = 4


@dataclass(frozen=True)
class ClipSpec:
    name: str
    split: str
    frames: int
    source: str  # a lavfi source graph; it is scaled to each resolution's size


# Full-resolution size of each resolution name in the tiny data set (72p is an exact x2 of 144p).
SIZES: dict[str, tuple[int, int]] = {"144p": (256, 144), "72p": (128, 72)}

DEFAULT_CLIPS: tuple[ClipSpec, ...] = (
    ClipSpec("tiny-s0000", "train", 32, "testsrc2=size=256x144"),
    ClipSpec("tiny-s0001", "train", 40, "gradients=size=256x144:speed=0.05:seed=3,drawbox=x=20:y=10:w=60:h=30:c=red@1:t=fill"),
    ClipSpec("tiny-s0002", "train", 24, "testsrc2=size=320x180,hflip,rotate=0.3*t"),
    ClipSpec("tiny-s0003", "val", 28, "testsrc2=size=256x144,negate"),
    ClipSpec("tiny-s0004", "val", 24, "gradients=size=256x144:speed=0.08:seed=7,drawgrid=w=32:h=24:c=white"),
)


# The small demo source of the preparation tests (the demo generator at 320x180).
DEMO_SIZE = (320, 180)
DEMO_FPS = 24
DEMO_SCENE_SECONDS = 1.0
DEMO_SCENES = 4


def ffmpeg(*args: str) -> None:
    """Run the project's ffmpeg binary quietly; fail the test with ffmpeg's message on error."""
    res = subprocess.run([ffmpeg_binary(), "-hide_banner", "-nostdin", "-loglevel", "error", "-y", *args],
                         capture_output=True, text=True)
    if res.returncode:
        raise AssertionError(f"ffmpeg {' '.join(args)} failed: {res.stderr.strip()}")


def decode_frames(path: str | Path) -> np.ndarray:
    """All frames of a video as uint8 RGB, (T, H, W, 3), decoded with PyAV."""
    import av

    with av.open(str(path)) as c:
        return np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)])


def vp9_args(gop: int = GOP, crf: int = 20) -> list[str]:
    """Encoder flags for DALI-friendly VP9: fixed GOP, no alt-ref (VP9's B-frames), yuv420p, no audio."""
    return ["-c:v", "libvpx-vp9", "-crf", str(crf), "-b:v", "0", "-deadline", "realtime", "-cpu-used", "8",
            "-row-mt", "1", "-g", str(gop), "-keyint_min", str(gop), "-sc_threshold", "0", "-auto-alt-ref", "0",
            "-lag-in-frames", "0", "-pix_fmt", "yuv420p", "-an", "-movflags", "+faststart"]


def h264_args(gop: int = GOP, crf: int = 18) -> list[str]:
    """Encoder flags for NVDEC-friendly H.264 (DALI's GPU readers): fixed GOP, no B-frames, yuv420p, no audio."""
    return ["-c:v", "libx264", "-crf", str(crf), "-preset", "veryfast", "-profile:v", "high", "-bf", "0",
            "-g", str(gop), "-keyint_min", str(gop), "-sc_threshold", "0", "-pix_fmt", "yuv420p", "-an",
            "-movflags", "+faststart"]


CODEC_ARGS = {"vp9": vp9_args, "h264": h264_args}


def write_clip(path: Path, source: str, frames: int, size: tuple[int, int], fps: int = FPS, gop: int = GOP,
               codec: str = "vp9") -> Path:
    """Encode `frames` frames of a lavfi `source`, scaled to `size`, as a VP9 (or H.264) .mp4 at `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    w, h = size
    graph = f"{source},fps={fps},scale={w}:{h}:flags=area,setsar=1,format=yuv420p"
    ffmpeg("-f", "lavfi", "-i", graph, "-frames:v", str(frames), "-r", str(fps), *CODEC_ARGS[codec](gop), str(path))
    return path


def extract_pngs(clip: Path, out: Path) -> Path:
    """All frames of `clip` as rgb24 PNGs named like tools/extract_frames.py does (000001.png ...).

    It is the data preparation's own extraction (DALI's YUV->RGB conversion on the wheel's ffmpeg), so
    both loaders see the same pixels.
    """
    extract_clip(clip, out, threads=1, on_frames=lambda n: None)
    return out


def add_clip(data_dir: Path, spec: ClipSpec, sizes: dict[str, tuple[int, int]] = SIZES, pngs: bool = True,
             codec: str = "vp9") -> None:
    """Write one clip (and its PNG frames) at every resolution in `sizes`."""
    for res, size in sizes.items():
        clip = write_clip(layout.clip_path(data_dir, res, spec.split, spec.name), spec.source, spec.frames, size,
                          codec=codec)
        if pngs:
            extract_pngs(clip, layout.frames_dir(data_dir, res, spec.split, spec.name))


def build_data_dir(root: Path, clips: tuple[ClipSpec, ...] = DEFAULT_CLIPS,
                   sizes: dict[str, tuple[int, int]] = SIZES, pngs: bool = True, codec: str = "vp9") -> Path:
    """A complete tiny DATA_DIR under `root` (VP9 for DALI's CPU reader, H.264 for NVDEC); returns it."""
    for spec in clips:
        add_clip(root, spec, sizes, pngs, codec)
    return root


def random_checkpoints(folder: Path, specs) -> dict[str, Path]:
    """Project checkpoints with random weights (seeded), one per (model, size, builder kwargs) in `specs`."""
    import torch

    from vsrvfi.models.checkpoint import save_checkpoint
    from vsrvfi.models.registry import build_model

    torch.manual_seed(0)
    out = {}
    for name, size, kw in specs:
        model = build_model(name, size, **kw)
        out[name] = save_checkpoint({"model": model.state_dict(), "model_name": name, "size": size, "kwargs": kw},
                                    folder / f"{name}.pth")
    return out
