"""What DALI's legacy GPU reader (`fn.readers.video`) will make of the clips, checked before a pipeline is built.

The legacy reader differs from the project's view of a clip in three ways (DALI's video_loader.cc and
video_loader.h; cuvideodecoder.cc and nvdecoder.cc for the first):

* One decoder serves every clip of a pipeline. When the frame size changes it is reconfigured to the
  new coded size (e.g. 544 rows for 540p) while the output keeps the display size, so rows overflow or
  shear: clips of different sizes (several sources with other aspect ratios at one tier) come out
  corrupted. `check_one_size` refuses them with one line naming the sizes and the way out.
* Its frame count is the stream's duration times the average frame rate, rounded (av_rescale_q), not
  the number of packets the project counts, and a file-list range that ends after that count fails
  the whole pipeline build. `legacy_view` computes that count; a clip's usable frames are the smaller
  of the two.
* It calls a clip variable-frame-rate, and fails the build, when the first packet's duration is not
  1 / average rate (to 2 ULPs). `legacy_view` repeats that check.

`fit_clips` applies the last two to a loader's clips: each clip it changes or leaves out gets one
warning line (LegacyReaderWarning) naming the file, the numbers and data.gpu_reader=experimental,
which reads such clips.
"""
from __future__ import annotations

import math
import os
import warnings
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path
from typing import Sequence

from vsrvfi.core.errors import UsageError
from vsrvfi.pipelines.sampling import Clip

_EPS = 2.220446049250313e-16       # numeric_limits<double>::epsilon()
_MIN = 2.2250738585072014e-308     # numeric_limits<double>::min()


class LegacyReaderWarning(UserWarning):
    """A clip the legacy GPU reader would read differently (fewer frames) or reject, changed or left out."""


@dataclass(frozen=True)
class LegacyView:
    """A clip as DALI's legacy reader sees it."""
    frame_count: int | None       # duration x average rate, rounded; None when it cannot be computed
    first_duration: float | None  # seconds, the first video packet's duration
    frame_time: float | None      # seconds, 1 / average rate
    problem: str | None           # why the reader would reject the clip at pipeline build, or None


def _rescale(a: int, b: Fraction, c: Fraction) -> int:
    """FFmpeg's av_rescale_q(a, b, c): a * b / c rounded to the nearest, halves away from zero."""
    x = Fraction(a) * b / c
    return int(math.copysign(math.floor(abs(x) + Fraction(1, 2)), x))


def _almost_equal(x: float, y: float, ulp: int = 2) -> bool:
    """DALI's almost_equal for doubles (video_loader.cc)."""
    return x == y or abs(x - y) <= _EPS * abs(x + y) * ulp or abs(x - y) < _MIN


def legacy_view(path: str | os.PathLike) -> LegacyView:
    """The legacy reader's frame count and frame-rate check for one clip (demuxing only its first packet)."""
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        rate, tb = stream.average_rate, stream.time_base
        if not rate or not tb:
            return LegacyView(None, None, None, "no average frame rate or time base in the stream")
        rate, tb = Fraction(rate), Fraction(tb)
        duration = stream.duration
        if duration is None:  # DALI falls back to the container's duration / 1000 (in the stream's time base)
            duration = int(container.duration / 1000) if container.duration is not None else 0
        count = _rescale(int(duration), tb, 1 / rate)
        frame_time = rate.denominator / rate.numerator  # av_q2d(frame_base), as doubles
        first = None
        for packet in container.demux(stream):
            if packet.size:
                first = packet
                break
        if first is None or not first.duration:
            return LegacyView(count, None, frame_time,
                              "its first packet has no duration (the legacy reader's frame-rate check fails)")
        first_s = first.duration * (tb.numerator / tb.denominator)
        problem = None
        if not _almost_equal(frame_time, first_s):
            problem = (f"variable frame rate by the legacy reader's check: the first frame lasts {first_s:.6g} s, "
                       f"1 / average rate is {frame_time:.6g} s")
        return LegacyView(count, first_s, frame_time, problem)


def check_one_size(clips: Sequence[Clip], where: str | os.PathLike) -> None:
    """One line (UsageError) when the clips, or their LR clips, have more than one frame size."""
    for label, sizes in (("", [(c.width, c.height) for c in clips]),
                         ("LR ", [c.lr_size for c in clips if c.lr_size is not None])):
        counts: dict[tuple[int, int], int] = {}
        for s in sizes:
            counts[s] = counts.get(s, 0) + 1
        if len(counts) > 1:
            listed = ", ".join(f"{w}x{h} ({n} clip{'s' if n > 1 else ''}, coded {w + -w % 16}x{h + -h % 16})"
                               for (w, h), n in sorted(counts.items(), key=lambda kv: -kv[1]))
            raise UsageError(f"{where}: {label}clips of {len(counts)} frame sizes ({listed}): DALI's legacy GPU "
                             f"reader (fn.readers.video) reconfigures its one decoder to each coded size and "
                             f"corrupts the frames; set data.gpu_reader=experimental (loader option gpu_reader), "
                             f"or use a tier whose clips have one size")


def fit_clips(clips: Sequence[Clip], need: int, view=legacy_view) -> list[Clip]:
    """The clips as the legacy reader can read them: frame counts cut to its own count, and the clips it
    would reject (or too short once cut, below `need` frames) left out, one warning line each."""
    out = []
    for clip in clips:
        paths = [clip.path] + ([clip.lr_path] if clip.lr_path is not None else [])
        usable, problem = clip.num_frames, None
        for p in paths:
            v = view(p)
            if v.problem:
                problem = f"{p}: {v.problem}"
                break
            if v.frame_count is not None and v.frame_count < usable:
                warnings.warn(f"{p}: the legacy GPU reader counts {v.frame_count} frames (duration x average rate) "
                              f"of its {clip.num_frames}; sequences past frame {v.frame_count} left out "
                              f"(data.gpu_reader=experimental reads them all)", LegacyReaderWarning, stacklevel=3)
                usable = v.frame_count
        if problem is None and usable < need:
            problem = (f"{clip.path}: the legacy GPU reader counts {usable} frames, fewer than the {need} one "
                       f"sequence needs")
        if problem is not None:
            warnings.warn(f"{problem}; clip left out (data.gpu_reader=experimental reads it)", LegacyReaderWarning,
                          stacklevel=3)
            continue
        out.append(clip if usable == clip.num_frames else replace(clip, num_frames=usable))
    return out


def clips_dir(clips: Sequence[Clip]) -> Path:
    """The folder the clips are in (for messages)."""
    return Path(clips[0].path).parent if clips else Path(".")
