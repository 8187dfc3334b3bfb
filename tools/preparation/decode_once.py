"""Decode-once preparation: the frames scene detection decodes are piped to each scene's encoder.

Without it a source is decoded twice (by detection, then by each scene's ffmpeg process, which also
decodes from the keyframe before its scene). Here one PyAV decoder (core/scenes.detect_scenes'
`on_frame` hook) feeds both: `Router` keeps the frames the detector may still put a cut among (its
look-back, `event_buffer_length`, plus --trim, plus PySceneDetect's 4-frame decode queue), and hands
each settled frame to its scene's `FrameFeed`, the stdin of that scene's ffmpeg process (the same
command as always, tools/encoding/command.scene_command, with `SceneJob.piped`). Memory: those
frames (about 20 at the defaults: 12 MB each at 4K, 1.4 MB at 720p) plus `FrameFeed.DEPTH` per
running scene.

Whatever the router cannot vouch for falls back to the per-scene decode: a cut reported later than
the look-back, frames out of order, a scene the final scene list draws differently. The executor
discards such a piped scene and submits the ordinary job (tools/preparation/executor.py), and the
encoder checks the piped clips' frame counts as it checks every clip.
"""
from __future__ import annotations

import queue
import threading
from typing import Callable

import numpy as np

_END = object()
_UNSPECIFIED = {"color_range": 0, "color_primaries": 2, "color_trc": 2, "colorspace": 2}  # FFmpeg's enums


def stream_tags(path) -> tuple[str, list[tuple[str, int]]]:
    """The sample aspect ratio ("" when unknown) and the colour tags FFmpeg's decoder gives the frames
    of `path`'s first video stream, as ffmpeg input options (those not unspecified)."""
    import av

    with av.open(str(path)) as c:
        s = c.streams.video[0]
        cc = s.codec_context
        sar = s.sample_aspect_ratio or cc.sample_aspect_ratio
        colour = [(name, int(getattr(cc, name))) for name, unset in _UNSPECIFIED.items()
                  if getattr(cc, name, unset) not in (None, unset)]
    return (f"{sar.numerator}/{sar.denominator}" if sar else ""), colour


class FrameFeed:
    """The frames of one scene on their way to its encoder: `put` from the router, iterated by the
    thread writing ffmpeg's stdin; `close(n)` ends it with the count, `abort()` drops it."""

    DEPTH = 8  # frames waiting for the encoder (the router waits when it is full)

    def __init__(self) -> None:
        self._q: queue.Queue = queue.Queue(self.DEPTH)
        self._reader_gone = threading.Event()
        self._ended = threading.Event()
        self.count = 0                 # frames put
        self.aborted = False

    def put(self, frame: np.ndarray) -> None:
        while not self._reader_gone.is_set():
            try:
                self._q.put(frame, timeout=0.1)
                self.count += 1
                return
            except queue.Full:
                continue

    def _end(self) -> None:
        self._ended.set()
        while not self._reader_gone.is_set():
            try:
                self._q.put(_END, timeout=0.1)
                return
            except queue.Full:
                continue

    def close(self) -> None:
        """No more frames: the encoder finishes the clip."""
        self._end()

    def abort(self) -> None:
        """The scene is not what was fed: its clip is to be dropped."""
        self.aborted = True
        self._end()

    def done_reading(self) -> None:
        """Called by the stdin writer when the encoder stopped reading (ended, failed or was killed)."""
        self._reader_gone.set()

    def wait_ended(self) -> None:
        """Block until `close` or `abort` (the count is final then)."""
        self._ended.wait()

    def __iter__(self):
        while True:
            item = self._q.get()
            if item is _END:
                return
            yield item


