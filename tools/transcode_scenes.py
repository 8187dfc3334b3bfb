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
import math
import os
import subprocess
import threading
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping, Sequence

from tqdm import tqdm

from vsrvfi.core import layout
from vsrvfi.core.lock import folder_lock
from vsrvfi.core.cli import ArgumentParser, entry_point, parse_list
from vsrvfi.core.errors import MediaError, UsageError
from vsrvfi.core.ffmpeg import ffmpeg_binary, ffmpeg_encoders, run_ffmpeg
from vsrvfi.core.manifest import Scene, describe_changes, load_manifest, update_manifest
from vsrvfi.core.media import even_size, probe

CODECS = ("h264", "hevc", "vp9")
ENCODERS = ("auto", "cpu", "nvenc")
CPU_ENCODERS = {"h264": "libx264", "hevc": "libx265", "vp9": "libvpx-vp9"}
NVENC_ENCODERS = {"h264": "h264_nvenc", "hevc": "hevc_nvenc"}
DEFAULT_CRF = {"h264": 18, "hevc": 20, "vp9": 24}
# Codecs NVDEC decodes (8-bit 4:2:0, which every source is after normalisation).
NVDEC_CODECS = {"h264", "hevc", "vp8", "vp9", "av1", "mpeg1video", "mpeg2video", "mpeg4", "vc1", "mjpeg"}
ORIG_PRESET = "veryfast"
AUTO = "auto"  # --resolutions auto: the standard tiers that fit the source, else its own height
CRF_RANGE = {"h264": (0, 51), "hevc": (0, 51), "vp9": (0, 63)}


@dataclass
class TranscodeOptions:
    resolutions: tuple[str, ...] = (AUTO,)  # or names: 4k, 1080p, 720p, 540p, <N>p
    codec: str = "h264"
    gop: int = 4
    bframes: int = 0
    crf: int | None = None      # None: 18 for H.264, 20 for HEVC, 24 for VP9 (NVENC: the same as -cq)
    preset: str = "medium"      # x264/x265 preset; VP9 maps it onto -cpu-used, NVENC onto p1..p7
    scaler: str = "lanczos"     # or "area" / "bicubic" (scale_cuda has no area: lanczos there)
    jobs: int = 0               # scene processes at once; 0: sized to the cores and memory
    encoder: str = "auto"       # auto / cpu / nvenc
    threads: int = 0            # encoder threads per tier; 0: the cores shared out


_VP9_SPEED = {"ultrafast": 8, "superfast": 8, "veryfast": 7, "faster": 6, "fast": 5, "medium": 4, "slow": 2,
              "slower": 1, "veryslow": 0}
_NVENC_PRESET = {"ultrafast": "p1", "superfast": "p2", "veryfast": "p3", "faster": "p3", "fast": "p4",
                 "medium": "p5", "slow": "p6", "slower": "p7", "veryslow": "p7"}


def tier_crf(opts: TranscodeOptions) -> int:
    return DEFAULT_CRF[opts.codec] if opts.crf is None else opts.crf


def codec_args(opts: TranscodeOptions) -> dict:
    """ffmpeg-python output keyword arguments of the CPU encoder for the chosen codec."""
    gop = dict(g=opts.gop, keyint_min=opts.gop)
    if opts.codec not in CODECS:
        raise UsageError(f"--codec {opts.codec!r}: use one of {', '.join(CODECS)}")
    crf = tier_crf(opts)
    if opts.codec == "h264":
        return dict(vcodec="libx264", crf=crf, preset=opts.preset, profile="high", bf=opts.bframes,
                    sc_threshold=0, **gop)
    if opts.codec == "hevc":
        params = (f"keyint={opts.gop}:min-keyint={opts.gop}:scenecut=0:bframes={opts.bframes}:open-gop=0"
                  ":log-level=error")
        return {"c:v": "libx265", "crf": crf, "preset": opts.preset, "x265-params": params, "tag:v": "hvc1"}
    # Alt-ref (hidden) frames are VP9's B-frames; leave them off unless B-frames are asked for.
    return {"c:v": "libvpx-vp9", "crf": crf, "b:v": 0, "row-mt": 1, "deadline": "good",
            "cpu-used": _VP9_SPEED.get(opts.preset, 4), "auto-alt-ref": 1 if opts.bframes else 0,
            "lag-in-frames": 16 if opts.bframes else 0, **gop}


