"""How a video source becomes scenes: the scene options, the checks a source must pass, detection with
those options (core/scenes.py) and the plan of each scene (trimmed at cuts, dropped when too short,
train/val by whole scenes). Pure except `detect`, which decodes the source."""
from __future__ import annotations

import hashlib
import math
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from vsrvfi.core import layout
from vsrvfi.core.errors import UsageError
from vsrvfi.core.manifest import Scene
from vsrvfi.core.media import VideoInfo
from vsrvfi.core.scenes import DETECTOR_MIN_LEN, detect_scenes as detect_ranges

MIN_SIDE = 64  # the smallest training crop of any config (EDVR's CPU setting); smaller sources train nothing
IMAGE_CODECS = {"png", "mjpeg", "bmp", "tiff", "webp", "gif", "jpeg2000", "jpegls", "ppm", "pgm", "pam", "qoi"}


@dataclass
class SplitOptions:
    detector: str = "content"          # "content" or "adaptive"
    threshold: float | None = None     # detector default when None (content 27, adaptive 3.0)
    min_scene_len: str = "1.0s"        # frames ("24") or seconds ("1.0s" / "0.5")
    trim: int = 0                      # frames dropped on each side of every cut
    val_fraction: float = 0.1
    seed: int = 0
    crf: int = 10                      # quality of the orig clips (x264; near-lossless)
    preset: str = "veryfast"
    downscale: int = 0                 # detector analysis downscale; 0 = PySceneDetect's auto


# The command-line flag of each SplitOptions field, for errors that name what changed.
SPLIT_FLAGS = {"detector": "--detector", "threshold": "--threshold", "min_scene_len": "--min-scene-len",
               "trim": "--trim", "val_fraction": "--val-fraction", "seed": "--seed", "crf": "--orig-crf",
               "preset": "the orig preset", "downscale": "--downscale"}


def parse_min_len(text: str, fps: float) -> int:
    """'24' -> 24 frames; '1.5s' or '1.5' -> frames in 1.5 seconds at `fps`."""
    t = str(text).strip().lower()
    try:
        if t.endswith("s"):
            return max(1, math.ceil(float(t[:-1]) * fps))
        if "." in t:
            return max(1, math.ceil(float(t) * fps))
        return max(1, int(t))
    except ValueError:
        raise UsageError(f"--min-scene-len {text!r}: expected frames (24) or seconds (1.0s)") from None


def fingerprint(path: Path) -> str:
    """Cheap identity of a source file: size, mtime and the first MiB."""
    st = path.stat()
    h = hashlib.sha1(f"{st.st_size}:{int(st.st_mtime)}".encode())
    with open(path, "rb") as f:
        h.update(f.read(1 << 20))
    return h.hexdigest()[:16]


def check_source(video: Path, info: VideoInfo) -> None:
    """One-line errors for sources nothing can be trained on: still images, too short, too small."""
    if info.num_frames == 1 and info.codec in IMAGE_CODECS:
        raise UsageError(f"{video}: a still image ({info.codec}), not a video")
    if info.num_frames < 2:
        raise UsageError(f"{video}: too short ({info.num_frames} frame); a scene needs at least 2")
    if min(info.width, info.height) < MIN_SIDE:
        raise UsageError(f"{video}: too small ({info.width}x{info.height}) for a training crop; needs at least "
                         f"{MIN_SIDE} pixels a side")


def detect(path: Path, opts: SplitOptions, fps: float, show_progress: bool = True,
                  on_cut: Callable[[int], None] | None = None, **hooks) -> list[tuple[int, int]]:
    """core.scenes.detect_scenes with the split options: the detector's own minimum suppresses bursts
    of false cuts; the user's minimum, which may be longer, drops whole scenes afterwards (plan_scene).
    `hooks`: detect_scenes' on_frame / on_progress (decode-once)."""
    burst = min(DETECTOR_MIN_LEN, parse_min_len(opts.min_scene_len, fps))
    return detect_ranges(path, opts.detector, opts.threshold, burst, opts.downscale, show_progress, on_cut, **hooks)


def plan_scene(index: int, start: int, end: int, source: Path, fps: float, opts: SplitOptions,
               total_frames: int, key: str | None = None) -> Scene:
    """One scene from its detected range: trimmed at cuts, dropped when shorter than the minimum."""
    min_len = parse_min_len(opts.min_scene_len, fps)
    s = start + (opts.trim if start > 0 else 0)
    e = end - (opts.trim if end < total_frames else 0)
    sc = Scene(clip=layout.clip_name(source, index, key), source=str(source), index=index, start_frame=s, end_frame=e,
               start_time=round(s / fps, 6), end_time=round(e / fps, 6), fps=fps, num_frames=max(e - s, 0))
    if sc.num_frames < min_len:
        sc.dropped = f"shorter than {min_len} frames"
    return sc


def val_count(n: int, fraction: float, rng: random.Random, alone: bool) -> int:
    """How many of a source's `n` kept scenes go to val.

    A data set's only source keeps at least one scene for val and one for training. One source among
    several gives `fraction` of its scenes in expectation (the fractional part drawn from `rng`), so
    many short sources do not each give up a scene and every source can contribute to val.
    """
    if alone:
        return min(n - 1, max(1, round(fraction * n))) if n >= 2 else 0
    want = fraction * n
    k = math.floor(want) + (rng.random() < want - math.floor(want))
    return min(k, n - 1) if n >= 2 else k


def plan_scenes(ranges: list[tuple[int, int]], source: Path, fps: float, opts: SplitOptions,
                total_frames: int, key: str | None = None, alone: bool = True) -> list[Scene]:
    """Apply trimming at cuts and the minimum length, then assign train/val by whole scenes.

    The split depends only on this source, its key and the seed, so adding sources to a data set
    later never moves an existing scene. `alone`: the data set's only source (see `val_count`).
    """
    scenes = [plan_scene(i, start, end, source, fps, opts, total_frames, key) for i, (start, end) in enumerate(ranges)]
    kept = [s for s in scenes if not s.dropped]
    rng = random.Random(opts.seed if alone else f"{opts.seed}:{key or Path(source).stem}")
    val = set(rng.sample(range(len(kept)), val_count(len(kept), opts.val_fraction, rng, alone)))
    for i, s in enumerate(kept):
        s.split = "val" if i in val else "train"
    return scenes
