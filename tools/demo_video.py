"""Make the built-in demo source: a short 4K video with hard scene cuts and natural-looking motion.

Nothing can be downloaded, so the scenes are made here: a slow zoom into a real photograph (the one
matplotlib ships), a pan across a procedurally generated, hill-shaded fractal landscape rendered at
full resolution (fine detail at every scale, which is what super-resolution needs), a Mandelbrot
zoom, and moving objects (ffmpeg's testsrc2). A sine tone is muxed in so the pipeline's audio
removal is exercised. Output is H.264, yuv420p, constant frame rate.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Sequence

import ffmpeg
import matplotlib
import numpy as np
from matplotlib.colors import LightSource
from tqdm import tqdm

from vsrvfi.core.cli import ArgumentParser, entry_point

from vsrvfi.core.errors import UsageError
from vsrvfi.core.atomic import atomic_path
from vsrvfi.core.ffmpeg import run_ffmpeg

SCENES = ("photo_zoom", "terrain_pan", "fractal_zoom", "moving_objects")


def fractal_terrain(width: int, height: int, seed: int = 0, beta: float = 2.6) -> np.ndarray:
    """RGB uint8 image of a hill-shaded 1/f^beta noise landscape, (height, width, 3)."""
    rng = np.random.default_rng(seed)
    fy = np.fft.fftfreq(height)[:, None]
    fx = np.fft.rfftfreq(width)[None, :]
    radius = np.sqrt(fx * fx + fy * fy)
    radius[0, 0] = 1.0
    spectrum = (rng.standard_normal(radius.shape) + 1j * rng.standard_normal(radius.shape)) / radius ** (beta / 2)
    spectrum[0, 0] = 0
    z = np.fft.irfft2(spectrum, s=(height, width)).astype(np.float32)
    z = (z - z.min()) / (np.ptp(z) + 1e-8)
    shade = LightSource(azdeg=315, altdeg=40).shade(z, cmap=matplotlib.colormaps["gist_earth"],
                                                    vert_exag=height / 16, blend_mode="soft")
    return (shade[..., :3] * 255 + 0.5).astype(np.uint8)


def _still(path: Path, fps: int, frames: int):
    """A still image repeated `frames` times; decoded once (the loop filter), not once per frame."""
    return (ffmpeg.input(str(path), framerate=fps).filter("loop", loop=frames - 1, size=1, start=0)
            .filter("setpts", f"N/{fps}/TB"))


def _scene_streams(workdir: Path, width: int, height: int, fps: int, seconds: float, seed: int):
    """One ffmpeg stream per scene, each width x height, fps, `seconds` long, yuv420p."""
    from PIL import Image

    n = max(int(round(seconds * fps)), 1)
    photo = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
    photo_zoom = (
        _still(photo, fps, n)
        .filter("scale", width, height, force_original_aspect_ratio="increase", flags="lanczos")
        .filter("crop", width, height)
        .filter("zoompan", z=f"1+0.25*on/{n}", x="iw/2-(iw/zoom/2)", y="ih/2-(ih/zoom/2)",
                d=1, s=f"{width}x{height}", fps=fps)
    )
    # A camera pan of about 1/500 of the width per frame, the speed of a slow handheld pan.
    pan = max(2, width * n // 500)
    big_w, big_h = width + pan // 2 * 2, height + pan // 4 * 2
    terrain_png = workdir / "terrain.png"
    Image.fromarray(fractal_terrain(big_w, big_h, seed)).save(terrain_png)
    terrain_pan = _still(terrain_png, fps, n).filter(
        "crop", width, height, x=f"(iw-ow)*t/{seconds}", y=f"(ih-oh)*t/{seconds}*0.7")
    # Rendered at half size: the fractal's cost grows with pixels and zoom depth.
    fractal_zoom = (ffmpeg.input(f"mandelbrot=size={width // 4 * 2}x{height // 4 * 2}:rate={fps}:start_scale=2.5",
                                 f="lavfi", t=seconds)
                    .filter("scale", width, height, flags="lanczos"))
    moving = ffmpeg.input(f"testsrc2=size={width}x{height}:rate={fps}", f="lavfi", t=seconds)
    streams = [photo_zoom, terrain_pan, fractal_zoom, moving]
    return [s.filter("trim", end_frame=n).filter("setpts", "PTS-STARTPTS").filter("setsar", 1)
            .filter("format", "yuv420p") for s in streams]


def make_demo_video(out: str | os.PathLike, width: int = 3840, height: int = 2160, fps: int = 30,
                    scene_seconds: float = 1.5, scenes: int = 4, seed: int = 0, crf: int = 16,
                    overwrite: bool = False, progress: bool = True, keyint: int | None = None) -> Path:
    """Write the demo video to `out` (atomically); returns its path. Reuses an existing file.

    `keyint`: a fixed keyframe interval without scene-cut keyframes, so cuts fall inside GOPs as in
    camera footage (default: x264's, which puts a keyframe at every cut).
    """
    out = Path(out)
    if out.exists() and not overwrite:
        return out
    if width % 2 or height % 2 or width < 64 or height < 64:
        raise UsageError(f"demo size {width}x{height}: width and height must be even and at least 64")
    if not 1 <= scenes <= len(SCENES):
        raise UsageError(f"--scenes must be between 1 and {len(SCENES)}")
    total = int(round(scene_seconds * fps)) * scenes
    with tempfile.TemporaryDirectory() as tmp, atomic_path(out) as part:
        streams = _scene_streams(Path(tmp), width, height, fps, scene_seconds, seed)[:scenes]
        video = ffmpeg.concat(*streams, v=1, a=0) if len(streams) > 1 else streams[0]
        audio = ffmpeg.input("sine=frequency=440:sample_rate=48000", f="lavfi", t=total / fps)
        gop = dict(g=keyint, keyint_min=keyint, sc_threshold=0) if keyint else {}
        args = (ffmpeg.output(video, audio, str(part), vcodec="libx264", crf=crf, preset="veryfast",
                              pix_fmt="yuv420p", r=fps, acodec="aac", shortest=None, f="mp4",
                              movflags="+faststart", **gop)
                .overwrite_output().get_args())
        with tqdm(total=total, unit="frame", desc=f"demo {width}x{height}", disable=not progress) as bar:
            run_ffmpeg(args, out, on_frames=bar.update)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    ap = ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", help="output .mp4 path")
    ap.add_argument("--size", default="3840x2160", help="WxH (default 3840x2160)")
    ap.add_argument("--fps", type=int, default=30)
    ap.add_argument("--scene-seconds", type=float, default=1.5)
    ap.add_argument("--scenes", type=int, default=len(SCENES), help=f"1..{len(SCENES)}: {', '.join(SCENES)}")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--overwrite", action="store_true")
    a = ap.parse_args(argv)
    try:
        w, h = (int(v) for v in a.size.lower().split("x"))
    except ValueError:
        raise UsageError(f"--size {a.size!r}: expected WxH, e.g. 3840x2160") from None
    path = make_demo_video(a.out, w, h, a.fps, a.scene_seconds, a.scenes, a.seed, overwrite=a.overwrite)
    print(path)
    return 0


cli = entry_point(main, interrupted="the partial video was removed; a rerun starts over")

if __name__ == "__main__":
    raise SystemExit(cli())
