"""Transcode every scene clip to the training resolutions with a short keyframe interval.

DATA_DIR/orig/scenes/<split>/<clip>.mp4 -> DATA_DIR/<res>/scenes/<split>/<clip>.mp4 for each of
4k, 1080p, 720p, 540p (or a subset): aspect ratio kept with even dimensions, lanczos (or area)
downscale, 8-bit yuv420p, constant frame rate, a fixed GOP (`-g N -keyint_min N`, no scene-cut
keyframes) and no B-frames so the DALI reader seeks cheaply. H.264 by default (NVDEC decodes it on
the GPU); VP9 for DALI's CPU reader. Resolutions above the source's are skipped, never upscaled.
Jobs run in parallel; finished clips are skipped on rerun; each clip is written under a temporary
name and renamed when complete.
"""
from __future__ import annotations

import argparse
import functools
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import ffmpeg
from tqdm import tqdm

from vsrvfi.core import layout
from vsrvfi.core.lock import folder_lock
from vsrvfi.core.cli import ArgumentParser, entry_point, parse_list
from vsrvfi.core.errors import UsageError
from vsrvfi.core.atomic import atomic_path
from vsrvfi.core.errors import MediaError
from vsrvfi.core.ffmpeg import run_ffmpeg, run_ffmpeg_jobs
from vsrvfi.core.media import even_size, probe
from vsrvfi.core.manifest import Scene, load_manifest, manifest_scenes

CODECS = ("h264", "vp9")


@dataclass
class TranscodeOptions:
    resolutions: tuple[str, ...] = tuple(layout.RESOLUTIONS)
    codec: str = "h264"
    gop: int = 4
    bframes: int = 0
    crf: int | None = None      # None: 18 for H.264, 24 for VP9
    preset: str = "medium"      # x264 preset; VP9 maps it onto -cpu-used
    scaler: str = "lanczos"     # or "area"
    jobs: int = 0               # 0: one per two cores


@dataclass(frozen=True)
class Job:
    scene: Scene
    res: str
    src: Path
    dst: Path
    width: int
    height: int


_VP9_SPEED = {"ultrafast": 8, "superfast": 8, "veryfast": 7, "faster": 6, "fast": 5, "medium": 4, "slow": 2,
              "slower": 1, "veryslow": 0}


def codec_args(opts: TranscodeOptions) -> dict:
    """ffmpeg-python output keyword arguments for the chosen codec."""
    gop = dict(g=opts.gop, keyint_min=opts.gop)
    if opts.codec == "h264":
        return dict(vcodec="libx264", crf=18 if opts.crf is None else opts.crf, preset=opts.preset,
                    profile="high", bf=opts.bframes, sc_threshold=0, **gop)
    if opts.codec == "vp9":
        # Alt-ref (hidden) frames are VP9's B-frames; leave them off unless B-frames are asked for.
        return {"c:v": "libvpx-vp9", "crf": 24 if opts.crf is None else opts.crf, "b:v": 0, "row-mt": 1,
                "deadline": "good", "cpu-used": _VP9_SPEED.get(opts.preset, 4),
                "auto-alt-ref": 1 if opts.bframes else 0, "lag-in-frames": 16 if opts.bframes else 0, **gop}
    raise UsageError(f"--codec {opts.codec!r}: use one of {', '.join(CODECS)}")


def is_complete(path: Path, num_frames: int, width: int, height: int, codec: str) -> bool:
    """True when `path` is a readable clip with the expected frame count, size and codec."""
    if not path.exists():
        return False
    try:
        info = probe(path)
    except MediaError:
        return False
    return (info.num_frames, info.width, info.height, info.codec) == (num_frames, width, height, codec)


def plan_jobs(data_dir: Path, opts: TranscodeOptions) -> tuple[list[Job], list[str]]:
    """The clips still to write, and warnings (resolutions skipped because the source is smaller)."""
    scenes = manifest_scenes(load_manifest(data_dir))
    if not scenes:
        raise UsageError(f"{data_dir}: no scenes in {layout.MANIFEST}; run vsr-split-scenes first")
    jobs, warnings = [], []
    for res in opts.resolutions:
        target_h = layout.resolution_height(res)
        for sc in scenes:
            src = layout.clip_path(data_dir, layout.ORIG, sc.split, sc.clip)
            if not src.exists():
                raise MediaError(src, "missing scene clip; rerun vsr-split-scenes")
            info = probe(src)
            if target_h > info.height:
                warnings.append(f"{sc.clip}: source is {info.height} high, {res} skipped (no upscaling)")
                continue
            w, h = even_size(info.width, info.height, target_h)
            dst = layout.clip_path(data_dir, res, sc.split, sc.clip)
            if not is_complete(dst, sc.num_frames, w, h, opts.codec):
                jobs.append(Job(sc, res, src, dst, w, h))
    return jobs, warnings


