"""Score a checkpoint on held-out video: PSNR/SSIM per clip beside the naive baseline, and pictures.

    python -m vsrvfi.tools.evaluate -c experiments/demo-vsrnet/checkpoints/best.pth data/demo/data
    python -m vsrvfi.tools.evaluate -c RIFE/flownet.pkl --model rife clip1.mp4 clip2.mp4 --gap 2
    python -m vsrvfi.tools.evaluate -c RIFE/flownet.pkl --model rife --benchmark vimeo90k vimeo_triplet

`--benchmark NAME ROOT` scores a standard test set with its official protocol instead (Vid4, REDS4,
Vimeo-90K-T, Vimeo-90K triplets, UCF101, SNU-FILM, Middlebury; tools/evaluate_benchmark.py).

INPUT is a prepared DATA_DIR (its `--split` clips at `--res` are scored; a packed one, with a
sequences.json, is scored per sequence: `--sequences M` of them evenly spread, default all) or video
files. SR models
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
from typing import Collection, Sequence

from torch import nn
from tqdm import tqdm

from vsrvfi.core.atomic import atomic_path, check_writable_dir
from vsrvfi.core.cli import ArgumentParser, entry_point
from vsrvfi.core.errors import DataError, UsageError
from vsrvfi.core.layout import list_clips
from vsrvfi.core.seqindex import SequenceIndex, load_index
from vsrvfi.inference.evaluate import ClipScore, Convention, Example, format_table, save_comparison, summary
from vsrvfi.inference.options import add_model_args, load_task_model
from vsrvfi.inference.runtime import pick_device
from vsrvfi.inference.sr import PADDINGS
from vsrvfi.inference.video_io import open_source
from vsrvfi.models.checkpoint import CheckpointMeta
from vsrvfi.tools import evaluate_benchmark
from vsrvfi.tools.interpolate_video import scene_cuts
from vsrvfi.trainers.validation import ValidationResult, Validator, make_runner, plan_clip, plan_sequences


def packed_dirs(inputs: Sequence[str], res: str) -> dict[Path, SequenceIndex]:
    """The DATA_DIRs among `inputs` with a sequence index covering `res` (scored per sequence)."""
    out = {}
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            index = load_index(p)
            if index is not None and res in index.tiers:
                out[p] = index
    return out


def find_videos(inputs: Sequence[str], res: str, split: str,
                skip: Collection[Path] = ()) -> tuple[list[Path], set[Path]]:
    """Video files as given; a DATA_DIR (but those in `skip`) contributes its `split` clips at `res`
    (returned also as the set of prepared clips, which are single scenes and need no cut detection)."""
    videos, prepared = [], set()
    for item in inputs:
        p = Path(item)
        if p in skip:
            continue
        if p.is_dir():
            clips = list_clips(p, res, split)
            if not clips:
                raise DataError(p, f"no {split} clips at {res} (expected {p}/{res}/scenes/{split}/*.mp4)")
            videos += clips
            prepared.update(clips)
        else:
            videos.append(p)
    return videos, prepared


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    ap = ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("inputs", nargs="*", help="DATA_DIR(s) and/or video files (none with --benchmark)")
    add_model_args(ap, None)
    ap.add_argument("--res", help="resolution of a DATA_DIR's clips (default: the training run's, else 540p)")
    ap.add_argument("--split", default="val", choices=("val", "train"))
    ap.add_argument("--frames", "--max-frames", dest="frames", type=int, default=30,
                    help="frames scored per clip (VFI: gaps), spread evenly over the clip with a seeded offset "
                         "(0 = every frame); the trainer's validation uses the same sample")
    ap.add_argument("--sequences", type=int, default=0,
                    help="a packed DATA_DIR (sequences.json): sequences scored, evenly spread with a seeded offset "
                         "(0 = all); --frames is then per sequence")
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
        return a
    if not a.inputs:
        raise UsageError("give a DATA_DIR or video files to score, or --benchmark NAME ROOT")
    if a.gap < 2:
        raise UsageError("--gap must be 2 or more")
    if a.tile < 0 or a.frames < 0 or a.sequences < 0 or (a.crop_border or 0) < 0 or a.scale <= 0:
        raise UsageError("--tile, --frames, --sequences and --crop-border must be >= 0, --scale > 0")
    return a


def convention(a: argparse.Namespace, meta: CheckpointMeta, scale: int) -> Convention:
    """The metric convention: the options', else the training run's, else the task's habit."""
    base = Convention(**meta.metric) if meta.metric else Convention.default(meta.task, scale)
    return Convention(y_channel=(a.metric == "y") if a.metric else base.y_channel,
                      crop_border=a.crop_border if a.crop_border is not None else base.crop_border)


