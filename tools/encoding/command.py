"""One scene job and its ffmpeg command: decode a frame range once, write every tier (split -> scaler
-> encoder per tier), and the checks that say whether a tier clip on disk is complete."""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Iterable, Sequence

from vsrvfi.core import layout
from vsrvfi.core.errors import MediaError
from vsrvfi.core.manifest import Scene
from vsrvfi.core.media import even_size, probe
from vsrvfi.tools.encoding.codecs import (ORIG_PRESET, TranscodeOptions, check_options, codec_args, encoder_flags,
                                          nvenc_args, resolve_resolutions, tier_crf)
from vsrvfi.tools.encoding.encoders import Backend

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
    piped: bool = False            # decode-once: the scene's decoded frames come on stdin (raw_input_args),
    #                                not from `source` (kept for the fallback); num_frames is known at the end
    sar: str = ""                  # the source's sample aspect ratio ("1", "4/3"), set on piped frames


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
           else encoder_flags(codec_args(opts)))
    names, warnings = resolve_resolutions(opts.resolutions, height)
    for res in names:
        w, h = even_size(width, height, layout.resolution_height(res))
        tiers.append(Tier(res, w, h, opts.codec, tuple(enc), (w, h) != (width, height)))
    return tiers, warnings


def raw_input_args(width: int, height: int, rate: str, colour: Sequence[tuple[str, int]] = ()) -> tuple[str, ...]:
    """Input options of a piped scene: yuv420p frames of width x height at `rate` ("25", "30000/1001") on
    stdin, with the source's colour tags (ffmpeg option, value: color_range, color_primaries, ...) so
    the encoder writes the same stream headers as when it decodes the file itself."""
    tags = tuple(a for name, value in colour for a in (f"-{name}", str(value)))
    return (*tags, "-f", "rawvideo", "-pix_fmt", "yuv420p", "-s", f"{width}x{height}", "-framerate", rate)


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
    if job.piped:  # exactly the scene's frames, decoded already (tools/preparation/decode_once.py)
        args += [*job.input_args, "-i", "pipe:0"]
        head = "[0:v:0]setpts=PTS-STARTPTS," + (f"setsar={job.sar}," if job.sar else "")
    else:
        if job.start_frame > 0 and seek:
            args += ["-noaccurate_seek", "-ss", f"{(job.start_frame + 0.5) / job.fps:.6f}"]
        args += [*job.input_args, "-copyts", "-i", str(job.source)]
        end = _up(job.start_time + (job.start_frame + job.num_frames - 0.5) / job.fps)
        trim = (f"trim=start={_up(job.start_time + (job.start_frame - 0.5) / job.fps)}:end={end}"
                if job.start_frame > 0 else f"trim=end={end}")
        head = f"[0:v:0]{trim},setpts=PTS-STARTPTS,"
    head += "format=yuv420p,hwupload_cuda," if hw and not job.hw_decode else ""
    k = len(job.tiers)
    if k == 1:
        graph = [f"{head}{_scaler(job.tiers[0], scaler, hw)}[o0]"]
    else:
        graph = [f"{head}split={k}" + "".join(f"[s{i}]" for i in range(k))]
        graph += [f"[s{i}]{_scaler(t, scaler, hw)}[o{i}]" for i, t in enumerate(job.tiers)]
    args += ["-filter_complex", ";".join(graph)]
    for i, (tier, out) in enumerate(zip(job.tiers, outputs)):
        cap = [] if job.piped else ["-frames:v", str(job.num_frames)]
        args += ["-map", f"[o{i}]", "-an", "-sn", "-dn", *cap, "-fps_mode", "cfr", *tier.encoder_args]
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



def image_sequence_job(pattern: Path, clip: str, start_number: int, num_frames: int, fps: float,
                       tiers: Sequence[Tier], split: str | None) -> SceneJob:
    """The SceneJob writing `tiers` of one clip from numbered frames (`pattern`, printf style, e.g.
    folder/im%d.png, first number `start_number`) read as an image sequence at `fps`."""
    rate = Fraction(fps).limit_denominator(1001)
    return SceneJob(pattern, clip, 0, num_frames, fps, tuple(tiers), split,
                    input_args=("-framerate", str(rate), "-start_number", str(start_number), "-f", "image2"))
