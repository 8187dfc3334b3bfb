"""Split a long video into scene clips with PySceneDetect and record them in DATA_DIR/manifest.json.

Each kept scene is written to DATA_DIR/orig/scenes/{train,val}/<clip>.mp4: audio removed, constant
frame rate, 8-bit yuv420p, even dimensions, cut frame-accurately (input-side seek with a
re-encode, near-lossless by default so the ground truth stays clean). Sources that are VFR, 10-bit,
HDR or odd-sized are first normalised to one such intermediate, so frame numbers mean the same thing
to the detector, the cutter and the loaders. The train/val split is by whole scenes, deterministic
for a seed. Reruns reuse the manifest and write only clips that are missing.

`prepare_scenes` is the one-pass pipeline behind tools/prepare_data.py: each scene is encoded to
every tier (and orig/ only when asked) by one ffmpeg process while detection runs ahead; see
tools/transcode_scenes.py for the per-scene job.
"""
from __future__ import annotations

import argparse
import hashlib
import math
import os
import random
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Sequence

from tqdm import tqdm

from vsrvfi.core import layout
from vsrvfi.core.scenes import DETECTOR_MIN_LEN, detect_scenes as detect_ranges
from vsrvfi.core.manifest import Scene, SourceRecord, describe_changes, load_manifest, update_manifest
from vsrvfi.core.lock import folder_lock
from vsrvfi.core.cli import ArgumentParser, entry_point
from vsrvfi.core.errors import UsageError
from vsrvfi.core.atomic import atomic_path, check_writable_dir
from vsrvfi.core.ffmpeg import run_ffmpeg
from vsrvfi.core.media import VideoInfo, probe
from vsrvfi.tools.encoding.codecs import TranscodeOptions
from vsrvfi.tools.encoding.command import SceneJob, make_tiers, missing_tiers
from vsrvfi.tools.encoding.encoders import Backend, choose_backend, nvdec_works
from vsrvfi.tools.encoding.sizing import Parallelism, job_memory, plan_parallelism
from vsrvfi.tools.preparation.executor import SceneWriter

MIN_SIDE = 64  # the smallest training crop of any config (EDVR's CPU setting); smaller sources train nothing
IMAGE_CODECS = {"png", "mjpeg", "bmp", "tiff", "webp", "gif", "jpeg2000", "jpegls", "ppm", "pgm", "pam", "qoi"}


@dataclass
class SplitOptions:
    detector: str = "content"          # "content" or "adaptive"
    threshold: float | None = None     # detector default when None (content 27, adaptive 3.0)
    min_scene_len: str = "1.0s"        # frames ("24") or seconds ("1.0s" / "0.5")
    trim: int = 0                      # frames dropped on each side of every cut
    val_fraction: float = 0.1
    seed: int = 0
    crf: int = 10                      # quality of the orig clips (x264; near-lossless)
    preset: str = "veryfast"
    downscale: int = 0                 # detector analysis downscale; 0 = PySceneDetect's auto


# The command-line flag of each SplitOptions field, for errors that name what changed.
SPLIT_FLAGS = {"detector": "--detector", "threshold": "--threshold", "min_scene_len": "--min-scene-len",
               "trim": "--trim", "val_fraction": "--val-fraction", "seed": "--seed", "crf": "--orig-crf",
               "preset": "the orig preset", "downscale": "--downscale"}


def parse_min_len(text: str, fps: float) -> int:
    """'24' -> 24 frames; '1.5s' or '1.5' -> frames in 1.5 seconds at `fps`."""
    t = str(text).strip().lower()
    try:
        if t.endswith("s"):
            return max(1, math.ceil(float(t[:-1]) * fps))
        if "." in t:
            return max(1, math.ceil(float(t) * fps))
        return max(1, int(t))
    except ValueError:
        raise UsageError(f"--min-scene-len {text!r}: expected frames (24) or seconds (1.0s)") from None


def fingerprint(path: Path) -> str:
    """Cheap identity of a source file: size, mtime and the first MiB."""
    st = path.stat()
    h = hashlib.sha1(f"{st.st_size}:{int(st.st_mtime)}".encode())
    with open(path, "rb") as f:
        h.update(f.read(1 << 20))
    return h.hexdigest()[:16]


def needs_normalizing(info: VideoInfo) -> list[str]:
    """Reasons the source must be converted before detection and cutting (empty when none)."""
    reasons = []
    if info.is_vfr:
        reasons.append("variable frame rate")
    if info.bit_depth > 8:
        reasons.append(f"{info.bit_depth}-bit")
    if info.is_hdr:
        reasons.append("HDR")
    if info.width % 2 or info.height % 2:
        reasons.append(f"odd size {info.width}x{info.height}")
    if info.pix_fmt not in ("yuv420p", "yuvj420p"):
        reasons.append(f"pixel format {info.pix_fmt}")
    return reasons