def _flags(kwargs: Mapping[str, object]) -> list[str]:
    """ffmpeg-python style keyword arguments as an ffmpeg argument list."""
    out = []
    for k, v in kwargs.items():
        out += ["-c:v" if k == "vcodec" else f"-{k}", str(v)]
    return out


def nvenc_args(codec: str, crf: int, preset: str, gop: int | None, bframes: int) -> list[str]:
    """NVENC arguments: constant quality (-cq, CRF-like), every GOP an IDR frame, no adaptive I/B frames."""
    args = ["-c:v", NVENC_ENCODERS[codec], "-preset", _NVENC_PRESET.get(preset, "p5"), "-tune", "hq",
            "-rc", "vbr", "-cq", str(crf), "-b:v", "0", "-bf", str(bframes), "-rc-lookahead", "0",
            "-no-scenecut", "1", "-forced-idr", "1", "-profile:v", "high" if codec == "h264" else "main"]
    if gop:
        args += ["-g", str(gop), "-keyint_min", str(gop)]
    return args


# ------------------------------------------------------------------------------------- encoders

@dataclass(frozen=True)
class Backend:
    """The encoder family a run uses, and why it was chosen (reported in the summary)."""

    kind: str          # "cpu" or "nvenc"
    codec: str         # h264 / hevc / vp9
    encoder: str       # libx264, h264_nvenc, ...
    reason: str

    @property
    def hw(self) -> bool:
        return self.kind == "nvenc"

    def describe(self) -> str:
        where = "NVENC, NVDEC decode, scale_cuda" if self.hw else "CPU"
        return f"{self.encoder} ({where}): {self.reason}"


def _visible_gpus_hidden() -> bool:
    v = os.environ.get("CUDA_VISIBLE_DEVICES")
    return v is not None and v.strip() in ("", "-1", "none", "NoDevFiles")


def gpu_present() -> tuple[bool, str]:
    """Whether an NVIDIA GPU is visible (nvidia-smi -L, else the driver's /proc entries), and how we know."""
    if _visible_gpus_hidden():
        return False, "CUDA_VISIBLE_DEVICES hides every GPU"
    try:
        res = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=20)
        gpus = [ln for ln in res.stdout.splitlines() if ln.startswith("GPU ")]
        if res.returncode == 0 and gpus:
            return True, f"nvidia-smi lists {len(gpus)} GPU{'s' if len(gpus) > 1 else ''}"
    except (OSError, subprocess.SubprocessError):
        pass
    proc = Path("/proc/driver/nvidia/gpus")
    if proc.is_dir() and any(proc.iterdir()):
        return True, "the NVIDIA driver lists a GPU"
    return False, "no NVIDIA GPU found (nvidia-smi, /proc/driver/nvidia)"


_TRIALS: dict[tuple, tuple[bool, str]] = {}


def _trial(args: Sequence[str]) -> tuple[bool, str]:
    """Run a tiny ffmpeg command; (worked, ffmpeg's last error line)."""
    key = tuple(args)
    if key not in _TRIALS:
        try:
            res = subprocess.run([ffmpeg_binary(), "-hide_banner", "-nostdin", "-loglevel", "error", *args],
                                 capture_output=True, text=True, timeout=60)
            lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
            _TRIALS[key] = (res.returncode == 0, lines[-1] if lines else f"exit code {res.returncode}")
        except (OSError, subprocess.SubprocessError) as exc:
            _TRIALS[key] = (False, str(exc))
    return _TRIALS[key]


def nvenc_trial(codec: str) -> tuple[bool, str]:
    """Encode one frame uploaded to the GPU and scaled there: NVENC, CUDA filters and driver all work."""
    return _trial(["-f", "lavfi", "-i", "color=black:size=256x144:rate=1", "-frames:v", "1",
                   "-vf", "format=nv12,hwupload_cuda,scale_cuda=128:72", "-c:v", NVENC_ENCODERS[codec],
                   "-f", "null", "-"])


