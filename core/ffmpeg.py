"""The ffmpeg binaries, running them with progress, and their errors as one line.

Two roles. Encoding and cutting use `ffmpeg_binary()`: `$FFMPEG`, then PATH, then the imageio-ffmpeg
wheel (so a plain pip install works on a machine without ffmpeg, and a system build with hardware
encoders is used where there is one). Every YUV->RGB conversion (PNG frames, the evaluator and the
video tools) uses `rgb_ffmpeg_binary()`, the wheel's own build, whatever is on PATH: swscale's
output differs between FFmpeg versions (Debian 12's FFmpeg 5.1 is up to 78 levels off DALI's decode
with the same flags), and the wheel's is the one checked bit-exact against DALI's reader.
"""
from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import IO, Callable, Iterable, Sequence

from vsrvfi.core.errors import FFmpegError, MediaError

# ffmpeg output options that convert YUV to RGB exactly as DALI's CPU video decoder does (BT.601
# limited range, bilinear chroma upsampling; checked bit-exact on VP9 4:2:0 with rgb_ffmpeg_binary();
# other FFmpeg versions give other pixels with the same flags). ffmpeg's defaults differ:
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


@functools.lru_cache(maxsize=None)
def rgb_ffmpeg_binary() -> str:
    """The imageio-ffmpeg wheel's ffmpeg, used for every YUV->RGB conversion (see the module docstring).

    `$FFMPEG`, PATH and `IMAGEIO_FFMPEG_EXE` are ignored here on purpose. If the wheel carries no binary
    (some distributions strip it), `ffmpeg_binary()` is used with a warning that frames may differ.
    """
    import imageio_ffmpeg

    bundled = sorted((Path(imageio_ffmpeg.__file__).parent / "binaries").glob("ffmpeg-*"))
    bundled = [p for p in bundled if p.is_file() and os.access(p, os.X_OK)]
    if bundled:
        return str(bundled[-1])
    print("warning: the imageio-ffmpeg wheel has no ffmpeg binary; YUV->RGB frames come from "
          f"{ffmpeg_binary()} and may differ from DALI's decode", file=sys.stderr)
    return ffmpeg_binary()


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


# The processes run_ffmpeg has running (in any thread), so that run_ffmpeg_jobs can stop them all.
_running: set[subprocess.Popen] = set()
_running_lock = threading.Lock()


def _kill_on(stop: threading.Event, proc: subprocess.Popen) -> None:
    """Kill `proc` as soon as `stop` is set (returns when either happens)."""
    while proc.poll() is None:
        if stop.wait(0.1):
            proc.kill()
            return


def _write_stdin(proc: subprocess.Popen, chunks: Iterable) -> None:
    """Write `chunks` to `proc`'s standard input (text mode: its binary buffer), then close it."""
    pipe = proc.stdin.buffer if hasattr(proc.stdin, "buffer") else proc.stdin
    try:
        for chunk in chunks:
            pipe.write(chunk)
    except (BrokenPipeError, OSError, ValueError):  # ffmpeg ended (killed, or failed)
        pass
    finally:
        done = getattr(chunks, "done_reading", None)
        if done is not None:
            done()
        try:
            pipe.close()
        except (BrokenPipeError, OSError):
            pass


def run_ffmpeg(args: Sequence[str], output: str | os.PathLike, on_frames: Callable[[int], None] | None = None,
               threads: int | None = None, rgb: bool = False, stop: threading.Event | None = None,
               stdin: Iterable | None = None) -> None:
    """Run ffmpeg with `args` (everything after the binary name), reporting progress in frames.

    `on_frames(delta)` is called as frames are written (from `-progress`), so parallel jobs can feed
    one shared progress bar. `threads` is placed before `args` (so it applies to the first input's
    decoder). `rgb=True` for commands that convert to or from RGB (DALI_RGB_ARGS): they run on
    `rgb_ffmpeg_binary()`. Setting `stop` (from any thread) kills the process; the call then raises
    FFmpegError. Raises FFmpegError naming `output` with ffmpeg's own error line. `stdin`: buffers
    written to ffmpeg's standard input by a thread (for `-i pipe:0`), closed after the last; when
    ffmpeg stops reading, the thread calls `stdin.done_reading()` if it has one (so a producer that
    waits for room stops waiting).
    """
    cmd = [rgb_ffmpeg_binary() if rgb else ffmpeg_binary(), "-hide_banner", "-nostdin", "-nostats", "-loglevel", "error",
           "-progress", "pipe:1"]
    if threads:
        cmd += ["-threads", str(threads)]
    cmd += list(args)
    with tempfile.TemporaryFile() as err:
        proc = popen(cmd, output, stdout=subprocess.PIPE, stderr=err, text=True,
                     **({"stdin": subprocess.PIPE} if stdin is not None else {}))
        if stdin is not None:
            threading.Thread(target=_write_stdin, args=(proc, stdin), daemon=True).start()
        if stop is not None:
            threading.Thread(target=_kill_on, args=(stop, proc), daemon=True).start()
        done = 0
        assert proc.stdout is not None
        with _running_lock:
            _running.add(proc)
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
        finally:
            with _running_lock:
                _running.discard(proc)
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
    (0 jobs means one per two cores), `on_frames` feeds the shared bar. The first failure (or a
    signal, as `KeyboardInterrupt`) stops the rest at once: queued jobs never start and running
    ffmpeg processes are killed, so their jobs fail and drop their temporary outputs; finished
    outputs are kept. Then it is raised.
    """
    from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
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
            futures = [pool.submit(job, threads, update) for job in work]
            try:
                done, _ = wait(futures, return_when=FIRST_EXCEPTION)
                for fut in futures:
                    if fut in done:
                        fut.result()
            except BaseException:
                for fut in futures:
                    fut.cancel()
                while not all(fut.done() for fut in futures):  # a job may start its ffmpeg just now
                    with _running_lock:
                        for proc in _running:
                            proc.kill()
                    wait(futures, timeout=0.1)
                raise
