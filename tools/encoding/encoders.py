"""Which encoder a run uses: NVENC when ffmpeg lists it, a GPU is present and a trial encode works,
else the CPU encoder. Detected (with tiny trial commands, cached per process), never assumed."""
from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from vsrvfi.core.errors import UsageError
from vsrvfi.core.ffmpeg import ffmpeg_binary, ffmpeg_encoders
from vsrvfi.tools.encoding.codecs import CODECS, CPU_ENCODERS, ENCODERS, NVENC_ENCODERS

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

