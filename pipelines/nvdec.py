"""Whether NVDEC really decodes here: one tiny H.264 clip read by each of DALI's GPU video readers.

A driver's `libnvcuvid` that loads can still fail at the first decode (`CUDA_ERROR_NO_DEVICE`, DALI
issues 4311 and 4663), so the only proof is a decode. Each reader is tried in its own Python process
with a time limit (a decoder that hangs or crashes takes only its probe down), and the answer per
reader is None (it decoded) or one line saying why not. The GPU suite (benchmarks/gpu_suite.py) and
the GPU tests (tests/test_gpu_pipelines.py) skip what needs NVDEC with that line.

    python -m vsrvfi.pipelines.nvdec [--timeout S]   # prints {"legacy": null, "experimental": "..."} as JSON
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

READERS = ("legacy", "experimental")
PROBE_ENV = "VSRVFI_NVDEC_PROBE"   # a probe's JSON answer handed to child processes (the GPU tests)
SIZE = 128                          # probe clip side: above NVDEC's H.264 minimum (48x16)
FRAMES = 8


def _first_line(text: str, limit: int = 200) -> str:
    """The informative line of a (multi-line, C++-traced) error message."""
    lines = [ln.strip() for ln in str(text).splitlines() if ln.strip()]
    for ln in lines:
        if any(k in ln for k in ("CUDA_ERROR", "nvcuvid", "NVDEC", "Error", "error", "failed", "Failed")):
            return ln[:limit]
    return (lines[0] if lines else "unknown error")[:limit]


def write_probe_clip(path: Path) -> Path:
    """A SIZE x SIZE, FRAMES-frame H.264 clip (no B-frames, GOP 4, yuv420p) made with the project's ffmpeg."""
    from vsrvfi.core.ffmpeg import ffmpeg_binary

    cmd = [ffmpeg_binary(), "-hide_banner", "-nostdin", "-loglevel", "error", "-y", "-f", "lavfi", "-i",
           f"testsrc2=size={SIZE}x{SIZE}:rate=24", "-frames:v", str(FRAMES), "-c:v", "libx264", "-bf", "0",
           "-g", "4", "-pix_fmt", "yuv420p", "-an", str(path)]
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode:
        raise RuntimeError(f"ffmpeg could not make the probe clip: {_first_line(res.stderr)}")
    return path


def decode_once(reader: str, clip: Path, device_id: int = 0) -> None:
    """Decode the first 2 frames of `clip` with DALI's `reader` on the GPU; raises with the reason."""
    import numpy as np
    from nvidia.dali import fn, pipeline_def

    @pipeline_def(batch_size=1, num_threads=1, device_id=device_id)
    def pipe():
        if reader == "legacy":
            return fn.readers.video(device="gpu", filenames=[str(clip)], sequence_length=2)
        return fn.experimental.readers.video(device="gpu", filenames=[str(clip)], sequence_length=2)

    p = pipe()
    p.build()
    out = p.run()[0]
    frames = np.asarray(out.as_cpu()[0])
    if frames.shape != (2, SIZE, SIZE, 3):
        raise RuntimeError(f"decoded shape {frames.shape}, expected (2, {SIZE}, {SIZE}, 3)")
    if float(frames.mean()) < 1.0:
        raise RuntimeError("decoded frames are black (NVDEC returned nothing)")


def _child(reader: str, clip: str, device_id: int) -> int:
    try:
        decode_once(reader, Path(clip), device_id)
    except Exception as exc:  # noqa: BLE001 - any failure is the answer
        print(json.dumps({"error": _first_line(f"{type(exc).__name__}: {exc}")}))
        return 1
    print(json.dumps({"error": None}))
    return 0


def probe_nvdec(readers=READERS, timeout: float = 90.0, device_id: int = 0) -> dict[str, str | None]:
    """{reader: None if it decoded the probe clip on the GPU, else one line saying why not}."""
    answer: dict[str, str | None] = {}
    try:
        import torch

        if not torch.cuda.is_available():
            return {r: "no CUDA device (torch.cuda.is_available() is False)" for r in readers}
    except Exception as exc:  # noqa: BLE001
        return {r: f"torch cannot use CUDA: {_first_line(str(exc))}" for r in readers}
    with tempfile.TemporaryDirectory(prefix="nvdec-probe-") as tmp:
        try:
            clip = write_probe_clip(Path(tmp) / "probe.mp4")
        except Exception as exc:  # noqa: BLE001
            return {r: _first_line(str(exc)) for r in readers}
        for reader in readers:
            cmd = [sys.executable, "-m", "vsrvfi.pipelines.nvdec", "--child", reader, str(clip), str(device_id)]
            try:
                res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
            except subprocess.TimeoutExpired:
                answer[reader] = f"the {reader} reader did not decode one H.264 frame in {timeout:.0f} s (hung)"
                continue
            lines = [ln for ln in res.stdout.splitlines() if ln.startswith("{")]
            if lines:
                error = json.loads(lines[-1])["error"]
            else:
                error = f"the probe process died (exit {res.returncode}): {_first_line(res.stderr or 'no output')}"
            answer[reader] = None if error is None else f"NVDEC ({reader} reader): {error}"
    return answer


def probe_from_env() -> dict[str, str | None] | None:
    """The probe answer a parent process handed down in $VSRVFI_NVDEC_PROBE, or None."""
    text = os.environ.get(PROBE_ENV)
    if not text:
        return None
    data = json.loads(text)
    return {r: data.get(r, f"not probed ({PROBE_ENV} has no {r})") for r in READERS}


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["--child"]:
        return _child(args[1], args[2], int(args[3]))
    timeout = float(args[args.index("--timeout") + 1]) if "--timeout" in args else 90.0
    print(json.dumps(probe_nvdec(timeout=timeout)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
