"""Video facts: probing a file's first video stream in-process with PyAV (no ffprobe needed).

PyAV is imported when a video is first probed, so code that only names `VideoInfo` or the errors
does not need it.
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path

from vsrvfi.core.errors import MediaError


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
    start_time: float = 0.0    # presentation time of the first frame, seconds (ffmpeg's timestamps)

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
    import av

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
            start_time=float(min(pts) * stream.time_base) if stream.time_base else 0.0,
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
