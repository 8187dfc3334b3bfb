"""Whole-video frame I/O for the inference tools: ffmpeg pipes in and out, audio carried over.

Frames are decoded to RGB with the same YUV->RGB conversion DALI's decoder uses (`DALI_RGB_ARGS`,
BT.601 matrix), so models see the pixels they were trained on, and encoded back with the same
matrix and the source's colour tags: a frame that is only copied comes out as the source had it.
Output goes to a temporary name and is renamed when complete; an interrupted run leaves nothing
under the final name.
"""
from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Callable, Iterator

import av
import numpy as np

from vsrvfi.core.atomic import atomic_path, check_writable_dir
from vsrvfi.core.errors import MediaError
from vsrvfi.core.ffmpeg import DALI_RGB_ARGS, last_error_line, popen, rgb_ffmpeg_binary
from vsrvfi.core.media import VideoInfo, probe

# Audio codecs each container takes as they are; anything else is re-encoded.
_AUDIO_COPY = {
    ".mp4": {"aac", "mp3", "alac", "ac3", "eac3", "opus", "flac"},
    ".mov": {"aac", "mp3", "alac", "ac3", "pcm_s16le", "pcm_s24le"},
    ".mkv": None,  # takes everything
    ".webm": {"opus", "vorbis"},
}
_AUDIO_FALLBACK = {".webm": ("libopus", "128k")}
_VIDEO_CODECS = {"h264": "libx264", "hevc": "libx265", "vp9": "libvpx-vp9", "ffv1": "ffv1"}
_CONTAINER_CODECS = {".mp4": ("h264", "hevc", "vp9"), ".mov": ("h264", "hevc"), ".mkv": tuple(_VIDEO_CODECS),
                     ".webm": ("vp9",)}


def pick_codec(path: str | os.PathLike, codec: str = "auto") -> str:
    """`codec` checked against the container of `path`; 'auto' is H.264, or VP9 for .webm."""
    ext = Path(path).suffix.lower()
    allowed = _CONTAINER_CODECS.get(ext, ())
    if codec == "auto":
        return allowed[0] if allowed else "h264"
    if codec not in _VIDEO_CODECS:
        raise MediaError(path, f"unknown codec {codec!r}: use {', '.join(_VIDEO_CODECS)}")
    if allowed and codec not in allowed:
        raise MediaError(path, f"a {ext} file cannot hold {codec}: use {', '.join(allowed)}")
    return codec


@dataclass(frozen=True)
class SourceVideo:
    """A probed input video plus what the writer needs to reproduce its look and sound."""

    info: VideoInfo
    audio_codec: str | None
    color_tags: tuple[tuple[str, int], ...]  # ffmpeg (option, value) pairs of the source's colour tags

    @property
    def path(self) -> str:
        return self.info.path


def open_source(path: str | os.PathLike, min_frames: int = 1) -> SourceVideo:
    """Probe `path` for the inference tools; one-line MediaError when it cannot be used."""
    info = probe(path)  # missing / not a video / no video stream / corrupt are reported there
    if info.num_frames < min_frames:
        raise MediaError(path, f"too short: {info.num_frames} frame(s), needs at least {min_frames}")
    audio_codec, tags = None, []
    with av.open(str(path)) as container:
        if container.streams.audio:
            codec = container.streams.audio[0].codec_context.codec
            audio_codec = getattr(codec, "canonical_name", None) or codec.name  # 'mp3', not decoder 'mp3float'
        cc = container.streams.video[0].codec_context
        for option, value in (("colorspace", cc.colorspace), ("color_primaries", cc.color_primaries),
                              ("color_trc", cc.color_trc)):
            if value not in (None, 2):  # 2 = unspecified
                tags.append((option, int(value)))
    return SourceVideo(info, audio_codec, tuple(tags))


