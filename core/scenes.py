"""Scene detection with PySceneDetect: the frame ranges of a video's shots.

A foundation service, below the tools: data preparation splits sources at these cuts, and the
video tools (vsr-interpolate, vsr-evaluate) never blend or score across them. PySceneDetect and PyAV
are imported when detection runs, so importing this module is cheap.
"""
from __future__ import annotations

import os
from typing import Callable

from vsrvfi.core.errors import UsageError

DETECTORS = ("content", "adaptive")
DETECTOR_MIN_LEN = 15  # PySceneDetect's default: no two cuts closer than this many frames


def detect_scenes(path: str | os.PathLike, detector: str = "content", threshold: float | None = None,
                  min_len: int = DETECTOR_MIN_LEN, downscale: int = 0, show_progress: bool = True,
                  on_cut: Callable[[int], None] | None = None, on_frame: Callable[[int, object], None] | None = None,
                  on_progress: Callable[[int], None] | None = None) -> list[tuple[int, int]]:
    """[(start, end_exclusive)] frame ranges of the scenes; the whole video when there is no cut.

    `detector` 'content' (threshold 27 by default) or 'adaptive' (3.0); `min_len`: no two cuts
    closer than this many frames (suppresses bursts of false cuts: flashes, fast pans);
    `downscale`: the analysis downscale factor (0: PySceneDetect's auto). `on_cut(frame)` is called
    as soon as the detector reports a cut (while detection goes on), so the scenes before it can be
    processed early; the returned list is the final word.

    Decode-once hooks (the frames detection decodes can feed other consumers, e.g. the scene encoders):
    `on_frame(index, frame)` gets every decoded PyAV frame (its own pixel format, full size), in the
    decoder's thread, before the detector sees it; `on_progress(settled)` is called in the calling
    thread after each frame is analysed, with the first frame at which a cut may still be reported
    (frames before it are past the detector's look-back: no later cut lands among them, as far as the
    detector's `event_buffer_length` says).
    """
    import av
    from scenedetect import AdaptiveDetector, ContentDetector, SceneManager, open_video

    av.logging.set_libav_level(av.logging.ERROR)  # full-range (yuvj420p) sources: swscale warns on every frame
    if detector == "content":
        det = ContentDetector(**({"threshold": threshold} if threshold is not None else {}), min_scene_len=min_len)
    elif detector == "adaptive":
        det = AdaptiveDetector(**({"adaptive_threshold": threshold} if threshold is not None else {}),
                               min_scene_len=min_len)
    else:
        raise UsageError(f"--detector {detector!r}: use 'content' or 'adaptive'")
    if on_cut is not None or on_progress is not None:
        detect_frame, lag = det.process_frame, int(det.event_buffer_length) + 1

        def process_frame(timecode, frame_img):
            cuts = detect_frame(timecode, frame_img)
            for cut in cuts:
                if on_cut is not None:
                    on_cut(int(cut.frame_num))
            if on_progress is not None:
                on_progress(int(timecode.frame_num) + 1 - lag)
            return cuts

        det.process_frame = process_frame
    video = open_video(str(path), backend="pyav", threading_mode="AUTO")
    if on_frame is not None:
        video = _tee(video, on_frame)
    manager = SceneManager()
    if downscale:
        manager.auto_downscale = False
        manager.downscale = downscale
    manager.add_detector(det)
    manager.detect_scenes(video, show_progress=show_progress)
    scenes = manager.get_scene_list(start_in_scene=True)
    return [(s.frame_num, e.frame_num) for s, e in scenes]


def _tee(video, on_frame: Callable[[int, object], None]):
    """`video` (PySceneDetect's PyAV stream) handing each decoded frame to `on_frame(index, frame)` too."""
    read = video.read

    def tee_read(decode: bool = True):
        out = read(decode)
        if out is not False and video._frame is not None:  # noqa: SLF001 - the PyAV frame it just decoded
            on_frame(video.frame_number - 1, video._frame)  # noqa: SLF001
        return out

    video.read = tee_read
    return video


def scene_cuts(path: str | os.PathLike, threshold: float | None = None, min_len: int = 8) -> set[int]:
    """Indices of the frames that start a new scene (content detector; cuts closer than `min_len`
    frames, or PySceneDetect's 15 if less, count as one)."""
    ranges = detect_scenes(path, "content", threshold, min(DETECTOR_MIN_LEN, min_len), show_progress=False)
    return {start for start, _ in ranges if start > 0}
