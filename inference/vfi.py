"""Frame-rate up-conversion with an interpolation model (RIFE, RIFEm, IFRNet).

The output keeps the input's duration (so the audio stays in sync): output frame j shows time
j / fps_out, which falls between source frames i and i + 1 at fraction t. t = 0 copies frame i;
otherwise the model makes the frame at timestep t, except where that would blend across a scene
cut or between two identical frames, where the nearest source frame is repeated instead. Models
that take any timestep (RIFEm, IFRNet) get t directly; RIFE (midpoint only) gets there by recursive
bisection on a dyadic grid, as the official RIFE does for 4x and 8x.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Callable, Iterable, Iterator

import numpy as np
import torch
from torch import nn

from vsrvfi.inference.runtime import autocast, to_frame, to_tensor


@dataclass(frozen=True)
class OutputFrame:
    """Output frame = source frame `src` (t == 0) or the frame at `t` between `src` and `src + 1`."""

    src: int
    t: Fraction


def plan_output(num_frames: int, fps_in: Fraction, fps_out: Fraction) -> list[OutputFrame]:
    """The output frames of a `num_frames` video re-timed from `fps_in` to `fps_out`, same duration."""
    count = round(Fraction(num_frames) * fps_out / fps_in)
    plan = []
    for j in range(count):
        pos = Fraction(j) * fps_in / fps_out
        i = math.floor(pos)
        if i >= num_frames - 1:  # past the last source frame: nothing to interpolate towards
            plan.append(OutputFrame(num_frames - 1, Fraction(0)))
        else:
            plan.append(OutputFrame(i, pos - i))
    return plan


def output_fps(fps_in: Fraction, factor: int | None = None, fps: str | float | None = None,
               max_ratio: int = 64) -> Fraction:
    """fps_in * factor, or a target rate given as a number or 'num/den' (e.g. 60000/1001).

    The result must raise the rate (lowering it is a job for ffmpeg's fps filter, not a model) by at
    most `max_ratio`.
    """
    if (factor is None) == (fps is None):
        raise ValueError("give either a factor or a target fps")
    if factor is not None:
        if not 2 <= factor <= max_ratio:
            raise ValueError(f"factor must be between 2 and {max_ratio}, got {factor}")
        return Fraction(fps_in) * factor
    try:
        out = fps if isinstance(fps, Fraction) else Fraction(str(fps)).limit_denominator(1001 * 1000)
    except (ValueError, ZeroDivisionError, OverflowError):
        raise ValueError(f"target fps {fps!r} is not a number like 60 or 60000/1001") from None
    if not fps_in < out <= fps_in * max_ratio:
        raise ValueError(f"target fps {float(out):g} must be above the input's {float(fps_in):g} and at most "
                         f"{max_ratio}x it (to lower a frame rate use ffmpeg's fps filter)")
    return out


def is_duplicate(a: np.ndarray, b: np.ndarray, threshold: float, block: int = 16) -> bool:
    """Two frames count as the same picture when no 16x16 block differs by `threshold` (mean absolute, 0-255).

    Blocks, not the whole frame, so a small object moving over a still background is motion.
    """
    if threshold <= 0:
        return False
    step = max(1, min(a.shape[:2]) // 512)  # a subsampled look is enough and cheap at 4K
    diff = np.abs(a[::step, ::step].astype(np.int16) - b[::step, ::step].astype(np.int16)).mean(axis=2)
    h, w = diff.shape[0] // block * block, diff.shape[1] // block * block
    if h == 0 or w == 0:
        return float(diff.mean()) < threshold
    blocks = diff[:h, :w].reshape(h // block, block, w // block, block).mean(axis=(1, 3))
    return float(blocks.max()) < threshold


class Interpolator:
    """Make the frames between two frames at given timesteps, with RIFE-style bisection when needed."""

    def __init__(self, model: nn.Module, device: torch.device, precision: str = "fp32", scale: float = 1.0,
                 max_depth: int = 6):
        self.model = model.to(device).eval()
        self.device, self.precision, self.scale = device, precision, float(scale)
        self.arbitrary = bool(getattr(model, "arbitrary", True))  # RIFE base: midpoint only
        self.max_depth = max_depth
        if not self.scale > 0:
            raise ValueError(f"flow scale must be positive, got {scale}")
        probe = torch.zeros(1, 3, 64, 64, device=device)
        with torch.no_grad():  # a bad precision or flow scale fails here, not in the middle of a video
            self._mid(probe, probe, 0.5)

    def _mid(self, a: torch.Tensor, b: torch.Tensor, t: float) -> torch.Tensor:
        with autocast(self.device, self.precision):
            return self.model.interpolate(a, b, t, self.scale).float().clamp_(0, 1)

    @torch.no_grad()
    def midpoint(self, img0: torch.Tensor, img1: torch.Tensor) -> torch.Tensor:
        """The frames halfway between batches (N, 3, H, W) of frames in [0, 1], one model call."""
        return self._mid(img0, img1, 0.5)

    @torch.no_grad()
    def between(self, img0: torch.Tensor, img1: torch.Tensor, timesteps: Iterable[Fraction]) -> dict[Fraction, torch.Tensor]:
        """{t: frame} for each t in (0, 1); frames are (1, 3, H, W) float in [0, 1]."""
        ts = sorted(set(timesteps))
        if self.arbitrary:
            return {t: self._mid(img0, img1, float(t)) for t in ts}
        known = {Fraction(0): img0, Fraction(1): img1}
        out = {}
        for t in ts:
            lo, hi = Fraction(0), Fraction(1)
            target = snap_dyadic(t, self.max_depth)
            if target in known:  # rounds to an end frame (or a frame made already): nothing to run
                out[t] = known[target]
                continue
            while True:
                mid = (lo + hi) / 2
                if mid not in known:
                    known[mid] = self._mid(known[lo], known[hi], 0.5)
                if target == mid:
                    out[t] = known[target]
                    break
                lo, hi = (lo, mid) if target < mid else (mid, hi)
        return out


def snap_dyadic(t: Fraction, max_depth: int) -> Fraction:
    """Nearest k / 2**d to t with d <= max_depth (exact for 2x, 4x, 8x ... timesteps)."""
    den = 2 ** max_depth
    return Fraction(round(t * den), den)


def interpolate_frames(interp: Interpolator, frames: Iterator[np.ndarray], plan: list[OutputFrame],
                       cuts: set[int], dup_threshold: float = 0.0,
                       on_frame: Callable[[str], None] | None = None) -> Iterator[np.ndarray]:
    """Yield the output frames of `plan` from the stream of source frames.

    `cuts` holds the indices of frames that start a new scene: nothing is blended from frame i - 1
    into frame i there. `on_frame(kind)` reports each output frame as 'copy', 'model', 'cut' or 'dup'.
    """
    source = iter(frames)
    cur_idx, cur, nxt = -1, None, None
    pending: list[OutputFrame] = []

    def advance_to(i: int) -> None:
        nonlocal cur_idx, cur, nxt
        while cur_idx < i:
            cur = nxt if nxt is not None else next(source, None)
            if cur is None:  # the container held fewer frames than its index promised
                raise EOFError
            nxt = None
            cur_idx += 1

    def emit(group: list[OutputFrame]) -> Iterator[np.ndarray]:
        nonlocal nxt
        i = group[0].src
        advance_to(i)
        needs_next = any(o.t for o in group)
        if needs_next and nxt is None:
            nxt = next(source, None)
        if nxt is None or not needs_next:
            for _ in group:
                _report(on_frame, "copy")
                yield cur
            return
        if (i + 1) in cuts or is_duplicate(cur, nxt, dup_threshold):
            kind = "cut" if (i + 1) in cuts else "dup"
            for o in group:
                _report(on_frame, "copy" if o.t == 0 else kind)
                yield cur if (o.t < Fraction(1, 2) or kind == "dup") else nxt
            return
        a, b = to_tensor(cur, interp.device), to_tensor(nxt, interp.device)
        made = interp.between(a, b, [o.t for o in group if o.t])
        for o in group:
            _report(on_frame, "copy" if o.t == 0 else "model")
            yield cur if o.t == 0 else to_frame(made[o.t])

    try:
        for o in plan:  # group the output frames by the source pair they come from, in order
            if pending and pending[0].src != o.src:
                yield from emit(pending)
                pending = []
            pending.append(o)
        if pending:
            yield from emit(pending)
    except EOFError:
        return


def _report(cb: Callable[[str], None] | None, kind: str) -> None:
    if cb is not None:
        cb(kind)