def read_frames(src: SourceVideo | str | os.PathLike, max_frames: int | None = None,
                start: int = 0) -> Iterator[np.ndarray]:
    """Yield the video's frames as (H, W, 3) uint8 RGB arrays, in order, from frame `start` on.

    `start` > 0 seeks (ffmpeg's input `-ss`, to the keyframe before it, then decodes forward and drops
    the frames before `start`): a sequence of a packed shard is read without decoding the shard up to
    it. The seek time is half a frame before the frame's own, so constant-rate timestamps rounded by
    the container still select exactly frame `start`.
    """
    info = src.info if isinstance(src, SourceVideo) else probe(src)
    w, h = info.width, info.height
    seek = ["-ss", f"{info.start_time + (start - 0.5) / float(info.fps):.6f}"] if start > 0 else []
    cmd = [rgb_ffmpeg_binary(), "-hide_banner", "-nostdin", "-loglevel", "error", *seek, "-i", info.path,
           "-map", "0:v:0", "-fps_mode", "passthrough", *(["-frames:v", str(max_frames)] if max_frames else []),
           *DALI_RGB_ARGS, "-f", "rawvideo", "pipe:1"]
    size = w * h * 3
    with tempfile.TemporaryFile() as err:
        proc = popen(cmd, info.path, stdout=subprocess.PIPE, stderr=err, bufsize=size * 2)
        assert proc.stdout is not None
        partial = False
        try:
            while True:
                buf = bytearray(size)  # writable, so torch can take it without a copy
                view, got = memoryview(buf), 0
                while got < size:
                    n = proc.stdout.readinto(view[got:])
                    if not n:
                        break
                    got += n
                if got < size:
                    partial = got > 0
                    break
                yield np.frombuffer(buf, np.uint8).reshape(h, w, 3)
        except GeneratorExit:  # the consumer stopped early: ffmpeg's exit status means nothing now
            proc.kill()
            raise
        finally:
            proc.stdout.close()
            proc.wait()
        if proc.returncode != 0 or partial:
            why = last_error_line(err, proc.returncode, "a truncated last frame" if partial else None)
            raise MediaError(info.path, f"decoding failed: {why}")


def read_selected(src: SourceVideo, needed: set[int], on_frame: Callable[[int], None] | None = None,
                  first: int = 0, total: int | None = None) -> list[np.ndarray | None]:
    """The frames `first + i` of `src` for i in `needed`, in a list of `total` (default: the rest of the
    video) with None elsewhere.

    Decodes from frame `first` (a seek when > 0: a sequence of a packed shard starts on a keyframe) up
    to the last needed frame in one sequential pass; frames not needed are dropped as they come.
    `on_frame(1)` is called per decoded frame.
    """
    total = src.info.num_frames - first if total is None else total
    out: list[np.ndarray | None] = [None] * total
    last = max(needed, default=-1)
    if last >= total or first + last >= src.info.num_frames:
        raise MediaError(src.path, f"frame {first + last} asked for, the video has {src.info.num_frames}")
    if last < 0:
        return out
    got = 0
    for i, frame in enumerate(read_frames(src, last + 1, first)):
        if i in needed:
            out[i] = frame
            got += 1
        if on_frame is not None:
            on_frame(1)
    if got < len(needed):
        raise MediaError(src.path, f"only {got} of the {len(needed)} frames asked for could be decoded")
    return out


def warn_if_short(src: SourceVideo, written: int, planned: int) -> None:
    """Say so when the source ran out before `planned` output frames (its index promised more frames)."""
    if written < planned:
        print(f"warning: {src.path}: held fewer frames than its index says; wrote {written} of {planned} "
              f"planned frames", file=sys.stderr)


def check_output(path: str | os.PathLike, overwrite: bool, source: str | os.PathLike | None = None,
                 codec: str = "auto") -> Path:
    """Refuse an existing output (unless `overwrite`), the input itself, an unknown container or codec."""
    out = Path(path)
    if out.suffix.lower() not in _AUDIO_COPY:
        raise MediaError(out, f"unsupported output container {out.suffix or '(none)'}: use "
                              f"{', '.join(sorted(_AUDIO_COPY))}")
    if source is not None and out.resolve() == Path(source).resolve():
        raise MediaError(out, "is the input video: choose another output name")
    if out.exists() and not overwrite:
        raise MediaError(out, "exists already: pass --overwrite to replace it")
    pick_codec(out, codec)
    check_writable_dir(out.parent if str(out.parent) else ".")
    return out


