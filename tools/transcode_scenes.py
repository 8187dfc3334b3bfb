"""Write every scene at the training resolutions with a short keyframe interval, one pass per scene.

Each scene is cut straight from its source (the frame range in DATA_DIR/manifest.json) by ONE ffmpeg
process that decodes the range once and feeds every tier from it (split -> scaler -> encoder per
tier): DATA_DIR/<res>/scenes/<split>/<clip>.mp4 for each of 4k, 1080p, 720p, 540p (or a subset), and
optionally the full-resolution cut DATA_DIR/orig/scenes/<split>/<clip>.mp4. Cuts are frame-accurate
(input-side seek to half a frame before the first frame, an exact frame count). Every clip: aspect
ratio kept with even dimensions, lanczos (or area/bicubic) downscale, 8-bit yuv420p, constant frame
rate, a fixed GOP (`-g N -keyint_min N`, no scene-cut keyframes), no B-frames, no audio, faststart,
so the DALI readers seek cheaply. H.264 by default (NVDEC decodes it on the GPU), HEVC, or VP9 for
DALI's CPU reader. Resolutions above the source's are skipped, never upscaled; a tier of the source's
own size is encoded without a scaler.

Encoders: `--encoder auto` uses NVENC (h264_nvenc / hevc_nvenc, NVDEC decoding with `-hwaccel cuda`,
scale_cuda) when ffmpeg lists the encoder, an NVIDIA GPU is present and a one-frame trial encode
works; otherwise x264 / x265 / libvpx-vp9 on the CPU. `--encoder cpu|nvenc` forces one.

Scene processes run in parallel, sized to the cores; finished clips are skipped on rerun; each clip
is written under a temporary name and renamed when all tiers of its scene are complete.
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Sequence

from tqdm import tqdm

from vsrvfi.core import layout
from vsrvfi.core.cli import ArgumentParser, entry_point
from vsrvfi.core.errors import UsageError
from vsrvfi.core.lock import folder_lock
from vsrvfi.core.manifest import AddResolutions, load_manifest
from vsrvfi.tools.encoding.codecs import CODECS, ENCODERS, TranscodeOptions, check_options, parse_resolutions
from vsrvfi.tools.encoding.encoders import choose_backend
from vsrvfi.tools.engines import add_engine_arguments, engine_from_args
from vsrvfi.tools.preparation.executor import commit, jobs_parallelism, run_jobs
from vsrvfi.tools.preparation.planner import plan_transcode


def transcode(data_dir: str | os.PathLike, opts: TranscodeOptions | None = None,
              show_progress: bool = True) -> dict[str, int]:
    """Write every missing tier clip of the scenes in the manifest; returns complete clips per resolution.

    Scenes are cut from the file they were detected in (the source, or its normalised copy); when
    that file is gone, from the full-resolution cut in orig/ if there is one.
    """
    opts = opts or TranscodeOptions()
    data_dir = Path(data_dir)
    backend = choose_backend(opts.codec, opts.encoder)
    manifest = load_manifest(data_dir)
    packed = [key for key, rec in manifest.sources.items() if rec.options.get("pack")]
    if packed:  # its clips are shards of many sequences (tools/pack_frames.py), not one file per scene
        raise UsageError(f"{data_dir}: {packed[0]} was imported with --pack: adding a tier to packed shards is not "
                         "supported yet; import again into a new DATA_DIR with --resolutions listing every tier")
    plan = plan_transcode(data_dir, manifest, opts, backend)
    for w in plan.warnings:
        tqdm.write(f"warning: {w}")
    if plan.jobs:
        par = jobs_parallelism(plan.jobs, backend, opts.jobs, opts.threads)
        run_jobs(data_dir, backend, par, [j for j, _, _ in plan.jobs], opts.scaler, show_progress)
    if plan.added:
        commit(data_dir, [AddResolutions(tuple(sorted(plan.added)))])
    return {res: len(layout.list_clips(data_dir, res, "train")) + len(layout.list_clips(data_dir, res, "val"))
            for res in layout.existing_tiers(data_dir)}


def add_transcode_arguments(ap: argparse.ArgumentParser) -> None:
    d = TranscodeOptions()
    ap.add_argument("--resolutions", default=",".join(d.resolutions),
                    help="tiers to write: 'auto' (the standard 4k,1080p,720p,540p that fit the source, never "
                         "upscaled, else the source's own height such as 272p) or a comma list of those and any "
                         "<height>p")
    ap.add_argument("--codec", choices=CODECS, default=d.codec,
                    help="h264 (NVDEC on GPU), hevc (NVDEC) or vp9 (DALI's CPU reader)")
    ap.add_argument("--encoder", choices=ENCODERS, default=d.encoder,
                    help="auto: NVENC when ffmpeg lists it, a GPU is present and a trial encode works, else the "
                         "CPU encoder (x264/x265/libvpx)")
    ap.add_argument("--gop", type=int, default=d.gop, help="keyframe interval in frames")
    ap.add_argument("--bframes", type=int, default=d.bframes)
    ap.add_argument("--crf", dest="crf", type=int, default=None,
                    help="tier quality (default 18 for h264, 20 for hevc, 24 for vp9; NVENC -cq)")
    ap.add_argument("--preset", default=d.preset, help="x264/x265 preset; vp9: mapped onto -cpu-used, NVENC: p1..p7")
    ap.add_argument("--scaler", choices=["lanczos", "area", "bicubic"], default=d.scaler)
    ap.add_argument("--jobs", type=int, default=d.jobs, help="scene processes at once (0: sized to the cores)")
    ap.add_argument("--threads", type=int, default=d.threads, help="encoder threads per tier (0: cores shared out)")


def transcode_options(a: argparse.Namespace) -> TranscodeOptions:
    opts = TranscodeOptions(resolutions=parse_resolutions(a.resolutions), codec=a.codec,
                            gop=a.gop, bframes=a.bframes, crf=a.crf, preset=a.preset, scaler=a.scaler,
                            jobs=a.jobs, encoder=a.encoder, threads=a.threads)
    check_options(opts)
    return opts


def main(argv: Sequence[str] | None = None) -> int:
    ap = ArgumentParser(description="Transcode scene clips to training resolutions (short GOP).")
    ap.add_argument("data_dir")
    add_transcode_arguments(ap)
    add_engine_arguments(ap)
    a = ap.parse_args(argv)
    with folder_lock(a.data_dir, "the data set", create=False):
        engine_from_args(a, a.data_dir)
        counts = transcode(a.data_dir, transcode_options(a))
    print(", ".join(f"{res}: {n} clips" for res, n in counts.items()))
    return 0


cli = entry_point(main, interrupted="complete outputs are kept; a rerun resumes")

if __name__ == "__main__":
    raise SystemExit(cli())
