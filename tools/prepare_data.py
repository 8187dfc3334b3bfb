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
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Sequence

from vsrvfi.core import layout
from vsrvfi.core.atomic import atomic_path, check_writable_dir, dir_bytes
from vsrvfi.core.cli import ArgumentParser, entry_point
from vsrvfi.core.errors import UsageError
from vsrvfi.core.lock import folder_lock
from vsrvfi.core.manifest import EndForce, load_manifest
from vsrvfi.tools import sources
from vsrvfi.tools.engines import add_engine_arguments, engine_from_args
from vsrvfi.tools.extract_frames import extract
from vsrvfi.tools.import_frames import add_frames_arguments, frames_options, import_frames
from vsrvfi.tools.split_scenes import add_split_arguments, split_options
from vsrvfi.tools.encoding.encoders import choose_backend
from vsrvfi.tools.preparation.executor import (PrepareResult, commit, detect_jobs, engine_report, run_sources,
                                              start_run, writer_parallelism)
from vsrvfi.tools.preparation.planner import plan_run
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
    rows = s.get("sources") or []
    if len(rows) > 1:
        print(f"{'source':>20} {'size':>10} {'fps':>7} {'scenes':>7} {'train':>6} {'val':>4} {'frames':>7}")
        for r in rows:
            print(f"{r['key'][-20:]:>20} {r['size']:>10} {r['fps']:>7g} {r['kept']:>7} {r['train']:>6} {r['val']:>4} "
                  f"{r['frames']:>7}")
    run = s.get("this_run") or {}
    if run.get("engine", "local") != "local":
        print(f"engine: {run['engine']} on {len(run.get('nodes', []))} node(s) "
              f"({', '.join(sorted({n['node'] for n in run.get('nodes', [])}))}); "
              f"{run.get('engine_parallelism')} in the cluster; "
              f"{len(run.get('retries', []))} scene task(s) resubmitted after a lost worker or node")
    if s.get("this_run"):
        print(f"this run: {', '.join(s['this_run']['sources']) or 'nothing new'}; clips written: "
              + (", ".join(f"{k} {v}" for k, v in s["this_run"]["clips_written"].items()) or "none (all complete)")
              + (f"; {run['scenes_decoded_once']} scene(s) encoded from scene detection's decode (--decode once)"
                 if run.get("scenes_decoded_once") else ""))
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
    ap.add_argument("inputs", nargs="+", metavar="SOURCE",
                    help="source videos and folders of videos, then DATA_DIR (the output data set folder); "
                         "with one SOURCE alone, DATA_DIR is ./data")
    add_split_arguments(ap)
    add_transcode_arguments(ap)
    add_frames_arguments(ap)
    add_engine_arguments(ap)
    ap.add_argument("--keep-orig", action="store_true",
                    help="also write the full-resolution cut of every scene to orig/ (x264, --orig-crf)")
    ap.add_argument("--frame-resolutions", default=sources.AUTO,
                    help="tiers to extract PNG frames for: 'auto' (720p and 540p where the data set has them, "
                         "else its smallest tier), a comma list, or '' for none")
    ap.add_argument("--force", action="store_true",
                    help="re-encode (or re-detect) what a change of options makes stale instead of refusing; "
                         "every clip is rewritten under a temporary name and renamed when complete")
    a = ap.parse_args(argv)
    # Everything that can be wrong with the command is found before DATA_DIR is created.
    s_opts, t_opts = split_options(a), transcode_options(a)
    frame_res = sources.parse_frame_resolutions(a.frame_resolutions)
    videos, data_dir = sources.split_inputs(a.inputs)
    if a.from_frames:  # frame folders (Vimeo-90K, REDS, ...) instead of videos: tools/import_frames.py
        if len(videos) != 1:
            raise UsageError("--from-frames imports one frame-folder root at a time: ROOT DATA_DIR")
        f_opts = frames_options(a)
        if f_opts.pack and a.engine != "local":  # pack_frames runs its own process pool
            print(f"note: --pack: the shards are encoded on this machine; --engine {a.engine} runs the unpacked "
                  "(long) folders' jobs", file=sys.stderr)
        with folder_lock(data_dir, "the data set"):
            engine_from_args(a, data_dir)
            return _import(a, Path(videos[0]), data_dir, f_opts, t_opts, frame_res)
    found = sources.collect_videos(videos)
    infos = sources.probe_sources(found)
    with folder_lock(data_dir, "the data set"):  # one writer per DATA_DIR; released on any exit
        engine_from_args(a, data_dir)
        return _prepare(a, data_dir, s_opts, t_opts, frame_res, infos)


