"""Import folders of frames (Vimeo-90K, REDS, any <clip>/<numbered frames>) as clips of a data set.

`vsr-prepare ROOT DATA_DIR --from-frames` writes every frame folder under ROOT as one clip at each
tier (DATA_DIR/<res>/scenes/{train,val}/<clip>.mp4, the usual manifest.json, then the PNG
extraction), so training sets that exist as folders of PNG/JPEG frames train through the DALI
pipelines at a fraction of their size. The layouts and their splits: tools/frame_folders.py.

Frame folders hold numbered frames with one name pattern (im1.png, 00000042.png, frame_0001.jpg)
and no gap in the numbering. Every frame of an import has one size (read from the PNG/JPEG
header), even (yuv420p clips: crop odd-sized frames first) and at least 64 pixels a side; a folder
needs two frames. Any of these checks failing is one line `error: <path>: <problem>` before
anything is written. Frame folders have no frame rate: the clips get `--fps` (default 24; it only
sets timestamps, the loaders count frames). Each clip is one ffmpeg process reading the image
sequence and writing every tier (tools/preparation/local.SceneWriter: temporary names, renamed
when complete, checked to hold exactly the folder's frames); a rerun writes only the missing clips.
"""
from __future__ import annotations

import argparse
import os
import time
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from tqdm import tqdm

from vsrvfi.core.atomic import check_writable_dir
from vsrvfi.core.errors import DataError, UsageError
from vsrvfi.core.manifest import PutSource, load_manifest
from vsrvfi.tools.encoding.codecs import TranscodeOptions
from vsrvfi.tools.encoding.sizing import job_memory, plan_parallelism
from vsrvfi.tools.frame_folders import LAYOUTS, REDS_VAL, FramesOptions, check_sizes, frames_record, list_frames
from vsrvfi.tools.preparation.executor import PrepareResult, commit, run_jobs
from vsrvfi.tools.preparation.planner import plan_frames

@dataclass
class FramesResult(PrepareResult):
    """PrepareResult plus what only a frame import has: the layout and the bytes of its frames."""

    layout: str = ""
    source_bytes: int = 0              # the frames of the kept clips, as found on disk


def parse_fps(text: str) -> Fraction:
    try:
        fps = Fraction(str(text).strip()).limit_denominator(1001)
    except (ValueError, ZeroDivisionError):
        fps = None
    if fps is None or fps <= 0:
        raise UsageError(f"--fps {text!r}: expected a positive rate such as 24, 29.97 or 30000/1001")
    return fps


def import_frames(root: str | os.PathLike, data_dir: str | os.PathLike, opts: FramesOptions | None = None,
                  transcode: TranscodeOptions | None = None, keep_orig: bool = False, orig_crf: int = 10,
                  show_progress: bool = True) -> FramesResult:
    """Write every frame folder under `root` as a clip at each tier of `transcode` into `data_dir`.

    Everything is checked (layout, numbering, sizes, options) before anything is written; the
    manifest record is written first, then the clips; a rerun reuses the record and writes only
    clips that are missing or incomplete. Returns what prepare_data's extraction and summary need.
    """
    opts = opts or FramesOptions()
    transcode = transcode or TranscodeOptions()
    if opts.layout not in LAYOUTS:
        raise UsageError(f"--frames-layout {opts.layout!r}: use one of {', '.join(LAYOUTS)}")
    if opts.reds_val not in REDS_VAL:
        raise UsageError(f"--reds-val {opts.reds_val!r}: use one of {', '.join(REDS_VAL)}")
    fps = float(parse_fps(opts.fps))
    root, data_dir = Path(root), Path(data_dir)
    t0 = time.perf_counter()
    kind, key, folders, seeded = list_frames(root, opts)
    if all(f.dropped for f in folders):
        raise DataError(root, f"no clip to import: all {len(folders)} are in neither list")
    size = check_sizes(folders, show_progress)
    options = {"layout": kind, "fps": fps}  # what decides the clips and their split; a rerun must match
    options.update({"reds_val": opts.reds_val} if kind == "reds" else
                   {"val_fraction": opts.val_fraction, "seed": opts.seed} if seeded else {})
    plan = plan_frames(data_dir, load_manifest(data_dir), key, frames_record(root, kind, folders, size, fps, options),
                       transcode, keep_orig, orig_crf)
    check_writable_dir(data_dir)
    if plan.commit:
        commit(data_dir, [PutSource(key, plan.record)])
    check_seconds = time.perf_counter() - t0

    par = plan_parallelism(len(plan.tiers), transcode.jobs, transcode.threads,
                           memory_per_job=job_memory(*size, plan.tiers), hw=plan.backend.hw)
    result = FramesResult(scenes=plan.record.scenes, backend=plan.backend, parallelism=par,
                          tiers=[t.name for t in plan.tiers], warnings=[f"{root.name}: {w}" for w in plan.warnings],
                          detect_seconds=check_seconds, layout=kind,
                          source_bytes=sum(f.bytes for f in folders if not f.dropped))
    for w in result.warnings:
        tqdm.write(f"warning: {w}")
    t0 = time.perf_counter()
    result.clips_written = run_jobs(data_dir, plan.backend, par, plan.jobs, transcode.scaler, show_progress)
    result.encode_seconds = time.perf_counter() - t0 if plan.jobs else 0.0
    return result


# ----------------------------------------------------------------------------------- command line

def add_frames_arguments(ap: argparse.ArgumentParser) -> None:
    """--from-frames and its options (the split's --val-fraction/--seed are the scene splitter's)."""
    d = FramesOptions()
    g = ap.add_argument_group("frame folders (--from-frames)")
    g.add_argument("--from-frames", action="store_true",
                   help="the source is a folder of frame folders (Vimeo-90K, REDS, ROOT/<clip>/<frames>.png), "
                        "imported as clips")
    g.add_argument("--frames-layout", choices=LAYOUTS, default=d.layout,
                   help="vimeo: ROOT/sequences/*/*/im1.png; reds: ROOT/train_sharp/000/00000000.png; folders: "
                        "ROOT/<clip>/<numbered frames>; auto: detected in that order")
    g.add_argument("--fps", default=d.fps, help="frame rate of the clips (frame folders have none; default 24)")
    g.add_argument("--reds-val", choices=REDS_VAL, default=d.reds_val,
                   help="reds4: val = REDS4 (000, 011, 015, 020), the rest trains, val_sharp included (EDVR); "
                        "val_sharp: REDS's official train_sharp / val_sharp partition")


def frames_options(a: argparse.Namespace) -> FramesOptions:
    if not 0.0 <= a.val_fraction < 1.0:
        raise UsageError(f"--val-fraction {a.val_fraction}: must be in [0, 1)")
    parse_fps(a.fps)
    return FramesOptions(layout=a.frames_layout, fps=str(a.fps).strip(), val_fraction=a.val_fraction, seed=a.seed,
                         reds_val=a.reds_val)
