"""Score a checkpoint on held-out video: PSNR/SSIM per clip beside the naive baseline, and pictures.

    python -m vsrvfi.tools.evaluate -c experiments/demo-vsrnet/checkpoints/best.pth data/demo/data
    python -m vsrvfi.tools.evaluate -c RIFE/flownet.pkl --model rife clip1.mp4 clip2.mp4 --gap 2
    python -m vsrvfi.tools.evaluate -c RIFE/flownet.pkl --model rife --benchmark vimeo90k vimeo_triplet

`--benchmark NAME ROOT` scores a standard test set with its official protocol instead (Vid4, REDS4,
Vimeo-90K-T, Vimeo-90K triplets, UCF101, SNU-FILM, Middlebury; tools/evaluate_benchmark.py).

INPUT is a prepared DATA_DIR (its `--split` clips at `--res` are scored) or video files. SR models
see each frame downscaled x4 (x2) and are compared with the original; VFI models see every `--gap`-th
frame and remake the ones between. `--frames N` frames (VFI: gaps) are scored per clip, spread evenly
over it with a seeded offset, the same sample the trainer validates on. Video files are first searched for scene cuts (PySceneDetect, as
vsr-interpolate does): VFI gaps across a cut are not scored, SR windows stop at it (the count is
printed). Prints a table, writes scores.json and one side-by-side PNG per clip (baseline | model |
original, with a zoomed centre) into `--out`.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Sequence

from tqdm import tqdm

from vsrvfi.inference.evaluate import (Convention, evaluate_sr, evaluate_vfi, format_table, save_comparison, sr_frames_needed,
                                       sr_targets, summary, vfi_frames_needed, vfi_starts)
from vsrvfi.inference.options import add_model_args, load_task_model
from vsrvfi.inference.runtime import pick_device
from vsrvfi.inference.sr import PADDINGS, Upscaler
from vsrvfi.inference.video_io import open_source, read_selected
from vsrvfi.inference.vfi import Interpolator
from vsrvfi.tools.interpolate_video import scene_cuts
from vsrvfi.models.registry import spec
from vsrvfi.core.cli import ArgumentParser, entry_point
from vsrvfi.core.errors import UsageError
from vsrvfi.core.layout import list_clips
from vsrvfi.core.atomic import atomic_path, check_writable_dir
from vsrvfi.core.errors import DataError
from vsrvfi.tools import evaluate_benchmark


def find_videos(inputs: Sequence[str], res: str, split: str) -> tuple[list[Path], set[Path]]:
    """Video files as given; a DATA_DIR contributes its `split` clips at `res` (returned also as the
    set of prepared clips, which are single scenes and need no cut detection)."""
    videos, prepared = [], set()
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            clips = list_clips(p, res, split)
            if not clips:
                raise DataError(p, f"no {split} clips at {res} (expected {p}/{res}/scenes/{split}/*.mp4)")
            videos += clips
            prepared.update(clips)
        else:
            videos.append(p)
    return videos, prepared


def main(argv: Sequence[str] | None = None) -> int:
    ap = ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("inputs", nargs="*", help="DATA_DIR(s) and/or video files (none with --benchmark)")
    add_model_args(ap, None)
    ap.add_argument("--res", help="resolution of a DATA_DIR's clips (default: the training run's, else 540p)")
    ap.add_argument("--split", default="val", choices=("val", "train"))
    ap.add_argument("--frames", "--max-frames", dest="frames", type=int, default=30,
                    help="frames scored per clip (VFI: gaps), spread evenly over the clip with a seeded offset "
                         "(0 = every frame); the trainer's validation uses the same sample")
    ap.add_argument("--seed", type=int, default=0, help="offset seed of the spread sample")
    ap.add_argument("--gap", type=int, default=2, help="VFI: keep every gap-th frame, remake the gap-1 between")
    ap.add_argument("--padding", default="reflection_circle", choices=PADDINGS, help="SR: window padding at clip ends")
    ap.add_argument("--tile", type=int, default=0, help="SR: LR tile side (0 = whole frames)")
    ap.add_argument("--scale", type=float, default=1.0, help="VFI: flow resolution relative to the frames")
    ap.add_argument("--metric", choices=("y", "rgb"), help="score luma (BT.601) or RGB (default: the task's habit)")
    ap.add_argument("--crop-border", type=int, help="pixels dropped at each side (default: SR scale, VFI 0)")
    ap.add_argument("--scene-threshold", type=float, default=None,
                    help="video files: PySceneDetect content threshold (None = its default, 27)")
    ap.add_argument("--min-scene-len", type=int, default=8, help="video files: frames; closer cuts are one cut")
    ap.add_argument("--no-scene-detect", action="store_true", help="video files: score across every frame")
    ap.add_argument("--out", help="folder for scores.json and the pictures (default: next to the checkpoint)")
    evaluate_benchmark.add_args(ap)
    a = ap.parse_args(argv)
    if a.benchmark:  # the standard test sets: their own protocols (tools/evaluate_benchmark.py)
        if a.inputs:
            raise UsageError("--benchmark NAME ROOT scores a standard set; give no other inputs")
        return evaluate_benchmark.main(a)
    if not a.inputs:
        raise UsageError("give a DATA_DIR or video files to score, or --benchmark NAME ROOT")
    if a.gap < 2:
        raise UsageError("--gap must be 2 or more")
    if a.tile < 0 or a.frames < 0 or (a.crop_border or 0) < 0 or a.scale <= 0:
        raise UsageError("--tile, --frames and --crop-border must be >= 0, --scale > 0")

    device = pick_device(a.device)
    model = load_task_model(a, None)
    task = spec(model.model_name, model.model_size).task
    cfg = getattr(model, "train_config", None) or {}
    res = a.res or (cfg.get("data", {}) or {}).get("res") or "540p"
    videos, clips = find_videos(a.inputs, res, a.split)
    if task == "sr":
        runner = Upscaler(model, device, a.precision, a.tile)
        conv = Convention.default("sr", runner.scale)
        labels = ("bicubic", model.model_name, "original")
    else:
        try:
            runner = Interpolator(model, device, a.precision, a.scale)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        conv = Convention.default("vfi")
        labels = ("blend", model.model_name, "original")
    trained = (cfg.get("task", {}) or {}).get("metric") or {}
    conv = Convention(
        y_channel=(a.metric == "y") if a.metric else bool(trained.get("y_channel", conv.y_channel)),
        crop_border=a.crop_border if a.crop_border is not None else int(trained.get("crop_border", conv.crop_border)),
    )
    out_dir = Path(a.out) if a.out else Path(a.checkpoint).parent / f"eval-{Path(a.checkpoint).stem}"
    check_writable_dir(out_dir)

    scores, t0, scored = [], time.perf_counter(), 0
    bar = tqdm(total=0, unit="frame", desc=f"evaluate {model.model_name} (decoded frames)")
    for video in videos:
        src = open_source(video)
        total = src.info.num_frames
        cuts: set[int] = set()
        if video not in clips and not a.no_scene_detect:
            cuts = scene_cuts(str(video), float(src.info.fps), a.scene_threshold, a.min_scene_len)
        if task == "sr":
            targets = sr_targets(total, a.frames, a.seed, video.stem)
            needed, skipped = sr_frames_needed(targets, total, runner.window, a.padding, cuts), 0
        else:
            starts, skipped = vfi_starts(total, a.gap, a.frames, cuts, a.seed, video.stem)
            needed = vfi_frames_needed(starts, a.gap)
        if not needed:
            print(f"warning: {video}: {total} frame(s), too few to score (VFI needs {a.gap + 1} in one scene); "
                  "skipped", file=sys.stderr)
            continue
        bar.total += max(needed) + 1
        bar.refresh()
        frames = read_selected(src, needed, bar.update)
        if task == "sr":
            score, example = evaluate_sr(runner, frames, video.stem, conv, a.padding, cuts, targets=targets)
        else:
            score, example = evaluate_vfi(runner, frames, video.stem, conv, a.gap, cuts, starts=starts)
            score.skipped = skipped
        scores.append(score)
        scored += score.frames
        if example is not None:
            save_comparison(example, out_dir / f"{video.stem}.png", labels,
                            f"{video.stem}, frame {example.index} ({conv.describe()})")
    bar.close()
    if not scores or not any(s.frames for s in scores):
        raise UsageError("no clip had enough frames to score")
    secs = time.perf_counter() - t0
    print(format_table(scores, model.model_name, labels[0], conv))
    unit = "frames" if task == "sr" else f"gaps of {a.gap}"
    print(f"sample: {f'{a.frames} {unit}' if a.frames else f'all {unit}'} per clip"
          f"{f', spread evenly (seed {a.seed})' if a.frames else ''}, full frames")
    result = {"checkpoint": str(a.checkpoint), "model": model.model_name, "size": model.model_size,
              "task": task, "convention": conv.describe(), "baseline": labels[0], "mean": summary(scores),
              "clips": [s.as_dict() for s in scores], "seconds": secs,
              "options": {k: v for k, v in vars(a).items() if k != "inputs"}, "inputs": [str(v) for v in videos]}
    with atomic_path(out_dir / "scores.json") as tmp:
        tmp.write_text(json.dumps(result, indent=1))
    print(f"{scored} frames scored in {secs:.1f} s; scores and side-by-side pictures in {out_dir}")
    return 0


cli = entry_point(main, interrupted="scores.json was not written; a rerun scores every clip again")

if __name__ == "__main__":
    raise SystemExit(cli())