def nvdec_works(source: str | os.PathLike) -> bool:
    """Whether NVDEC decodes `source` with its frames kept on the GPU (else frames are uploaded)."""
    ok, _ = _trial(["-hwaccel", "cuda", "-hwaccel_output_format", "cuda", "-i", str(source), "-frames:v", "1",
                    "-map", "0:v:0", "-vf", "scale_cuda=128:72", "-f", "null", "-"])
    return ok


def choose_backend(codec: str, request: str = "auto") -> Backend:
    """The encoder for `codec`: NVENC when asked or (auto) when it is listed, a GPU is present and a
    trial encode works; the CPU encoder otherwise. Detected, never assumed."""
    if codec not in CODECS:
        raise UsageError(f"--codec {codec!r}: use one of {', '.join(CODECS)}")
    if request not in ENCODERS:
        raise UsageError(f"--encoder {request!r}: use one of {', '.join(ENCODERS)}")
    cpu = CPU_ENCODERS[codec]
    if request == "cpu":
        return Backend("cpu", codec, cpu, "--encoder cpu")
    why_not = None
    nv = NVENC_ENCODERS.get(codec)
    if nv is None:
        why_not = f"NVENC has no {codec} encoder"
    elif nv not in ffmpeg_encoders():
        why_not = f"ffmpeg ({ffmpeg_binary()}) does not list {nv}"
    else:
        present, how = gpu_present()
        if not present:
            why_not = how
        else:
            ok, err = nvenc_trial(codec)
            if not ok:
                why_not = f"{how}, but a trial {nv} encode failed: {err}"
            else:
                return Backend("nvenc", codec, nv, f"{how}, ffmpeg lists {nv}, a trial encode worked")
    if request == "nvenc":
        raise UsageError(f"--encoder nvenc: {why_not}")
    return Backend("cpu", codec, cpu, why_not)


# ---------------------------------------------------------------------------------- scene jobs

@dataclass(frozen=True)
class Tier:
    """One output of a scene: a resolution (or the full-resolution cut, layout.ORIG) and its encoder."""

    name: str
    width: int
    height: int
    codec: str                     # as probed from the written clip: h264 / hevc / vp9
    encoder_args: tuple[str, ...]
    scale: bool                    # False when the tier has the source's own size


@dataclass(frozen=True)
class SceneJob:
    """Write `tiers` of the frames [start_frame, start_frame + num_frames) of `source`, decoded once."""

    source: Path
    clip: str
    start_frame: int
    num_frames: int
    fps: float
    tiers: tuple[Tier, ...]
    split: str | None = None       # None while scene detection has not finished (set later)
    hw_decode: bool = False        # NVDEC (frames stay on the GPU); only with an NVENC backend
    start_time: float = 0.0        # timestamp of the source's first frame (VideoInfo.start_time)
    input_args: tuple[str, ...] = ()  # ffmpeg options of the input, e.g. an image sequence's
    #                                   ("-framerate", "24", "-start_number", "1", "-f", "image2")


def parse_resolutions(text: str) -> tuple[str, ...]:
    """'--resolutions' as names ('auto' alone, or 4k/1080p/720p/540p/<N>p), checked: UsageError when bad."""
    names = tuple(r.lower() for r in parse_list(text))
    if not names:
        raise UsageError(f"--resolutions {text!r}: empty; use auto or a comma list such as 720p,540p")
    if AUTO in names:
        if names != (AUTO,):
            raise UsageError(f"--resolutions {text!r}: 'auto' stands alone")
        return names
    for name in names:
        try:
            height = layout.resolution_height(name)
        except ValueError:
            raise UsageError(f"--resolutions {text!r}: {name!r} is not a resolution; use auto, "
                             f"{', '.join(layout.RESOLUTIONS)} or any <height>p such as 272p") from None
        if height % 2:
            raise UsageError(f"--resolutions {text!r}: {name} is odd; video heights are even")
    if len(set(names)) != len(names):
        raise UsageError(f"--resolutions {text!r}: a resolution is listed twice")
    return names