def _import(a, root: Path, data_dir: Path, f_opts, t_opts, frame_res) -> int:
    t0 = time.perf_counter()
    prepared = import_frames(root, data_dir, f_opts, t_opts, a.keep_orig, a.orig_crf)
    times = {"detect": 0.0, "encode": prepared.encode_seconds, "detect+encode": time.perf_counter() - t0}
    tiers = [t for t in prepared.tiers if t != layout.ORIG]
    t0 = time.perf_counter()
    extract_res = sources.frame_tiers(frame_res, tiers)
    if f_opts.pack:  # indexed (DATA_DIR/sequences.json): the PNG loader reads the set's own frames in place
        extract_res = []
    if extract_res:
        extract(data_dir, extract_res, a.jobs)
    times["extract"] = time.perf_counter() - t0
    summary = summarize(data_dir, prepared.scenes, tiers, times, prepared)
    p = prepared.packed
    if p is not None:
        summary["packed"] = {"sequences": p.sequences, "shards": p.shards, "sequences_written": p.sequences_written,
                             "shards_written": p.shards_written, "frames_written": p.frames_written,
                             "encode_seconds": round(p.encode_seconds, 2)}
    summary["engine"] = engine_report()
    _write_summary(data_dir, summary)
    if p is not None:
        rate = f", {p.sequences_written / p.encode_seconds:.1f} sequences/s" if p.encode_seconds else ""
        print(f"packed: {p.sequences} sequences in {p.shards} clip files (DATA_DIR/sequences.json); this run wrote "
              f"{p.sequences_written} sequences in {p.shards_written} files in {p.encode_seconds:.1f} s{rate}; "
              f"no PNG frames extracted: data.loader=png reads the frames in place")
    return 0


def _write_summary(data_dir: Path, summary: dict) -> None:
    with atomic_path(data_dir / "summary.json") as tmp:
        tmp.write_text(json.dumps(summary, indent=2) + "\n")
    print_summary(summary)


def _prepare(a, data_dir: Path, s_opts, t_opts, frame_res, infos: dict) -> int:
    times: dict[str, float] = {}
    t0 = time.perf_counter()
    check_writable_dir(data_dir)
    plan = plan_run(data_dir, load_manifest(data_dir), infos, s_opts, t_opts, a.keep_orig, a.force)
    start_run(data_dir, plan)
    t_run = replace(t_opts, resolutions=tuple(plan.tiers))
    backend = choose_backend(t_opts.codec, t_opts.encoder)
    par = writer_parallelism(plan, t_run, backend, a.keep_orig)
    results, written = run_sources(data_dir, plan, s_opts, t_run, a.keep_orig, backend, par)
    ended = time.perf_counter()
    commit(data_dir, [EndForce()])
    starts = [r.first_job_at for r in results if r.first_job_at is not None]
    times["detect"] = sum(r.detect_seconds for r in results)
    times["encode"] = ended - min(starts) if starts else 0.0
    times["detect+encode"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    extract_res = sources.frame_tiers(frame_res, plan.tiers)
    if extract_res:
        extract(data_dir, extract_res, a.jobs)
    times["extract"] = time.perf_counter() - t0

    manifest = load_manifest(data_dir)
    prepared = PrepareResult(scenes=manifest.scenes(kept_only=False), backend=backend, parallelism=par,
                             tiers=plan.tiers, warnings=[w for r in results for w in r.warnings])
    summary = summarize(data_dir, prepared.scenes, plan.tiers, times, prepared)
    summary["sources"] = sources.source_table(manifest)
    summary["this_run"] = {"sources": [s.key for s in plan.sources], "clips_written": written,
                           "detect_jobs": detect_jobs(len(plan.sources)), **engine_report()}
    _write_summary(data_dir, summary)
    return 0


cli = entry_point(main, interrupted="complete outputs are kept; a rerun resumes")

if __name__ == "__main__":
    raise SystemExit(cli())