def _video_filters(info: VideoInfo) -> list[str]:
    """ffmpeg filters that make a frame 8-bit SDR yuv420p with even dimensions."""
    filters = []
    if info.is_hdr:
        filters.append("zscale=t=linear:npl=100,format=gbrpf32le,zscale=p=bt709,tonemap=hable:desat=0,"
                       "zscale=t=bt709:m=bt709:r=tv")
    if info.width % 2 or info.height % 2:
        filters.append(f"crop={info.width - info.width % 2}:{info.height - info.height % 2}:0:0")
    filters.append("format=yuv420p")
    return filters


def normalize_source(info: VideoInfo, out: Path, opts: SplitOptions) -> Path:
    """Convert the source to CFR 8-bit yuv420p even-sized H.264 (near-lossless), atomically."""
    if out.exists():
        return out
    fps = info.fps
    with atomic_path(out) as tmp, tqdm(total=info.num_frames, unit="frame", desc="normalise source") as bar:
        run_ffmpeg(["-y", "-i", info.path, "-map", "0:v:0", "-an", "-sn", "-dn",
                    "-vf", ",".join(["fps=" + str(fps)] + _video_filters(info)),
                    "-fps_mode", "cfr", "-c:v", "libx264", "-crf", str(opts.crf), "-preset", opts.preset,
                    "-bf", "0", "-f", "mp4", str(tmp)], out, on_frames=bar.update)
    return out


def detect_scenes(path: Path, opts: SplitOptions, fps: float, show_progress: bool = True,
                  on_cut: Callable[[int], None] | None = None) -> list[tuple[int, int]]:
    """core.scenes.detect_scenes with the split options: the detector's own minimum suppresses bursts
    of false cuts; the user's minimum, which may be longer, drops whole scenes afterwards (plan_scene)."""
    burst = min(DETECTOR_MIN_LEN, parse_min_len(opts.min_scene_len, fps))
    return detect_ranges(path, opts.detector, opts.threshold, burst, opts.downscale, show_progress, on_cut)


def plan_scene(index: int, start: int, end: int, source: Path, fps: float, opts: SplitOptions,
               total_frames: int, key: str | None = None) -> Scene:
    """One scene from its detected range: trimmed at cuts, dropped when shorter than the minimum."""
    min_len = parse_min_len(opts.min_scene_len, fps)
    s = start + (opts.trim if start > 0 else 0)
    e = end - (opts.trim if end < total_frames else 0)
    sc = Scene(clip=layout.clip_name(source, index, key), source=str(source), index=index, start_frame=s, end_frame=e,
               start_time=round(s / fps, 6), end_time=round(e / fps, 6), fps=fps, num_frames=max(e - s, 0))
    if sc.num_frames < min_len:
        sc.dropped = f"shorter than {min_len} frames"
    return sc


def val_count(n: int, fraction: float, rng: random.Random, alone: bool) -> int:
    """How many of a source's `n` kept scenes go to val.

    A data set's only source keeps at least one scene for val and one for training. One source among
    several gives `fraction` of its scenes in expectation (the fractional part drawn from `rng`), so
    many short sources do not each give up a scene and every source can contribute to val.
    """
    if alone:
        return min(n - 1, max(1, round(fraction * n))) if n >= 2 else 0
    want = fraction * n
    k = math.floor(want) + (rng.random() < want - math.floor(want))
    return min(k, n - 1) if n >= 2 else k


def plan_scenes(ranges: list[tuple[int, int]], source: Path, fps: float, opts: SplitOptions,
                total_frames: int, key: str | None = None, alone: bool = True) -> list[Scene]:
    """Apply trimming at cuts and the minimum length, then assign train/val by whole scenes.

    The split depends only on this source, its key and the seed, so adding sources to a data set
    later never moves an existing scene. `alone`: the data set's only source (see `val_count`).
    """
    scenes = [plan_scene(i, start, end, source, fps, opts, total_frames, key) for i, (start, end) in enumerate(ranges)]
    kept = [s for s in scenes if not s.dropped]
    rng = random.Random(opts.seed if alone else f"{opts.seed}:{key or Path(source).stem}")
    val = set(rng.sample(range(len(kept)), val_count(len(kept), opts.val_fraction, rng, alone)))
    for i, s in enumerate(kept):
        s.split = "val" if i in val else "train"
    return scenes