def resolve_resolutions(requested: Sequence[str], height: int) -> tuple[list[str], list[str]]:
    """The tier names for a source `height` pixels high, and a warning for each requested one above it.

    'auto': the standard tiers that fit, else the source's own height ('272p'); never upscaled.
    """
    if tuple(requested) == (AUTO,):
        return layout.standard_tiers_for(height), []
    fit = [r for r in requested if layout.resolution_height(r) <= height]
    return fit, [f"source is {height} high, {r} skipped (no upscaling)" for r in requested if r not in fit]


def check_options(opts: TranscodeOptions) -> None:
    """One-line UsageError for a value no encoder takes (run by the CLI before anything is created, and
    by make_tiers for options built in code)."""
    codec_args(opts)  # the codec
    if opts.gop < 1:
        raise UsageError(f"--gop {opts.gop}: must be >= 1")
    if opts.bframes < 0:
        raise UsageError(f"--bframes {opts.bframes}: must be >= 0")
    if opts.jobs < 0 or opts.threads < 0:
        raise UsageError("--jobs and --threads must be >= 0")
    lo, hi = CRF_RANGE.get(opts.codec, (0, 51))
    if opts.crf is not None and not lo <= opts.crf <= hi:
        raise UsageError(f"--crf {opts.crf}: out of range for {opts.codec} ({lo}..{hi})")


# The flag of each data-set option, for errors that name what changed.
DATASET_FLAGS = {"codec": "--codec", "crf": "--crf", "gop": "--gop", "bframes": "--bframes", "scaler": "--scaler",
                 "resolutions": "--resolutions", "keep_orig": "--keep-orig", "orig_crf": "--orig-crf"}


def encoding_options(t_opts: TranscodeOptions) -> dict:
    """How every tier clip is encoded: what decides what the clips hold (not how fast they are made:
    jobs, threads, encoder, preset)."""
    return {"codec": t_opts.codec, "crf": tier_crf(t_opts), "gop": t_opts.gop, "bframes": t_opts.bframes,
            "scaler": t_opts.scaler}


def dataset_options(t_opts: TranscodeOptions, tiers: Sequence[str], keep_orig: bool, orig_crf: int) -> dict:
    """The data set's options as recorded in its manifest: the encoding, the tiers and the orig/ cuts."""
    opts = {**encoding_options(t_opts), "resolutions": list(tiers), "keep_orig": keep_orig}
    if keep_orig:
        opts["orig_crf"] = orig_crf
    return opts


def make_tiers(opts: TranscodeOptions, backend: Backend, width: int, height: int,
               orig_crf: int | None = None, orig_preset: str = ORIG_PRESET) -> tuple[list[Tier], list[str]]:
    """The tiers for a source of width x height (and warnings for resolutions above it).

    With `orig_crf`, the full-resolution cut (layout.ORIG) is a tier too: x264 near-lossless on the
    CPU (CRF `orig_crf`, `orig_preset`, no B-frames, the encoder's own GOP), NVENC at -cq orig_crf
    on the GPU path.
    """
    check_options(opts)
    if backend.codec != opts.codec:
        raise ValueError(f"backend is for {backend.codec}, options ask for {opts.codec}")
    tiers = []
    if orig_crf is not None:
        if backend.hw:
            args = nvenc_args("h264", orig_crf, orig_preset, None, 0)
        else:
            args = ["-c:v", "libx264", "-crf", str(orig_crf), "-preset", orig_preset, "-bf", "0"]
        tiers.append(Tier(layout.ORIG, width, height, "h264", tuple(args), False))
    enc = (nvenc_args(opts.codec, tier_crf(opts), opts.preset, opts.gop, opts.bframes) if backend.hw
           else _flags(codec_args(opts)))
    names, warnings = resolve_resolutions(opts.resolutions, height)
    for res in names:
        w, h = even_size(width, height, layout.resolution_height(res))
        tiers.append(Tier(res, w, h, opts.codec, tuple(enc), (w, h) != (width, height)))
    return tiers, warnings


def _scaler(tier: Tier, scaler: str, hw: bool) -> str:
    if hw:
        algo = {"lanczos": "lanczos", "bicubic": "bicubic"}.get(scaler, "lanczos")
        return f"scale_cuda={tier.width}:{tier.height}:interp_algo={algo}" if tier.scale else "null"
    chain = [f"scale={tier.width}:{tier.height}:flags={scaler}"] if tier.scale else []
    return ",".join(chain + ["format=yuv420p"])