class VideoWriter:
    """Encode RGB frames into `path` through an ffmpeg pipe, taking the audio from `source`.

    Use as a context manager: the file appears under its final name only when the block completes.
    """

    def __init__(self, path: str | os.PathLike, width: int, height: int, fps: Fraction,
                 source: SourceVideo | None = None, codec: str = "auto", crf: int = 18,
                 preset: str = "medium", audio: bool = True):
        codec = pick_codec(path, codec)
        self.path, self.width, self.height, self.fps = Path(path), width, height, Fraction(fps)
        self.source, self.codec, self.crf, self.preset = source, codec, crf, preset
        self.audio = audio and source is not None and source.audio_codec is not None
        self.frames = 0
        self._stack = contextlib.ExitStack()
        self._proc: subprocess.Popen | None = None

    def _command(self, tmp: Path) -> list[str]:
        cmd = [rgb_ffmpeg_binary(), "-hide_banner", "-nostdin", "-loglevel", "error", "-y",
               "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{self.width}x{self.height}",
               "-r", f"{self.fps.numerator}/{self.fps.denominator}", "-i", "pipe:0"]
        if self.audio:
            cmd += ["-i", self.source.path, "-map", "0:v:0", "-map", "1:a:0"]
        odd = self.width % 2 or self.height % 2  # 4:2:0 needs even sizes; keep odd ones in 4:4:4
        pix_fmt = "yuv444p" if odd else "yuv420p"
        cmd += ["-vf", "scale=out_color_matrix=bt601:out_range=tv", "-sws_flags", "bicubic+accurate_rnd+full_chroma_int",
                "-c:v", _VIDEO_CODECS[self.codec], "-pix_fmt", pix_fmt]
        if self.codec in ("h264", "hevc"):
            cmd += ["-crf", str(self.crf), "-preset", self.preset]
        elif self.codec == "vp9":
            cmd += ["-crf", str(self.crf), "-b:v", "0", "-row-mt", "1"]
        for option, value in (self.source.color_tags if self.source else ()):
            cmd += [f"-{option}", str(value)]
        if self.audio:
            ext = self.path.suffix.lower()
            allowed = _AUDIO_COPY[ext]
            if allowed is None or self.source.audio_codec in allowed:
                cmd += ["-c:a", "copy"]
            else:
                enc, rate = _AUDIO_FALLBACK.get(ext, ("aac", "192k"))
                cmd += ["-c:a", enc, "-b:a", rate]
        return cmd + [str(tmp)]

    def __enter__(self) -> "VideoWriter":
        tmp = self._stack.enter_context(atomic_path(self.path))
        self._err = self._stack.enter_context(tempfile.TemporaryFile())
        try:
            self._proc = popen(self._command(tmp), self.path, stdin=subprocess.PIPE, stderr=self._err)
        except BaseException as err:
            self._stack.__exit__(type(err), err, err.__traceback__)
            raise
        return self

    def write(self, frame: np.ndarray) -> None:
        """Append one (H, W, 3) uint8 RGB frame."""
        if frame.shape != (self.height, self.width, 3) or frame.dtype != np.uint8:
            raise ValueError(f"frame {frame.shape} {frame.dtype}, writer expects ({self.height}, {self.width}, 3) uint8")
        try:
            self._proc.stdin.write(np.ascontiguousarray(frame).tobytes())
        except BrokenPipeError:
            self._fail()
        self.frames += 1

    def _fail(self) -> None:
        self._proc.wait()
        raise MediaError(self.path, f"encoding failed: {last_error_line(self._err, self._proc.returncode)}")

    def _kill(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc_type is None:
            try:
                try:
                    self._proc.stdin.close()
                except BrokenPipeError:
                    self._fail()
                if self._proc.wait() != 0:
                    self._fail()
                if self.frames == 0:
                    raise MediaError(self.path, "no frames were written")
            except BaseException as err:
                self._kill()
                self._stack.__exit__(type(err), err, err.__traceback__)  # drops the temporary file
                raise
            return bool(self._stack.__exit__(None, None, None))  # renames it onto the final name
        self._kill()
        return bool(self._stack.__exit__(exc_type, exc, tb))
