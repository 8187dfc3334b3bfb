"""Split a long video into scene clips with PySceneDetect and record them in DATA_DIR/manifest.json.

Each kept scene is written to DATA_DIR/orig/scenes/{train,val}/<clip>.mp4: audio removed, constant
frame rate, 8-bit yuv420p, even dimensions, cut frame-accurately (input-side seek with a
re-encode, near-lossless by default so the ground truth stays clean). Sources that are VFR, 10-bit,
HDR or odd-sized are first normalised to one such intermediate, so frame numbers mean the same thing
to the detector, the cutter and the loaders. The train/val split is by whole scenes, deterministic
for a seed. Reruns reuse the manifest and write only clips that are missing.

`prepare_scenes` is the one-pass pipeline behind tools/prepare_data.py: the planner
(tools/preparation/planner.plan_source) says what a source needs, the executor
(tools/preparation/executor.run_source) detects its scenes and encodes each to every tier (and
orig/ only when asked) with one ffmpeg process while detection runs ahead.
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Sequence

from vsrvfi.core.atomic import check_writable_dir
from vsrvfi.core.cli import ArgumentParser, entry_point
from vsrvfi.core.errors import UsageError
from vsrvfi.core.lock import folder_lock
from vsrvfi.core.manifest import Scene, load_manifest
from vsrvfi.core.media import VideoInfo, probe
from vsrvfi.tools.encoding.codecs import TranscodeOptions
from vsrvfi.tools.engines import add_engine_arguments, engine_from_args
from vsrvfi.tools.preparation.executor import PrepareResult, SceneEngine, run_source
from vsrvfi.tools.preparation.planner import plan_source
from vsrvfi.tools.preparation.scenes import SplitOptions, check_source


def prepare_scenes(video: str | os.PathLike, data_dir: str | os.PathLike, opts: SplitOptions | None = None,
                   transcode: TranscodeOptions | None = None, keep_orig: bool = False,
                   show_progress: bool = True, key: str | None = None, writer: SceneEngine | None = None,
                   force: bool = False, alone: bool = True, info: VideoInfo | None = None) -> PrepareResult:
    """Detect the scenes of `video` and write each kept scene's clips in one pass per scene.

    The tiers are `transcode.resolutions` (none when `transcode` is None) plus the full-resolution
    cut in orig/ when `keep_orig`. Reruns reuse the manifest and redo only missing or incomplete
    clips (a scene is complete when all its tier clips are). Many sources: `key` names the source in
    the manifest and its clips (default: the file's stem), `writer` is an engine shared by the sources,
    `alone` says whether this is the data set's only source (planner.val_count). `force` re-encodes
    every tier of every scene; `info`: the probe, if done.
    """
    opts = opts or SplitOptions()
    transcode = transcode or TranscodeOptions(resolutions=())
    video, data_dir = Path(video), Path(data_dir)
    info = info or probe(video)
    check_source(video, info)  # before DATA_DIR is created
    check_writable_dir(data_dir)
    plan = plan_source(video, data_dir, load_manifest(data_dir), opts, transcode, keep_orig, key or video.stem,
                       force, info)
    return run_source(plan, writer, alone, show_progress, transcode.jobs, transcode.threads, transcode.scaler)


def split_video(video: str | os.PathLike, data_dir: str | os.PathLike, opts: SplitOptions | None = None,
                show_progress: bool = True) -> list[Scene]:
    """Detect, plan and write the scenes of `video` into `data_dir/orig`; returns all scenes (kept and dropped)."""
    return prepare_scenes(video, data_dir, opts, None, keep_orig=True, show_progress=show_progress).scenes


def add_split_arguments(ap: argparse.ArgumentParser) -> None:
    d = SplitOptions()
    ap.add_argument("--detector", choices=["content", "adaptive"], default=d.detector)
    ap.add_argument("--threshold", type=float, default=None, help="detector threshold (content 27, adaptive 3)")
    ap.add_argument("--min-scene-len", default=d.min_scene_len, help="frames (24) or seconds (1.0s)")
    ap.add_argument("--trim", type=int, default=d.trim, help="frames dropped on each side of every cut")
    ap.add_argument("--val-fraction", type=float, default=d.val_fraction)
    ap.add_argument("--seed", type=int, default=d.seed, help="seed of the train/val split")
    ap.add_argument("--orig-crf", dest="orig_crf", type=int, default=d.crf,
                    help="x264 CRF of the full-resolution cuts in orig/ (near-lossless)")
    ap.add_argument("--downscale", type=int, default=d.downscale, help="detector downscale factor (0 = auto)")


def split_options(a: argparse.Namespace) -> SplitOptions:
    if not 0.0 <= a.val_fraction < 1.0:
        raise UsageError(f"--val-fraction {a.val_fraction}: must be in [0, 1)")
    if a.trim < 0:
        raise UsageError("--trim must be >= 0")
    return SplitOptions(detector=a.detector, threshold=a.threshold, min_scene_len=str(a.min_scene_len),
                        trim=a.trim, val_fraction=a.val_fraction, seed=a.seed, crf=a.orig_crf,
                        downscale=a.downscale)


def main(argv: Sequence[str] | None = None) -> int:
    ap = ArgumentParser(description="Split a video into scene clips (PySceneDetect) for training.")
    ap.add_argument("video")
    ap.add_argument("data_dir")
    add_split_arguments(ap)
    add_engine_arguments(ap)
    a = ap.parse_args(argv)
    with folder_lock(a.data_dir, "the data set"):
        engine_from_args(a, a.data_dir)
        scenes = split_video(a.video, a.data_dir, split_options(a))
    kept = [s for s in scenes if not s.dropped]
    print(f"{len(scenes)} scenes found, {len(kept)} kept "
          f"({sum(s.split == 'train' for s in kept)} train, {sum(s.split == 'val' for s in kept)} val), "
          f"{len(scenes) - len(kept)} dropped")
    return 0


cli = entry_point(main, interrupted="complete outputs are kept; a rerun resumes")

if __name__ == "__main__":
    raise SystemExit(cli())
