"""Video facts and the ffmpeg binary, shared by every tool, pipeline and test.

ffmpeg comes from PATH, else from the imageio-ffmpeg wheel (so a plain pip install works on a machine
without ffmpeg); `FFMPEG` in the environment overrides both. Probing uses PyAV in-process, so no
ffprobe binary is needed.
"""
from __future__ import annotations

import contextlib
import functools
import os
import shutil
import subprocess
import tempfile
import uuid
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path
from typing import Callable, Iterator, Sequence

import av


# ffmpeg output options that convert YUV to RGB exactly as DALI's CPU video decoder does (BT.601
# limited range, bilinear chroma upsampling; checked bit-exact on VP9 4:2:0). ffmpeg's defaults differ:
# nearest-neighbour chroma (up to ~180/255 off at sharp colour edges) and a BT.709 matrix for clips
# tagged BT.709, which DALI ignores (up to ~34/255 off). PNG frames made for the baseline loader
# should use these, so both loaders see the same pixels.
DALI_RGB_ARGS = ("-sws_flags", "bilinear+full_chroma_int+accurate_rnd", "-vf", "scale=in_color_matrix=bt601",
                 "-pix_fmt", "rgb24")


class MediaError(Exception):
    """A problem with an input or output file, phrased as one line: '<path>: <problem>'."""

    def __init__(self, path: str | os.PathLike, problem: str):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{path}: {problem}")


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


@dataclass(frozen=True)
class VideoInfo:
    """What the tools need to know about a video file's first video stream."""

    path: str
    codec: str
    width: int
    height: int
    fps: Fraction
    num_frames: int
    duration: float
    pix_fmt: str
    bit_depth: int
    is_vfr: bool
    is_hdr: bool
    has_audio: bool
    keyframes: tuple[int, ...]

    @property
    def gop(self) -> int:
        """Largest distance between consecutive keyframes (the frames a random seek may decode)."""
        marks = list(self.keyframes) + [self.num_frames]
        return max((b - a for a, b in zip(marks, marks[1:])), default=self.num_frames)

    def as_dict(self) -> dict:
        d = asdict(self)
        d["fps"] = float(self.fps)
        d["keyframes"] = list(self.keyframes)
        return d


_HDR_TRANSFERS = {"smpte2084", "arib-std-b67", "smpte428"}


def _bit_depth(pix_fmt: str) -> int:
    for depth in (16, 14, 12, 10, 9):
        if f"p{depth}" in pix_fmt:
            return depth
    return 8


def probe(path: str | os.PathLike) -> VideoInfo:
    """Probe a video by demuxing its packets (no decoding): size, fps, frame count, keyframes, VFR.

    Raises MediaError naming the file for: missing, not a media file, no video stream, no frames.
    """
    p = Path(path)
    if not p.exists():
        raise MediaError(p, "no such file")
    if not p.is_file():
        raise MediaError(p, "not a regular file")
    if p.stat().st_size == 0:
        raise MediaError(p, "empty file")
    try:
        container = av.open(str(p))
    except (av.error.InvalidDataError, av.error.FFmpegError, UnicodeDecodeError) as exc:
        raise MediaError(p, f"not a video file ({exc.__class__.__name__})") from None
    with container:
        if not container.streams.video:
            raise MediaError(p, "no video stream")
        stream = container.streams.video[0]
        ctx = stream.codec_context
        if stream.average_rate:
            fps = Fraction(stream.average_rate)
        elif stream.guessed_rate:
            fps = Fraction(stream.guessed_rate)
        else:
            raise MediaError(p, "unknown frame rate")
        keyframes: list[int] = []
        pts: list[int] = []
        try:
            for packet in container.demux(stream):
                if packet.size == 0:
                    continue  # flush packet at end of stream
                if packet.is_keyframe:
                    keyframes.append(len(pts))
                pts.append(packet.pts if packet.pts is not None else len(pts))
        except av.error.FFmpegError as exc:
            raise MediaError(p, f"corrupt video data ({exc.__class__.__name__})") from None
        if not pts:
            raise MediaError(p, "no video frames")
        declared = stream.frames
        if declared and len(pts) < declared:
            raise MediaError(p, f"corrupt or truncated ({len(pts)} of {declared} frames readable)")
        pix_fmt = ctx.format.name if ctx.format is not None else "unknown"
        transfer = str(getattr(ctx, "color_trc", "") or "").lower()
        duration = float(len(pts) / fps)
        return VideoInfo(
            path=str(p),
            codec=ctx.name,
            width=ctx.width,
            height=ctx.height,
            fps=fps,
            num_frames=len(pts),
            duration=duration,
            pix_fmt=pix_fmt,
            bit_depth=_bit_depth(pix_fmt),
            is_vfr=_is_vfr(sorted(pts), stream.time_base, fps),
            is_hdr=any(t in transfer for t in _HDR_TRANSFERS) or transfer in {"16", "18"},
            has_audio=bool(container.streams.audio),
            keyframes=tuple(keyframes),
        )


