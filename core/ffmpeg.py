"""The ffmpeg binary, running it with progress, and its errors as one line.

ffmpeg comes from `$FFMPEG`, then PATH, then the imageio-ffmpeg wheel (so a plain pip install works
on a machine without ffmpeg).
"""
from __future__ import annotations

import functools
import os
import shutil
import subprocess
import tempfile
import threading
from typing import IO, Callable, Sequence

from vsrvfi.core.errors import FFmpegError, MediaError

# ffmpeg output options that convert YUV to RGB exactly as DALI's CPU video decoder does (BT.601
# limited range, bilinear chroma upsampling; checked bit-exact on VP9 4:2:0). ffmpeg's defaults differ:
# nearest-neighbour chroma (up to ~180/255 off at sharp colour edges) and a BT.709 matrix for clips
# tagged BT.709, which DALI ignores (up to ~34/255 off). PNG frames made for the baseline loader
# should use these, so both loaders see the same pixels.
DALI_RGB_ARGS = ("-sws_flags", "bilinear+full_chroma_int+accurate_rnd", "-vf", "scale=in_color_matrix=bt601",
                 "-pix_fmt", "rgb24")


@functools.lru_cache(maxsize=None)
def ffmpeg_binary() -> str:
    """Path of the ffmpeg executable: $FFMPEG, then PATH, then the imageio-ffmpeg wheel's."""
    explicit = os.environ.get("FFMPEG")
    if explicit:
        return explicit
    found = shutil.which("ffmpeg")
    if found:
        return found
    try:
        import imageio_ffmpeg
    except ImportError as exc:  # pragma: no cover - imageio-ffmpeg is a dependency
        raise RuntimeError("no ffmpeg on PATH and imageio-ffmpeg is not installed") from exc
    return imageio_ffmpeg.get_ffmpeg_exe()


def last_error_line(stderr: IO[bytes], returncode: int | None, fallback: str | None = None) -> str:
    """ffmpeg's last non-empty stderr line (read from the start of `stderr`), else `fallback`/the exit code."""
    stderr.seek(0)
    lines = [ln.strip() for ln in stderr.read().decode(errors="replace").splitlines() if ln.strip()]
    return lines[-1] if lines else (fallback or f"exit code {returncode}")


def popen(cmd: list[str], path: str | os.PathLike, **kwargs) -> subprocess.Popen:
    """Start ffmpeg; a binary that cannot run is a one-line MediaError naming `path`."""
    try:
        return subprocess.Popen(cmd, **kwargs)
    except OSError as exc:
        raise MediaError(path, f"cannot run ffmpeg ({cmd[0]}): {exc.strerror or exc}") from None


def _kill_on(stop: threading.Event, proc: subprocess.Popen) -> None:
    """Kill `proc` as soon as `stop` is set (returns when either happens)."""
    while proc.poll() is None:
        if stop.wait(0.1):
            proc.kill()
            return


def run_ffmpeg(args: Sequence[str], output: str | os.PathLike, on_frames: Callable[[int], None] | None = None,
               threads: int | None = None, stop: threading.Event | None = None) -> None:
    """Run ffmpeg with `args` (everything after the binary name), reporting progress in frames.

    `on_frames(delta)` is called as frames are written (from `-progress`), so parallel jobs can feed
    one shared progress bar. `threads` is placed before `args` (so it applies to the first input's
    decoder). Setting `stop` (from any thread) kills the process; the call then raises
    FFmpegError. Raises FFmpegError naming `output` with ffmpeg's own error line.
    """
    cmd = [ffmpeg_binary(), "-hide_banner", "-nostdin", "-nostats", "-loglevel", "error",
           "-progress", "pipe:1"]
    if threads:
        cmd += ["-threads", str(threads)]
    cmd += list(args)
    with tempfile.TemporaryFile() as err:
        proc = popen(cmd, output, stdout=subprocess.PIPE, stderr=err, text=True)
        if stop is not None:
            threading.Thread(target=_kill_on, args=(stop, proc), daemon=True).start()
        done = 0
        assert proc.stdout is not None
        try:
            for line in proc.stdout:
                if line.startswith("frame=") and on_frames is not None:
                    frames = int(line.split("=", 1)[1] or 0)
                    if frames > done:
                        on_frames(frames - done)
                        done = frames
            rc = proc.wait()
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        if rc != 0:
            if stop is not None and stop.is_set():
                raise FFmpegError(output, "ffmpeg stopped (the run was interrupted or another job failed)")
            raise FFmpegError(output, f"ffmpeg failed: {last_error_line(err, rc)}")


@functools.lru_cache(maxsize=None)
def ffmpeg_encoders() -> frozenset[str]:
    """Names of the encoders the ffmpeg binary lists (`ffmpeg -encoders`); empty if it cannot run.

    Listed is not usable: a build may list h264_nvenc on a machine without an NVIDIA GPU.
    """
    try:
        out = subprocess.run([ffmpeg_binary(), "-hide_banner", "-nostdin", "-encoders"], capture_output=True,
                             text=True, timeout=60).stdout
    except (OSError, subprocess.SubprocessError):
        return frozenset()
    names = set()
    for line in out.splitlines():
        parts = line.split()
        # "V....D libx264   libx264 H.264 ...": flags, then the name; the legend lines have "=".
        if len(parts) >= 2 and len(parts[0]) == 6 and parts[0][0] in "VAS" and "=" not in line:
            names.add(parts[1])
    return frozenset(names)


def run_ffmpeg_jobs(work: Sequence[Callable[[int, Callable[[int], None]], None]], total_frames: int, desc: str,
                    jobs: int = 0, show_progress: bool = True) -> None:
    """Run ffmpeg jobs in parallel under one progress bar counted in frames.

    Each item of `work` is called as `job(threads, on_frames)`: `threads` is its share of the cores
    (0 jobs means one per two cores), `on_frames` feeds the shared bar. The first failure is raised.
    """
    from concurrent.futures import ThreadPoolExecutor
    from threading import Lock

    from tqdm import tqdm

    cpus = os.cpu_count() or 1
    n_jobs = jobs or max(1, cpus // 2)
    threads = max(1, cpus // n_jobs)
    lock = Lock()
    with tqdm(total=total_frames, unit="frame", desc=desc, disable=not show_progress) as bar:
        def update(n: int) -> None:
            with lock:
                bar.update(n)

        with ThreadPoolExecutor(n_jobs) as pool:
            for fut in [pool.submit(job, threads, update) for job in work]:
                fut.result()
