"""Raw video in, training data set out: detect scenes, encode every tier, extract PNG frames, summarise.

One pass per scene: each scene's frames are decoded once from the source and encoded to every tier
(1080p, 720p, ...) by one ffmpeg process, while scene detection runs ahead; the full-resolution cut
(orig/) is written only with --keep-orig. The encoder is chosen by --encoder (auto: NVENC when the
machine has it, else x264/libvpx) and named in the summary. The stages are also standalone tools
(split_scenes, transcode_scenes, extract_frames). Rerunning after an interruption only does what is
missing. `--from-frames` imports folders of frames (Vimeo-90K, REDS, ...) instead of a video
(tools/import_frames.py).
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Sequence

from vsrvfi.core import layout
from vsrvfi.core.cli import ArgumentParser, entry_point, parse_list
from vsrvfi.tools.extract_frames import extract
from vsrvfi.core.atomic import atomic_path, dir_bytes
from vsrvfi.core.lock import folder_lock
from vsrvfi.tools.import_frames import add_frames_arguments, frames_options, import_frames
from vsrvfi.tools.split_scenes import PrepareResult, add_split_arguments, prepare_scenes, split_options
from vsrvfi.tools.transcode_scenes import add_transcode_arguments, transcode_options


def summarize(data_dir: Path, scenes, resolutions: Sequence[str], stage_seconds: dict[str, float],
              prepared: PrepareResult | None = None) -> dict:
    """Scene counts, clips per resolution and bytes on disk (clips vs PNG), as a dict and a printout."""
    kept = [s for s in scenes if not s.dropped]
    summary = {
        "scenes_found": len(scenes),
        "scenes_kept": len(kept),
        "scenes_dropped": len(scenes) - len(kept),
        "train_scenes": sum(s.split == "train" for s in kept),
        "val_scenes": sum(s.split == "val" for s in kept),
        "frames_kept": sum(s.num_frames for s in kept),
        "stage_seconds": {k: round(v, 2) for k, v in stage_seconds.items()},
        "encoder": prepared.backend.describe() if prepared and prepared.backend else None,
        "parallelism": prepared.parallelism.describe() if prepared and prepared.parallelism else None,
        "resolutions": {},
    }
    if getattr(prepared, "source_bytes", 0):  # a frame import: the frame folders' bytes
        summary["source_bytes"] = prepared.source_bytes
    if (data_dir / layout.ORIG / "scenes").is_dir():
        summary["orig_bytes"] = dir_bytes(data_dir / layout.ORIG / "scenes")
    for res in resolutions:
        clips = sum(len(layout.list_clips(data_dir, res, s)) for s in layout.SPLITS)
        summary["resolutions"][res] = {
            "clips": clips,
            "clip_bytes": dir_bytes(data_dir / res / "scenes"),
            "png_bytes": dir_bytes(data_dir / res / "frames"),
        }
    return summary


def print_summary(summary: dict) -> None:
    s = summary
    print(f"\nscenes: {s['scenes_found']} found, {s['scenes_kept']} kept ({s['train_scenes']} train, "
          f"{s['val_scenes']} val), {s['scenes_dropped']} dropped; {s['frames_kept']} frames kept")
    print("time: " + ", ".join(f"{k} {v:.1f} s" for k, v in s["stage_seconds"].items())
          + " (detection and encoding overlap)")
    if s.get("encoder"):
        print(f"encoder: {s['encoder']}; {s['parallelism']}")
    print(f"{'resolution':>10} {'clips':>6} {'clips MB':>10} {'PNG MB':>10} {'PNG/clips':>10}")
    for res, r in s["resolutions"].items():
        ratio = f"{r['png_bytes'] / r['clip_bytes']:.1f}x" if r["png_bytes"] and r["clip_bytes"] else "-"
        print(f"{res:>10} {r['clips']:>6} {r['clip_bytes'] / 1e6:>10.2f} {r['png_bytes'] / 1e6:>10.2f} {ratio:>10}")
    if s.get("source_bytes"):
        print(f"source frames: {s['source_bytes'] / 1e6:.2f} MB, " + ", ".join(
            f"{s['source_bytes'] / r['clip_bytes']:.1f}x the {res} clips"
            for res, r in s["resolutions"].items() if r["clip_bytes"]))


def main(argv: Sequence[str] | None = None) -> int:
    ap = ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("video", help="source video (e.g. the 4K Myanmar footage); with --from-frames a folder of frames")
    ap.add_argument("data_dir", nargs="?", default="data", help="output data set folder (default ./data)")
    add_split_arguments(ap)
    add_transcode_arguments(ap)
    add_frames_arguments(ap)
    ap.add_argument("--keep-orig", action="store_true",
                    help="also write the full-resolution cut of every scene to orig/ (x264, --orig-crf)")
    ap.add_argument("--frame-resolutions", default="720p,540p",
                    help="resolutions to extract PNG frames for ('' for none)")
    a = ap.parse_args(argv)
    with folder_lock(a.data_dir, "the data set"):  # one writer per DATA_DIR; released on any exit
        return _prepare(a)


def _prepare(a) -> int:
    data_dir = Path(a.data_dir)
    t_opts = transcode_options(a)
    times: dict[str, float] = {}

    t0 = time.perf_counter()
    if a.from_frames:  # frame folders (Vimeo-90K, REDS, ...) instead of a video: tools/import_frames.py
        prepared = import_frames(a.video, data_dir, frames_options(a), t_opts, a.keep_orig, a.orig_crf)
    else:
        prepared = prepare_scenes(a.video, data_dir, split_options(a), t_opts, keep_orig=a.keep_orig)
    times["detect"] = prepared.detect_seconds
    times["encode"] = prepared.encode_seconds
    times["detect+encode"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    frame_res = [r.lower() for r in parse_list(a.frame_resolutions) if r.lower() in prepared.tiers]
    if frame_res:
        extract(data_dir, frame_res, a.jobs)
    times["extract"] = time.perf_counter() - t0

    summary = summarize(data_dir, prepared.scenes, [t for t in prepared.tiers if t != layout.ORIG], times,
                        prepared)
    with atomic_path(data_dir / "summary.json") as tmp:
        tmp.write_text(json.dumps(summary, indent=2) + "\n")
    print_summary(summary)
    return 0


cli = entry_point(main, interrupted="complete outputs are kept; a rerun resumes")

if __name__ == "__main__":
    raise SystemExit(cli())
