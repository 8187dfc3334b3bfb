"""A small benchmark data set made on the spot: the demo footage as short VP9 clips plus PNG frames.

The source is tools.demo_video at the chosen size (a photo zoom, a pan over a fractal landscape, a
Mandelbrot zoom, moving test patterns; nothing downloaded). Each scene becomes one clip encoded the
way tools/encoding/codecs.py encodes VP9 (its codec_args, so the benchmark measures the project's
real settings) with the chosen GOP, and its frames are extracted to PNG with DALI's YUV->RGB
conversion (tools.extract_frames). Layout as core/layout.py; existing files are reused.
"""
from __future__ import annotations

from pathlib import Path

import ffmpeg

from vsrvfi.core import layout
from vsrvfi.tools.demo_video import SCENES, make_demo_video
from vsrvfi.core.atomic import atomic_path
from vsrvfi.core.ffmpeg import run_ffmpeg
from vsrvfi.core.media import probe
from vsrvfi.tools.extract_frames import extract_clip
from vsrvfi.tools.encoding.codecs import TranscodeOptions, codec_args


def make_bench_data(root: str | Path, res: str = "720p", gop: int = 4, scene_seconds: float = 2.0,
                    fps: int = 30, split: str = "train", pngs: bool = True, preset: str = "veryfast") -> Path:
    """Write (or reuse) DATA_DIR=root with one clip per demo scene at `res`; returns root."""
    root = Path(root)
    height = layout.resolution_height(res)
    width = round(height * 16 / 9 / 2) * 2
    source = make_demo_video(root / "source" / f"demo{width}x{height}.mp4", width, height, fps=fps,
                             scene_seconds=scene_seconds, scenes=len(SCENES), progress=False)
    opts = TranscodeOptions(codec="vp9", gop=gop, preset=preset)
    for i in range(len(SCENES)):
        name = layout.clip_name(source, i)
        clip = layout.clip_path(root, res, split, name)
        if not clip.exists():
            with atomic_path(clip) as tmp:
                stream = ffmpeg.input(str(source), ss=i * scene_seconds, t=scene_seconds).video
                args = (ffmpeg.output(stream, str(tmp), an=None, f="mp4", movflags="+faststart", pix_fmt="yuv420p",
                                      **codec_args(opts)).overwrite_output().get_args())
                run_ffmpeg(args, clip)
        frames = layout.frames_dir(root, res, split, name)
        if pngs and not frames.exists():
            extract_clip(clip, frames, threads=0, on_frames=lambda n: None)
        probe(clip)  # fails loudly on a broken clip
    return root