def make_validator(a: argparse.Namespace, task: str, conv: Convention, window: int) -> tuple[Validator, list[Path]]:
    """The sample of every input video (scene cuts found in video files; prepared clips are one scene;
    a packed DATA_DIR's sequences, as the trainer's validation plans them), and the videos given."""
    packed = packed_dirs(a.inputs, a.res)
    videos, prepared = find_videos(a.inputs, a.res, a.split, packed)
    clips, available, shards = [], 0, []
    for data_dir, index in sorted(packed.items()):
        planned, n = plan_sequences(index, data_dir, a.res, a.split, task, a.sequences, a.frames,
                                    a.seed, window, a.gap, a.padding)
        clips += planned
        available += n
        shards += sorted({Path(c.path) for c in planned})
    for video in videos:
        info = open_source(video).info
        cuts: set[int] = set()
        if video not in prepared and not a.no_scene_detect:
            cuts = scene_cuts(str(video), float(info.fps), a.scene_threshold, a.min_scene_len)
        clip = plan_clip(video, task, a.frames, a.seed, window, a.gap, a.padding, cuts, info.num_frames)
        if not clip.needed:
            print(f"warning: {video}: {clip.total} frame(s), too few to score (VFI needs {a.gap + 1} in one "
                  "scene); skipped", file=sys.stderr)
            continue
        clips.append(clip)
    if not clips:
        raise UsageError("no clip had enough frames to score")
    return Validator(clips, task, conv, a.frames, a.gap, a.padding, a.tile, a.precision, cache_mb=0,
                     available=available), shards + videos


def score(a: argparse.Namespace, model: nn.Module, meta: CheckpointMeta,
          out_dir: Path) -> tuple[ValidationResult, Convention, list[Path]]:
    """Score every input with the trainer's scoring loop (trainers.validation.Validator); one
    side-by-side picture per clip. Returns the result, its convention and the videos given."""
    try:
        runner = make_runner(meta.task, model, pick_device(a.device), a.precision, a.tile, a.scale)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    conv = convention(a, meta, runner.scale if meta.task == "sr" else 0)  # VFI runners' scale is the flow's
    validator, videos = make_validator(a, meta.task, conv, getattr(runner, "window", 1))
    labels = labels_of(meta)

    def picture(s: ClipScore, example: Example | None) -> None:
        if example is not None:
            save_comparison(example, out_dir / f"{s.clip}.png", labels,
                            f"{s.clip}, frame {example.index} ({conv.describe()})")

    with tqdm(total=validator.frames_to_decode, unit="frame", desc=f"evaluate {meta.model} (decoded frames)") as bar:
        return validator.score(runner, bar.update, picture), conv, videos


def labels_of(meta: CheckpointMeta) -> tuple[str, str, str]:
    """(baseline, model, target) labels of the table and pictures."""
    return ("bicubic" if meta.task == "sr" else "blend", meta.model, "original")


def main(argv: Sequence[str] | None = None) -> int:
    a = parse_args(argv)
    if a.benchmark:
        return evaluate_benchmark.main(a)
    model, meta = load_task_model(a, None)
    a.res = a.res or meta.res or "540p"
    out_dir = Path(a.out) if a.out else Path(a.checkpoint).parent / f"eval-{Path(a.checkpoint).stem}"
    check_writable_dir(out_dir)
    t0 = time.perf_counter()
    result, conv, videos = score(a, model, meta, out_dir)
    scores, secs, base = result.scores, time.perf_counter() - t0, labels_of(meta)[0]
    if not any(s.frames for s in scores):
        raise UsageError("no clip had enough frames to score")
    print(format_table(scores, meta.model, base, conv))
    unit = "frames" if meta.task == "sr" else f"gaps of {a.gap}"
    print(f"sample: {f'{a.frames} {unit}' if a.frames else f'all {unit}'} per clip"
          f"{f', spread evenly (seed {a.seed})' if a.frames else ''}, full frames"
          + (f"; {result.clips} of {result.available} {a.split} sequences (packed data set; --sequences "
             f"{a.sequences or 'all'})" if result.available else ""))
    report = {"checkpoint": str(a.checkpoint), "model": meta.model, "size": meta.size, "task": meta.task,
              "convention": result.convention, "baseline": base, "mean": summary(scores),
              "clips": [s.as_dict() for s in scores], "seconds": secs,
              "options": {k: v for k, v in vars(a).items() if k != "inputs"}, "inputs": [str(v) for v in videos]}
    with atomic_path(out_dir / "scores.json") as tmp:
        tmp.write_text(json.dumps(report, indent=1))
    print(f"{result.frames} frames scored in {secs:.1f} s; scores and side-by-side pictures in {out_dir}")
    return 0

cli = entry_point(main, interrupted="scores.json was not written; a rerun scores every clip again")

if __name__ == "__main__":
    raise SystemExit(cli())
