"""Score a checkpoint on held-out video: PSNR/SSIM per clip beside the naive baseline, and pictures.

    python -m vsrvfi.tools.evaluate -c experiments/demo-vsrnet/checkpoints/best.pth data/demo/data
    python -m vsrvfi.tools.evaluate -c RIFE/flownet.pkl --model rife clip1.mp4 clip2.mp4 --gap 2

INPUT is a prepared DATA_DIR (its `--split` clips at `--res` are scored) or video files. SR models
see each frame downscaled x4 (x2) and are compared with the original; VFI models see every `--gap`-th
frame and remake the ones between. Prints a table, writes scores.json and one side-by-side PNG per
clip (baseline | model | original, with a zoomed centre) into `--out`.
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Sequence

from tqdm import tqdm

from vsrvfi.inference.evaluate import Convention, evaluate_sr, evaluate_vfi, format_table, save_comparison, summary
from vsrvfi.inference.options import add_model_args, load_task_model
from vsrvfi.inference.runtime import pick_device
from vsrvfi.inference.sr import PADDINGS, Upscaler
from vsrvfi.inference.video_io import open_source, read_frames
from vsrvfi.inference.vfi import Interpolator
from vsrvfi.models.registry import spec
from vsrvfi.core.cli import ArgumentParser, entry_point
from vsrvfi.core.errors import UsageError
from vsrvfi.core.layout import list_clips
from vsrvfi.core.atomic import atomic_path, check_writable_dir
from vsrvfi.core.errors import DataError


def find_videos(inputs: Sequence[str], res: str, split: str) -> list[Path]:
    """Video files as given; a DATA_DIR contributes its `split` clips at `res`."""
    videos = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            clips = list_clips(p, res, split)
            if not clips:
                raise DataError(p, f"no {split} clips at {res} (expected {p}/{res}/scenes/{split}/*.mp4)")
            videos += clips
        else:
            videos.append(p)
    return videos


def main(argv: Sequence[str] | None = None) -> int:
    ap = ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("inputs", nargs="+", help="DATA_DIR(s) and/or video files")
    add_model_args(ap, None)
    ap.add_argument("--res", help="resolution of a DATA_DIR's clips (default: the training run's, else 540p)")
    ap.add_argument("--split", default="val", choices=("val", "train"))
    ap.add_argument("--max-frames", type=int, default=30, help="frames read per clip (0 = all)")
    ap.add_argument("--gap", type=int, default=2, help="VFI: keep every gap-th frame, remake the gap-1 between")
    ap.add_argument("--padding", default="reflection_circle", choices=PADDINGS, help="SR: window padding at clip ends")
    ap.add_argument("--tile", type=int, default=0, help="SR: LR tile side (0 = whole frames)")
    ap.add_argument("--scale", type=float, default=1.0, help="VFI: flow resolution relative to the frames")
    ap.add_argument("--metric", choices=("y", "rgb"), help="score luma (BT.601) or RGB (default: the task's habit)")
    ap.add_argument("--crop-border", type=int, help="pixels dropped at each side (default: SR scale, VFI 0)")
    ap.add_argument("--out", help="folder for scores.json and the pictures (default: next to the checkpoint)")
    a = ap.parse_args(argv)
    if a.gap < 2:
        raise UsageError("--gap must be 2 or more")
    if a.tile < 0 or a.max_frames < 0 or (a.crop_border or 0) < 0 or a.scale <= 0:
        raise UsageError("--tile, --max-frames and --crop-border must be >= 0, --scale > 0")

    device = pick_device(a.device)
    model = load_task_model(a, None)
    task = spec(model.model_name, model.model_size).task
    cfg = getattr(model, "train_config", None) or {}
    res = a.res or (cfg.get("data", {}) or {}).get("res") or "540p"
    videos = find_videos(a.inputs, res, a.split)
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

    need = 1 if task == "sr" else a.gap + 1
    scores, t0, scored = [], time.perf_counter(), 0
    for video in tqdm(videos, unit="clip", desc=f"evaluate {model.model_name}"):
        src = open_source(video)
        frames = list(read_frames(src, a.max_frames or None))
        if len(frames) < need:
            print(f"warning: {video}: {len(frames)} frame(s), fewer than the {need} needed; skipped", file=sys.stderr)
            continue
        if task == "sr":
            score, example = evaluate_sr(runner, frames, video.stem, conv, a.padding)
        else:
            score, example = evaluate_vfi(runner, frames, video.stem, conv, a.gap)
        scores.append(score)
        scored += score.frames
        if example is not None:
            save_comparison(example, out_dir / f"{video.stem}.png", labels,
                            f"{video.stem}, frame {example.index} ({conv.describe()})")
    if not scores:
        raise UsageError("no clip had enough frames to score")
    secs = time.perf_counter() - t0
    print(format_table(scores, model.model_name, labels[0], conv))
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