def _up(seconds: float) -> str:
    """`seconds` rounded up to the microsecond: trim rescales its bounds to the input's time base rounding
    to nearest, so a bound half a frame past a frame must not land just below the half-way point of a
    1/fps time base (image sequences, AVI), where it would round down onto the frame."""
    return f"{math.ceil(round(seconds * 1e6, 3)) / 1e6:.6f}"


def scene_command(job: SceneJob, outputs: Sequence[str | os.PathLike], scaler: str = "lanczos",
                  threads: int = 0, decoder_threads: int = 0, hw: bool = False, seek: bool = True) -> list[str]:
    """ffmpeg arguments that decode the scene's frames once and write each tier to `outputs` (in order).

    Frame-accurate and without wasted decoding: the input is seeked (not accurately) to half a frame
    after the scene's first frame, so the demuxer lands on the last keyframe at or before it, and
    the frames are then selected by their own timestamps (kept as they are in the file) with half a
    frame of margin on each side, so rounding or millisecond timestamps cannot add or lose a frame.
    Timestamps restart at the scene's first frame and every output is capped at `num_frames`.
    `seek=False` decodes from the start of the file instead (for files that do not seek to keyframes,
    e.g. some MPEG-TS). `hw`: NVDEC decoding (when `job.hw_decode`, else frames are uploaded) and scale_cuda.
    `job.input_args` go right before the input (an image sequence: its rate, first number, `-f image2`).
    """
    if len(outputs) != len(job.tiers) or not job.tiers:
        raise ValueError("one output path per tier, at least one tier")
    args = ["-y"]
    if decoder_threads:
        args += ["-threads", str(decoder_threads)]
    if hw and job.hw_decode:
        args += ["-hwaccel", "cuda", "-hwaccel_output_format", "cuda"]
    if job.start_frame > 0 and seek:
        args += ["-noaccurate_seek", "-ss", f"{(job.start_frame + 0.5) / job.fps:.6f}"]
    args += [*job.input_args, "-copyts", "-i", str(job.source)]
    end = _up(job.start_time + (job.start_frame + job.num_frames - 0.5) / job.fps)
    trim = (f"trim=start={_up(job.start_time + (job.start_frame - 0.5) / job.fps)}:end={end}"
            if job.start_frame > 0 else f"trim=end={end}")
    head = f"[0:v:0]{trim},setpts=PTS-STARTPTS," + ("format=yuv420p,hwupload_cuda," if hw and not job.hw_decode else "")
    k = len(job.tiers)
    if k == 1:
        graph = [f"{head}{_scaler(job.tiers[0], scaler, hw)}[o0]"]
    else:
        graph = [f"{head}split={k}" + "".join(f"[s{i}]" for i in range(k))]
        graph += [f"[s{i}]{_scaler(t, scaler, hw)}[o{i}]" for i, t in enumerate(job.tiers)]
    args += ["-filter_complex", ";".join(graph)]
    for i, (tier, out) in enumerate(zip(job.tiers, outputs)):
        args += ["-map", f"[o{i}]", "-an", "-sn", "-dn", "-frames:v", str(job.num_frames), "-fps_mode", "cfr",
                 *tier.encoder_args]
        if threads and not hw:
            args += ["-threads", str(threads)]
        args += ["-movflags", "+faststart", "-f", "mp4", str(out)]
    return args


def is_complete(path: Path, num_frames: int, width: int, height: int, codec: str) -> bool:
    """True when `path` is a readable clip with the expected frame count, size and codec."""
    if not path.exists():
        return False
    try:
        info = probe(path)
    except MediaError:
        return False
    return (info.num_frames, info.width, info.height, info.codec) == (num_frames, width, height, codec)


def missing_tiers(data_dir: Path, scene: Scene, tiers: Iterable[Tier]) -> tuple[Tier, ...]:
    """The tiers of `scene` without a complete clip (a scene is complete when this is empty)."""
    return tuple(t for t in tiers if not is_complete(layout.clip_path(data_dir, t.name, scene.split, scene.clip),
                                                       scene.num_frames, t.width, t.height, t.codec))


# ----------------------------------------------------------------------------- parallel writer

