"""Raise a video's frame rate with RIFE or IFRNet: 2x, 4x, 8x or a target fps, duration kept.

    python -m vsrvfi.tools.interpolate_video IN.mp4 OUT.mp4 -c rife.pth --factor 2
    python -m vsrvfi.tools.interpolate_video IN.mp4 OUT.mp4 -c flownet.pkl --model rife --fps 60000/1001

Scene cuts are found with PySceneDetect first and never blended across (the nearer frame is
repeated there); identical neighbours (held frames) are repeated rather than interpolated. The
audio track is copied. `--scale 0.5` estimates flow at half resolution (RIFE's advice for 4K),
which also bounds memory. The output appears under its name only once complete.
"""
from __future__ import annotations

import argparse
import math
import sys
import time
from collections import Counter
from typing import Sequence

from tqdm import tqdm

from vsrvfi.inference.options import add_model_args, add_output_args, load_task_model
from vsrvfi.inference.runtime import pick_device
from vsrvfi.inference.video_io import VideoWriter, check_output, open_source, read_frames, warn_if_short
from vsrvfi.inference.vfi import Interpolator, interpolate_frames, output_fps, plan_output
from vsrvfi.core.cli import ArgumentParser, entry_point
from vsrvfi.core.errors import UsageError
from vsrvfi.core import scenes


def scene_cuts(path: str, fps: float, threshold: float | None, min_len: int) -> set[int]:
    """Indices of the frames that start a new scene (PySceneDetect's content detector, core/scenes.py;
    `fps` is not needed: `min_len` is in frames)."""
    return scenes.scene_cuts(path, threshold, min_len)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    ap = ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("input")
    ap.add_argument("output", help=".mp4, .mkv, .mov or .webm")
    rate = ap.add_mutually_exclusive_group(required=True)
    rate.add_argument("--factor", type=int, help="2, 4, 8, ...: that many output frames per input frame")
    rate.add_argument("--fps", help="target frame rate, e.g. 60 or 60000/1001")
    add_model_args(ap, "vfi")
    ap.add_argument("--scale", type=float, default=1.0,
                    help="flow resolution relative to the frames (0.5 for 4K; RIFE: 1, 0.5, 0.25; IFRNet: 16/n)")
    ap.add_argument("--scene-threshold", type=float, default=None,
                    help="PySceneDetect content threshold (default 27); lower finds more cuts")
    ap.add_argument("--min-scene-len", type=int, default=8, help="frames; shorter bursts of cuts are one cut")
    ap.add_argument("--no-scene-detect", action="store_true", help="interpolate across every frame pair")
    ap.add_argument("--dup-threshold", type=float, default=1.0,
                    help="two neighbours are the same picture when no 16x16 block differs by this much "
                         "(mean absolute, 0-255); 0 = off")
    ap.add_argument("--bisect-depth", type=int, default=3,
                    help="midpoint-only RIFE: timesteps are rounded to 1/2**depth (deeper is exacter and slower)")
    add_output_args(ap)
    return ap.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    a = parse_args(argv)
    out = check_output(a.output, a.overwrite, a.input, a.codec)
    src = open_source(a.input, min_frames=2)
    info = src.info
    try:
        fps_out = output_fps(info.fps, a.factor, a.fps)
    except ValueError as exc:
        raise UsageError(f"--factor/--fps: {exc}") from None
    device = pick_device(a.device)
    model, meta = load_task_model(a, "vfi")
    if a.scale <= 0 or not 1 <= a.bisect_depth <= 10:
        raise UsageError("--scale must be positive and --bisect-depth between 1 and 10")
    depth = a.bisect_depth
    if a.factor and a.factor & (a.factor - 1) == 0:
        depth = max(depth, int(math.log2(a.factor)))  # 2x, 4x, 8x ... are exact
    try:
        interp = Interpolator(model, device, a.precision, a.scale, max_depth=depth)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    ratio = fps_out / info.fps
    if not interp.arbitrary and (ratio.denominator != 1 or ratio.numerator & (ratio.numerator - 1)):
        print(f"note: {meta.model}/{meta.size} makes midpoints only; timesteps are rounded to the "
              f"nearest 1/{2 ** depth} (--bisect-depth), so motion is slightly uneven; RIFEm or IFRNet take any timestep")
    if info.is_vfr:
        print(f"warning: {info.path}: variable frame rate; frames are timed as constant {float(info.fps):.3f} fps, "
              f"so audio may drift (vsr-split-scenes normalises such sources)", file=sys.stderr)

    cuts = set() if a.no_scene_detect else scene_cuts(info.path, float(info.fps), a.scene_threshold, a.min_scene_len)
    plan = plan_output(info.num_frames, info.fps, fps_out)
    counts: Counter[str] = Counter()
    t0 = time.perf_counter()
    with tqdm(total=len(plan), unit="frame", desc=f"{meta.model} x{float(fps_out / info.fps):g}") as bar:
        def tick(kind: str) -> None:
            counts[kind] += 1
            bar.update(1)

        with VideoWriter(out, info.width, info.height, fps_out, src, a.codec, a.crf, a.preset,
                         audio=not a.no_audio) as writer:
            for frame in interpolate_frames(interp, read_frames(src), plan, cuts, a.dup_threshold, tick):
                writer.write(frame)
    secs = time.perf_counter() - t0
    warn_if_short(src, writer.frames, len(plan))
    print(f"wrote {out}: {writer.frames} frames at {float(fps_out):.3f} fps from {info.num_frames} at "
          f"{float(info.fps):.3f} ({counts['model']} interpolated, {counts['copy']} source, {counts['cut']} "
          f"repeated at {len(cuts)} scene cut(s), {counts['dup']} repeated duplicates); "
          f"{writer.frames / secs:.2f} frames/s, audio {'copied' if writer.audio else 'none'}")
    return 0


cli = entry_point(main, interrupted="the partial output was removed; a rerun starts over")

if __name__ == "__main__":
    raise SystemExit(cli())