def _is_vfr(sorted_pts: list[int], time_base: Fraction | None, fps: Fraction) -> bool:
    """True when frame durations differ by more than half a nominal frame."""
    if len(sorted_pts) < 3 or not time_base:
        return False
    deltas = [(b - a) * time_base for a, b in zip(sorted_pts, sorted_pts[1:])]
    nominal = 1 / fps
    return any(abs(d - nominal) > nominal / 2 for d in deltas)


def even_size(width: int, height: int, target_height: int) -> tuple[int, int]:
    """Width and height for `target_height` keeping the aspect ratio, both even (yuv420p needs it)."""
    w = round(width * target_height / height / 2) * 2
    return max(w, 2), max(target_height - target_height % 2, 2)


@contextlib.contextmanager
def atomic_path(final: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary sibling path; rename it onto `final` only if the block completes.

    Output is never half-written under its final name, and an interrupted run leaves only a temporary
    that the next run overwrites. Works for files and directories.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f".{final.stem}.tmp.{uuid.uuid4().hex[:8]}{final.suffix}")
    try:
        yield tmp
        if tmp.is_dir() and final.is_dir():
            shutil.rmtree(final)  # an incomplete folder left by something else; ours is complete
        os.replace(tmp, final)
    finally:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        elif tmp.exists():
            tmp.unlink()


def check_writable_dir(path: str | os.PathLike) -> Path:
    """Create `path` if needed and check that files can be written there (one-line error if not)."""
    p = Path(path)
    try:
        p.mkdir(parents=True, exist_ok=True)
        probe_file = p / f".write-test-{uuid.uuid4().hex[:8]}"
        probe_file.write_bytes(b"")
        probe_file.unlink()
    except OSError as exc:
        raise MediaError(p, f"cannot write here ({exc.strerror or exc})") from None
    return p


def dir_bytes(path: str | os.PathLike) -> int:
    """Total size in bytes of the regular files under `path` (0 if it does not exist)."""
    root = Path(path)
    if not root.exists():
        return 0
    return sum(f.stat().st_size for f in root.rglob("*") if f.is_file())


class FFmpegError(MediaError):
    """ffmpeg failed; the message carries its last meaningful stderr line."""


def run_ffmpeg(args: Sequence[str], output: str | os.PathLike, on_frames: Callable[[int], None] | None = None,
               threads: int | None = None) -> None:
    """Run ffmpeg with `args` (everything after the binary name), reporting progress in frames.

    `on_frames(delta)` is called as frames are written (from `-progress`), so parallel jobs can feed
    one shared progress bar. Raises FFmpegError naming `output` with ffmpeg's own error line.
    """
    cmd = [ffmpeg_binary(), "-hide_banner", "-nostdin", "-nostats", "-loglevel", "error",
           "-progress", "pipe:1"]
    if threads:
        cmd += ["-threads", str(threads)]
    cmd += list(args)
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, text=True)
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
            err.seek(0)
            lines = [ln.strip() for ln in err.read().decode(errors="replace").splitlines() if ln.strip()]
            raise FFmpegError(output, f"ffmpeg failed: {lines[-1] if lines else f'exit code {rc}'}")


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