class Router:
    """Hands the frames of one source, in order, to the feed of the scene each belongs to.

    `open_scene(index, start)` starts the encoder of scene `index` whose first (trimmed) frame is
    `start` and returns its feed; `close_scene(index, feed)` is called when its last frame has been
    put; `abort_scene(index, feed)` when the router can no longer vouch for it. After a problem the
    router stops opening scenes (the executor encodes the rest per scene).
    """

    def __init__(self, open_scene: Callable[[int, int], FrameFeed], close_scene: Callable[[int, FrameFeed], None],
                 abort_scene: Callable[[int, FrameFeed], None], trim: int = 0, size: tuple[int, int] | None = None):
        self.open_scene, self.close_scene, self.abort_scene, self.trim = open_scene, close_scene, abort_scene, trim
        self.size = size                           # (width, height) the encoders expect; None: not checked
        self._bad = ""                             # a frame the encoders cannot take (seen in the decoder's thread)
        self._lock = threading.Lock()
        self._frames: dict[int, np.ndarray] = {}   # decoded, not yet routed
        self._next = 0                             # the next frame to route
        self._cuts: list[int] = []                 # reported cuts not yet reached by routing
        self._index = 0                            # the scene being fed
        self._start = 0                            # its first frame before trimming
        self._feed: FrameFeed | None = None
        self.broken = ""                           # why the router stopped (empty: it did not)
        self.peak_buffered = 0

    # -- the decoder's thread
    def on_frame(self, index: int, frame) -> None:
        """A decoded PyAV frame (yuv420p): kept until the detector has looked past it."""
        with self._lock:
            if self.broken or self._bad or index < self._next or index in self._frames:
                return  # a repeat (PySceneDetect re-opens some streams at the end)
            if frame.format.name != "yuv420p" or (self.size and (frame.width, frame.height) != self.size):
                self._bad = f"frame {index} is {frame.format.name} {frame.width}x{frame.height}"
                return
            self._frames[index] = frame.to_ndarray()
            self.peak_buffered = max(self.peak_buffered, len(self._frames))

    # -- the detector's thread
    def on_cut(self, frame: int) -> None:
        """The detector reported a cut before `frame` (a repeat or an earlier one is ignored)."""
        if frame <= (self._cuts[-1] if self._cuts else self._start):
            return
        if frame - self.trim < self._next:
            self._stop(f"a cut at frame {frame} came after frame {self._next - 1} was encoded")
            return
        self._cuts.append(frame)

    def on_progress(self, settled: int) -> None:
        """Route every frame before `settled - trim` (no cut can still come among them or near them)."""
        self._route_until(settled - self.trim)

    def finish(self, total: int) -> None:
        """Detection ended: route the rest and close the last scene."""
        self._route_until(total)
        if self._feed is not None and not self.broken:
            if self._next != total:
                self._stop(f"decoded {self._next} frames, the source has {total}")
            else:
                self.close_scene(self._index, self._feed)
        self._feed = None
        with self._lock:
            self._frames.clear()

    def stop(self, why: str) -> None:
        """Give up (the run is interrupted or failed): the scene being fed is aborted."""
        self._stop(why)

    # -- routing
    def _stop(self, why: str) -> None:
        if not self.broken:
            self.broken = why
        if self._feed is not None:
            self.abort_scene(self._index, self._feed)
            self._feed = None
        with self._lock:
            self._frames.clear()

    def _route_until(self, end: int) -> None:
        while not self.broken and self._next < end:
            with self._lock:
                frame = self._frames.pop(self._next, None)
            if frame is None:
                self._stop(self._bad or f"frame {self._next} was not decoded in order")
                return
            self._route(self._next, frame)
            self._next += 1

    def _route(self, j: int, frame: np.ndarray) -> None:
        if self._cuts and j == self._cuts[0]:  # the first frame of the next scene
            if self._feed is not None:
                self.close_scene(self._index, self._feed)
            self._cuts.pop(0)
            self._index, self._start, self._feed = self._index + 1, j, None
        if self._feed is None and j == self._start:
            self._feed = self.open_scene(self._index, self._start + (self.trim if self._start > 0 else 0))
        if self._start > 0 and j < self._start + self.trim:
            return  # trimmed after the cut
        if self._cuts and j >= self._cuts[0] - self.trim:
            return  # trimmed before the next cut
        if self._feed is not None:
            self._feed.put(frame)
