"""Codecs and their encoder arguments, the resolution tiers, and the data set's encoding options.

What decides the bytes of a clip (codec, CRF, GOP, B-frames, scaler, tiers) lives here, checked by
one function (`check_options`), so the CLIs, the planner and vsr-transcode agree. Pure: no ffmpeg runs.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

from vsrvfi.core import layout
from vsrvfi.core.cli import parse_list
from vsrvfi.core.errors import UsageError
from vsrvfi.core.manifest import DatasetOptions

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


def encoder_flags(kwargs: Mapping[str, object]) -> list[str]:
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


def dataset_options(t_opts: TranscodeOptions, tiers: Sequence[str], keep_orig: bool, orig_crf: int) -> DatasetOptions:
    """The data set's options as recorded in its manifest: the encoding, the tiers and the orig/ cuts."""
    return DatasetOptions(**encoding_options(t_opts), resolutions=list(tiers), keep_orig=keep_orig,
                          orig_crf=orig_crf if keep_orig else None)