@dataclass
class PrepareResult:
    """What `prepare_scenes` did: every scene (kept and dropped), the encoder and the time spent."""

    scenes: list[Scene]
    backend: Backend | None = None
    parallelism: Parallelism | None = None
    tiers: list[str] = field(default_factory=list)
    clips_written: dict[str, int] = field(default_factory=dict)
    detect_seconds: float = 0.0        # 0 when the manifest already had the scenes
    encode_seconds: float = 0.0        # from the first scene job to the last (overlaps detection)
    first_job_at: float | None = None  # time.perf_counter() of the first scene job (a shared writer ends later)
    warnings: list[str] = field(default_factory=list)


def check_source(video: Path, info: VideoInfo) -> None:
    """One-line errors for sources nothing can be trained on: still images, too short, too small."""
    if info.num_frames == 1 and info.codec in IMAGE_CODECS:
        raise UsageError(f"{video}: a still image ({info.codec}), not a video")
    if info.num_frames < 2:
        raise UsageError(f"{video}: too short ({info.num_frames} frame); a scene needs at least 2")
    if min(info.width, info.height) < MIN_SIDE:
        raise UsageError(f"{video}: too small ({info.width}x{info.height}) for a training crop; needs at least "
                         f"{MIN_SIDE} pixels a side")


def record_conflict(video: Path, data_dir: Path, record: dict, fp: str, opts: SplitOptions) -> str | None:
    """Why `video` cannot resume from its manifest `record` (the file changed, or its scene options),
    as the one-line error, naming the options that differ; None when it can."""
    if record["fingerprint"] != fp:
        return (f"{video}: changed since {data_dir} was prepared from it; --force prepares it again (its old "
                "scenes are removed)")
    if record["options"] != asdict(opts):
        changes = describe_changes(record["options"], asdict(opts), SPLIT_FLAGS)
        return (f"{video}: {data_dir} was prepared from it with other options ({'; '.join(changes)}); use "
                "those, or --force to detect its scenes again")
    return None