def machine_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def _available_memory() -> int | None:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def job_memory(width: int, height: int, tiers: Sequence[Tier]) -> int:
    """Rough peak memory of one scene process: decoder frame pool plus each encoder's lookahead."""
    frame = lambda w, h: w * h * 3 // 2  # noqa: E731 - yuv420p bytes
    return 24 * frame(width, height) + sum(48 * frame(t.width, t.height) for t in tiers) + (64 << 20)


@dataclass(frozen=True)
class Parallelism:
    jobs: int              # scene processes at once
    threads: int           # encoder threads per tier (0: the encoder's own choice for the machine)
    decoder_threads: int   # decoder threads per scene process (0: ffmpeg's choice)
    cpus: int

    def describe(self) -> str:
        enc = f"{self.threads} encoder threads per tier" if self.threads else "encoder threads auto"
        dec = f"{self.decoder_threads} decoder threads" if self.decoder_threads else "decoder threads auto"
        return f"{self.jobs} scene process{'es' if self.jobs > 1 else ''} at once, {enc}, {dec}, {self.cpus} cores"


def plan_parallelism(n_tiers: int, jobs: int = 0, threads: int = 0, cpus: int | None = None,
                     memory_per_job: int | None = None, hw: bool = False) -> Parallelism:
    """Scene processes and threads sized to the machine: sources x scenes x encoder threads.

    One scene process already runs its decoder, scalers and tier encoders concurrently (ffmpeg
    threads each), so it keeps about 2 + tiers cores busy; more cores get more scene processes, as
    many as the memory allows. With one process at a time its encoders and decoder pick their own
    thread counts (as a single ffmpeg command would); with several, each process's cores are shared
    out between its tier encoders, 1.5 threads a core (x264's own ratio) so none waits on another.
    With NVENC (`hw`) the GPU does the work: at most 8 encode sessions at once (consumer GPUs cap
    them), so jobs x tiers <= 8.
    """
    cpus = cpus or machine_cpus()
    n_tiers = max(n_tiers, 1)
    if not jobs:
        jobs = max(1, cpus // (2 + n_tiers))
        if hw:
            jobs = max(1, min(jobs, 8 // n_tiers))
        avail = _available_memory()
        if memory_per_job and avail:
            jobs = max(1, min(jobs, int(avail * 0.6) // memory_per_job))
    if jobs == 1:
        return Parallelism(jobs=1, threads=threads, decoder_threads=0, cpus=cpus)
    per_job = max(1, cpus // jobs)
    return Parallelism(jobs=jobs, threads=threads or max(2, math.ceil(1.5 * per_job / n_tiers)),
                       decoder_threads=min(per_job, 16), cpus=cpus)


def _tmp_name(data_dir: Path, tier: str, split: str | None, clip: str) -> Path:
    folder = layout.scenes_dir(data_dir, tier, split) if split else Path(data_dir) / tier / "scenes"
    return folder / f".{clip}.tmp.{uuid.uuid4().hex[:8]}{layout.CLIP_EXT}"


@dataclass
class _Running:
    job: SceneJob
    temps: list[Path]
    future: Future | None = None
    done: bool = False
    discarded: bool = False


class SceneWriter:
    """Runs scene jobs in parallel under one progress bar; use as a context manager.

    Each job writes its tiers under temporary names and, once every tier is complete and checked,
    renames them to DATA_DIR/<tier>/scenes/<split>/<clip>.mp4. Jobs may be submitted before the
    train/val split is known (scene detection still running): their clips wait under temporary names
    until `set_splits`. Leaving the block with an error (or Ctrl-C) kills the running ffmpeg
    processes, drops the queued jobs and removes every temporary; finished clips stay.
    """

    def __init__(self, data_dir: str | os.PathLike, backend: Backend, parallelism: Parallelism,
                 scaler: str = "lanczos", show_progress: bool = True, desc: str | None = None):
        self.data_dir = Path(data_dir)
        self.backend = backend
        self.par = parallelism
        self.scaler = scaler
        self.stop = threading.Event()
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(parallelism.jobs)
        self._jobs: list[_Running] = []
        self._splits: dict[str, str] = {}
        self.written: dict[str, int] = {}
        self._bar = tqdm(total=0, unit="frame", desc=desc or f"encode {backend.encoder}",
                         disable=not show_progress)

    # -- submitting
    def check(self) -> None:
        """Raise the first failure of a finished job now (so a long detection does not run on in vain)."""
        for run in list(self._jobs):
            f = run.future
            if f is not None and f.done() and not f.cancelled() and f.exception() is not None:
                raise f.exception()

    def submit(self, job: SceneJob) -> _Running:
        self.check()
        temps = [_tmp_name(self.data_dir, t.name, job.split, job.clip) for t in job.tiers]
        run = _Running(job, temps)
        with self._lock:
            if job.split:
                self._splits[job.clip] = job.split
            self._jobs.append(run)
            self._bar.total += job.num_frames
            self._bar.refresh()
        run.future = self._pool.submit(self._run, run)
        return run

    def discard(self, run: _Running) -> None:
        """Drop a submitted job's clips (its scene turned out different); waits for it to end."""
        with self._lock:
            run.discarded = True
        if run.future is not None:
            run.future.cancel()
            try:
                run.future.result()
            except Exception:  # noqa: BLE001 - its clips are dropped anyway
                pass
        with self._lock:
            self._remove(run.temps)
            self._jobs.remove(run)

    def set_splits(self, splits: Mapping[str, str]) -> None:
        """The split of each clip, once known: finished clips waiting for it are renamed now."""
        with self._lock:
            self._splits.update(splits)
            for run in list(self._jobs):  # _finalize removes finished jobs from the list
                if run.done and not run.discarded and run.job.clip in self._splits:
                    self._finalize(run)

    # -- work
    def _update(self, n: int) -> None:
        with self._lock:
            self._bar.update(n)

    def _run(self, run: _Running) -> None:
        if self.stop.is_set() or run.discarded:
            return
        job = run.job
        for tmp in run.temps:
            tmp.parent.mkdir(parents=True, exist_ok=True)
        label = layout.clip_path(self.data_dir, job.tiers[0].name, job.split or "<split>", job.clip)
        try:
            for seek in (True, False) if job.start_frame > 0 else (True,):
                args = scene_command(job, run.temps, self.scaler, self.par.threads, self.par.decoder_threads,
                                     hw=self.backend.hw, seek=seek)
                run_ffmpeg(args, label, on_frames=self._update, stop=self.stop)
                short = self._short_outputs(job, run.temps)
                if not short:
                    break
                # The seek did not land on a keyframe before the scene: decode from the start instead.
            if short:
                tier, got = short[0]
                raise MediaError(layout.clip_path(self.data_dir, tier.name, job.split or "<split>", job.clip),
                                 f"wrote {got} frames, expected {job.num_frames}")
        except BaseException:
            with self._lock:
                self._remove(run.temps)
            raise
        with self._lock:
            run.done = True
            if not run.discarded and job.clip in self._splits:
                self._finalize(run)

    @staticmethod
    def _short_outputs(job: SceneJob, temps: Sequence[Path]) -> list[tuple[Tier, int]]:
        """The tiers whose clip does not hold exactly the scene's frames, with the count they hold."""
        short = []
        for tier, tmp in zip(job.tiers, temps):
            try:
                got = probe(tmp).num_frames
            except MediaError:
                got = 0
            if got != job.num_frames:
                short.append((tier, got))
        return short

    def _finalize(self, run: _Running) -> None:
        """Rename a finished job's temporaries to their final names (called with the lock held)."""
        split = self._splits[run.job.clip]
        for tier, tmp in zip(run.job.tiers, run.temps):
            final = layout.clip_path(self.data_dir, tier.name, split, run.job.clip)
            final.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp, final)
            self.written[tier.name] = self.written.get(tier.name, 0) + 1
        run.temps = []
        self._jobs.remove(run)

    @staticmethod
    def _remove(paths: Iterable[Path]) -> None:
        for p in paths:
            try:
                p.unlink()
            except FileNotFoundError:
                pass

    # -- ending
    def close(self) -> None:
        """Wait for every job; the first failure is raised. Every clip must have its split by now."""
        for run in list(self._jobs):
            if run.future is not None:
                run.future.result()
        with self._lock:
            left = [r.job.clip for r in self._jobs if not r.discarded]
        if left:
            raise RuntimeError(f"no train/val split was set for {', '.join(left)}")

    def __enter__(self) -> "SceneWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if exc_type is None:
                self.close()
        except BaseException:
            self._abort()
            raise
        else:
            if exc_type is not None:
                self._abort()
        finally:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._bar.close()

    def _abort(self) -> None:
        self.stop.set()
        self._pool.shutdown(wait=True, cancel_futures=True)
        with self._lock:
            for run in self._jobs:
                self._remove(run.temps)


# ------------------------------------------------------------------------------ the standalone tool

@dataclass
class _SourceScenes:
    source: Path
    info: dict
    scenes: list[Scene] = field(default_factory=list)


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
    if not any(not s.get("dropped") for rec in manifest.get("sources", {}).values() for s in rec["scenes"]):
        raise UsageError(f"{data_dir}: no scenes in {layout.MANIFEST}; run vsr-split-scenes first")
    stored = manifest.get("options")
    if stored:  # tiers are added with the data set's own encoding (vsr-prepare --force changes it)
        changes = describe_changes(stored, encoding_options(opts), DATASET_FLAGS)
        if changes:
            raise UsageError(f"{data_dir}: its clips were encoded with other options ({'; '.join(changes)}); use "
                             "those (vsr-prepare --force re-encodes every clip with new ones)")
    plan: list[tuple[SceneJob, int, int]] = []
    warnings: set[str] = set()
    added: set[str] = set()
    for rec in manifest["sources"].values():
        src = Path(rec.get("cut_from") or rec["path"])
        width, height = rec["info"]["width"], rec["info"]["height"]
        tiers, warn = make_tiers(opts, backend, width, height)
        added.update(t.name for t in tiers)
        warnings.update(f"{Path(rec['path']).name}: {w}" for w in warn)
        frames = rec.get("kind") == "frames"  # imported frame folders (tools/import_frames.py)
        hw_decode = backend.hw and not frames and src.exists() and nvdec_works(src)
        src_start: float | None = None
        for d in rec["scenes"]:
            sc = Scene(**d)
            if sc.dropped:
                continue
            todo = missing_tiers(data_dir, sc, tiers)
            if not todo:
                continue
            if frames:
                from vsrvfi.tools.import_frames import frames_job  # it imports this module
                job = frames_job(rec, sc, todo)
            elif src.exists():
                if src_start is None:
                    src_start = probe(src).start_time
                job = SceneJob(src, sc.clip, sc.start_frame, sc.num_frames, sc.fps, todo, sc.split, hw_decode,
                               src_start)
            else:
                orig = layout.clip_path(data_dir, layout.ORIG, sc.split, sc.clip)
                if not orig.exists():
                    raise MediaError(src, f"source of {sc.clip} is gone and {orig} does not exist; "
                                          "rerun vsr-split-scenes with the source")
                job = SceneJob(orig, sc.clip, 0, sc.num_frames, sc.fps, todo, sc.split,
                               backend.hw and nvdec_works(orig), probe(orig).start_time)
            plan.append((job, width, height))
    for w in sorted(warnings):
        tqdm.write(f"warning: {w}")
    if plan:
        mem = max(job_memory(w, h, j.tiers) for j, w, h in plan)
        par = plan_parallelism(max(len(j.tiers) for j, _, _ in plan), opts.jobs, opts.threads, memory_per_job=mem,
                               hw=backend.hw)
        with SceneWriter(data_dir, backend, par, opts.scaler, show_progress) as writer:
            for job, _, _ in plan:
                writer.submit(job)
    if stored and added - set(stored["resolutions"]):
        def record(m: dict) -> None:
            m["options"]["resolutions"] = sorted(set(m["options"]["resolutions"]) | added,
                                                 key=layout.resolution_height, reverse=True)
        update_manifest(data_dir, record)
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
    a = ap.parse_args(argv)
    with folder_lock(a.data_dir, "the data set", create=False):
        counts = transcode(a.data_dir, transcode_options(a))
    print(", ".join(f"{res}: {n} clips" for res, n in counts.items()))
    return 0


cli = entry_point(main, interrupted="complete outputs are kept; a rerun resumes")

if __name__ == "__main__":
    raise SystemExit(cli())