def transcode_one(job: Job, opts: TranscodeOptions, threads: int, on_frames: Callable[[int], None]) -> None:
    with atomic_path(job.dst) as tmp:
        stream = ffmpeg.input(str(job.src)).video
        stream = stream.filter("scale", job.width, job.height, flags=opts.scaler).filter("format", "yuv420p")
        args = (ffmpeg.output(stream, str(tmp), an=None, r=job.scene.fps, fps_mode="cfr", f="mp4",
                              movflags="+faststart", **codec_args(opts))
                .overwrite_output().get_args())
        run_ffmpeg(args, job.dst, on_frames=on_frames, threads=threads)
        got = probe(tmp).num_frames
        if got != job.scene.num_frames:
            raise MediaError(job.dst, f"transcode wrote {got} frames, expected {job.scene.num_frames}")


def transcode(data_dir: str | os.PathLike, opts: TranscodeOptions | None = None,
              show_progress: bool = True) -> dict[str, int]:
    """Write all missing clips; returns the number of complete clips per resolution."""
    opts = opts or TranscodeOptions()
    data_dir = Path(data_dir)
    if opts.gop < 1:
        raise UsageError("--gop must be >= 1")
    codec_args(opts)  # validates the codec early
    for res in opts.resolutions:
        layout.resolution_height(res)
    jobs, warnings = plan_jobs(data_dir, opts)
    for w in warnings:
        tqdm.write(f"warning: {w}")
    run_ffmpeg_jobs([functools.partial(transcode_one, j, opts) for j in jobs], sum(j.scene.num_frames for j in jobs),
                    f"transcode {opts.codec}", opts.jobs, show_progress)
    return {res: len(layout.list_clips(data_dir, res, "train")) + len(layout.list_clips(data_dir, res, "val"))
            for res in opts.resolutions}


def add_transcode_arguments(ap: argparse.ArgumentParser) -> None:
    d = TranscodeOptions()
    ap.add_argument("--resolutions", default=",".join(d.resolutions), help="comma list of 4k,1080p,720p,540p")
    ap.add_argument("--codec", choices=CODECS, default=d.codec,
                    help="h264 (NVDEC on GPU) or vp9 (DALI's CPU reader)")
    ap.add_argument("--gop", type=int, default=d.gop, help="keyframe interval in frames")
    ap.add_argument("--bframes", type=int, default=d.bframes)
    ap.add_argument("--crf", type=int, default=None, help="quality (default 18 for h264, 24 for vp9)")
    ap.add_argument("--preset", default=d.preset, help="x264 preset; for vp9 mapped onto -cpu-used")
    ap.add_argument("--scaler", choices=["lanczos", "area", "bicubic"], default=d.scaler)
    ap.add_argument("--jobs", type=int, default=d.jobs, help="parallel ffmpeg processes (0: cores/2)")


def transcode_options(a: argparse.Namespace) -> TranscodeOptions:
    return TranscodeOptions(resolutions=tuple(r.lower() for r in parse_list(a.resolutions)), codec=a.codec,
                            gop=a.gop, bframes=a.bframes, crf=a.crf, preset=a.preset, scaler=a.scaler,
                            jobs=a.jobs)


def main(argv: Sequence[str] | None = None) -> int:
    ap = ArgumentParser(description="Transcode scene clips to training resolutions (short GOP).")
    ap.add_argument("data_dir")
    add_transcode_arguments(ap)
    a = ap.parse_args(argv)
    with folder_lock(a.data_dir, "the data set", create=False):
        counts = transcode(a.data_dir, transcode_options(a))
    print(", ".join(f"{res}: {n} clips" for res, n in counts.items()))
    return 0


cli = entry_point(main, interrupted="complete outputs are kept; a rerun resumes")

if __name__ == "__main__":
    raise SystemExit(cli())