def prepare_scenes(video: str | os.PathLike, data_dir: str | os.PathLike, opts: SplitOptions | None = None,
                   transcode: TranscodeOptions | None = None, keep_orig: bool = False,
                   show_progress: bool = True, key: str | None = None, writer: SceneWriter | None = None,
                   force: bool = False, alone: bool = True, info: VideoInfo | None = None) -> PrepareResult:
    """Detect the scenes of `video` and write each kept scene's clips in one pass per scene.

    The tiers are `transcode.resolutions` (none when `transcode` is None) plus the full-resolution
    cut in orig/ when `keep_orig`. Every scene is one ffmpeg process that decodes its frame range of
    the source once and encodes every missing tier; scenes are encoded while detection runs ahead
    (a scene is final as soon as the cut after it is found), their clips renamed into train/ or
    val/ once the split is known. Reruns reuse the manifest and redo only missing or incomplete
    clips (a scene is complete when all its tier clips are).

    Many sources: `key` names the source in the manifest and its clips (default: the file's stem),
    `writer` is a SceneWriter shared by the sources (so one source's scenes encode while the next one's
    detection runs), `alone` says whether this is the data set's only source (see `val_count`).
    `force` re-encodes every tier of every scene (options changed on purpose); `info`: the probe, if done.
    """
    opts = opts or SplitOptions()
    transcode = transcode or TranscodeOptions(resolutions=())
    video, data_dir = Path(video), Path(data_dir)
    info = info or probe(video)
    check_source(video, info)
    check_writable_dir(data_dir)
    manifest = load_manifest(data_dir)
    stem = key or video.stem
    fp = fingerprint(video)
    record = manifest["sources"].get(stem)
    opt_dict = asdict(opts)
    problem = record_conflict(video, data_dir, record, fp, opts) if record is not None else None
    if problem:
        raise UsageError(problem)
    if transcode.resolutions:
        backend = choose_backend(transcode.codec, transcode.encoder)
    else:  # orig/ only: the near-lossless cut is x264 on the CPU
        backend = Backend("cpu", "h264", "libx264", "full-resolution cuts only")
        transcode = TranscodeOptions(resolutions=(), codec="h264")

    # The file the scenes are cut from: the source, or its normalised copy (made when first needed).
    normalized_path = data_dir / layout.ORIG / "normalized" / f"{stem}.mp4"
    reasons = needs_normalizing(info)
    if record is not None:  # the manifest has the size and rate of the file the scenes were cut from
        width, height, fps, total = (record["info"]["width"], record["info"]["height"], float(record["info"]["fps"]),
                                     record["info"]["num_frames"])
    else:
        width, height, fps, total = info.width - info.width % 2, info.height - info.height % 2, None, None
    tiers, warnings = make_tiers(transcode, backend, width, height, opts.crf if keep_orig else None, opts.preset)
    if record is not None:
        scenes = [Scene(**d) for d in record["scenes"]]
        todo = [(sc, t) for sc in scenes if not sc.dropped
                for t in [tuple(tiers) if force else missing_tiers(data_dir, sc, tiers)] if t]
        src = normalized_path if record["normalized"] else video
    else:
        scenes, todo, src = [], [], video
    if reasons and (record is None or todo):
        if not normalized_path.exists():
            tqdm.write(f"{video}: converting ({', '.join(reasons)}) to constant-rate 8-bit yuv420p first")
        src = normalize_source(info, normalized_path, opts)
        info = probe(src)
    if record is None:
        fps, total = float(info.fps), info.num_frames
    src_start = 0.0  # timestamp of the first frame of the file the scenes are cut from
    if record is None or todo:
        src_start = (info if Path(info.path) == src else probe(src)).start_time
    par = writer.par if writer is not None else plan_parallelism(
        len(tiers), transcode.jobs, transcode.threads, memory_per_job=job_memory(width, height, tiers), hw=backend.hw)
    hw_decode = backend.hw and bool(tiers) and (record is None or bool(todo)) and nvdec_works(src)
    result = PrepareResult(scenes=[], backend=backend, parallelism=par, tiers=[t.name for t in tiers],
                           warnings=[f"{video.name}: {w}" for w in warnings])
    for w in result.warnings:
        tqdm.write(f"warning: {w}")

    def job(sc: Scene, todo) -> SceneJob:
        return SceneJob(src, sc.clip, sc.start_frame, sc.num_frames, fps, tuple(todo), sc.split, hw_decode,
                        src_start)

    first_job: list[float] = []
    own = writer is None
    with (SceneWriter(data_dir, backend, par, transcode.scaler, show_progress and bool(tiers),
                      desc=f"encode {backend.encoder}") if own else nullcontext(writer)) as writer:
        def submit(sc: Scene, todo) -> object:
            if not first_job:
                first_job.append(time.perf_counter())
            return writer.submit(job(sc, todo))

        if record is None:
            # Encode each scene as soon as the cut after it is found; the split comes at the end.
            early: dict[str, tuple[int, int, object]] = {}
            last = [0, 0]  # previous cut, scene index

            def on_cut(frame: int) -> None:
                if frame <= last[0]:
                    return
                sc = plan_scene(last[1], last[0], frame, video, fps, opts, total, stem)
                last[:] = [frame, last[1] + 1]
                if not sc.dropped and tiers:
                    early[sc.clip] = (sc.start_frame, sc.num_frames, submit(sc, tiers))

            t0 = time.perf_counter()
            ranges = detect_scenes(src, opts, fps, show_progress, on_cut=on_cut)
            result.detect_seconds = time.perf_counter() - t0
            scenes = plan_scenes(ranges, video, fps, opts, total, stem, alone)
            if not any(not s.dropped for s in scenes):
                raise UsageError(f"{video}: no scene is at least {parse_min_len(opts.min_scene_len, fps)} "
                                 f"frames long ({len(scenes)} found); lower --min-scene-len")
            kept = {s.clip: s for s in scenes if not s.dropped}
            for clip, (start, n, run) in list(early.items()):
                sc = kept.get(clip)
                if sc is None or (sc.start_frame, sc.num_frames) != (start, n):  # the detector changed its mind
                    writer.discard(run)
                    del early[clip]
            record = asdict(SourceRecord(path=str(video.resolve()), fingerprint=fp, info=info.as_dict(),
                                         options=opt_dict, normalized=src != video, scenes=scenes))
            record["cut_from"] = str(src.resolve())
            update_manifest(data_dir, lambda m: m["sources"].__setitem__(stem, record))
            for sc in kept.values():
                if sc.clip not in early and tiers:
                    submit(sc, tiers)
            writer.set_splits({clip: sc.split for clip, sc in kept.items()})
        else:
            for sc, missing in todo:
                submit(sc, missing)
    result.encode_seconds = time.perf_counter() - first_job[0] if first_job else 0.0
    result.first_job_at = first_job[0] if first_job else None
    result.scenes = scenes
    result.clips_written = dict(writer.written) if own else {}
    return result


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
    a = ap.parse_args(argv)
    with folder_lock(a.data_dir, "the data set"):
        scenes = split_video(a.video, a.data_dir, split_options(a))
    kept = [s for s in scenes if not s.dropped]
    print(f"{len(scenes)} scenes found, {len(kept)} kept "
          f"({sum(s.split == 'train' for s in kept)} train, {sum(s.split == 'val' for s in kept)} val), "
          f"{len(scenes) - len(kept)} dropped")
    return 0


cli = entry_point(main, interrupted="complete outputs are kept; a rerun resumes")

if __name__ == "__main__":
    raise SystemExit(cli())
