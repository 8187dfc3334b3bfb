"""Video super-resolution inference: sliding windows of frames, edge padding, spatial tiles.

A VSR model (VSRNet, EDVR) maps T low-resolution frames to the high-resolution centre frame. For a
whole video every frame is the centre once; near the ends the window is filled by the padding rule
of BasicSR's `generate_frame_indices` (the official EDVR evaluation uses 'reflection_circle').
Large frames are cut into tiles with a margin of context that is discarded after upscaling, so the
seams do not show and memory stays bounded.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Callable, Iterator

import numpy as np
import torch
from torch import nn

from vsrvfi.inference.runtime import autocast, to_frame, to_tensor

PADDINGS = ("reflection_circle", "reflection", "replicate", "circle")


def window_indices(center: int, total: int, window: int, padding: str = "reflection_circle") -> list[int]:
    """Frame indices of the `window` frames centred on `center` in a video of `total` frames.

    Out-of-range positions follow `padding`: 'replicate' repeats the end frame, 'reflection' mirrors
    about it, 'reflection_circle' continues from the far side of the window, 'circle' wraps around
    the window (the four rules of BasicSR's generate_frame_indices).
    """
    if padding not in PADDINGS:
        raise ValueError(f"padding {padding!r}: use one of {', '.join(PADDINGS)}")
    half, last = window // 2, total - 1
    out = []
    for i in range(center - half, center - half + window):  # even windows: the centre is at index window // 2
        if i < 0:
            j = {"replicate": 0, "reflection": -i, "reflection_circle": center + half - i,
                 "circle": window + i}[padding]
        elif i > last:
            j = {"replicate": last, "reflection": 2 * last - i,
                 "reflection_circle": (center - half) - (i - last), "circle": i - window}[padding]
        else:
            j = i
        out.append(min(max(j, 0), last))  # clips shorter than the window stay in range
    return out


class Upscaler:
    """Run a VSR model on windows of LR frames, tiled when `tile` > 0 (tile side in LR pixels)."""

    def __init__(self, model: nn.Module, device: torch.device, precision: str = "fp32", tile: int = 0,
                 tile_pad: int = 16):
        self.model = model.to(device).eval()
        self.device, self.precision = device, precision
        self.window = int(model.num_frame)
        self.scale = int(model.scale)
        self.tile, self.tile_pad = int(tile), int(tile_pad)
        autocast(device, precision)  # validates the precision for this device now, not mid-video

    @torch.no_grad()
    def __call__(self, lr: torch.Tensor) -> torch.Tensor:
        """(T, 3, h, w) or (N, T, 3, h, w) float LR frames in [0, 1] -> (N, 3, s*h, s*w) float."""
        if lr.dim() == 4:
            lr = lr[None]
        lr = lr.to(self.device)
        h, w = lr.shape[-2:]
        if not self.tile or (h <= self.tile and w <= self.tile):
            return self._run(lr)
        s, t, p = self.scale, self.tile, self.tile_pad
        out = lr.new_zeros(lr.shape[0], 3, h * s, w * s)
        for y0 in range(0, h, t):
            for x0 in range(0, w, t):
                y1, x1 = min(y0 + t, h), min(x0 + t, w)
                py0, px0, py1, px1 = max(y0 - p, 0), max(x0 - p, 0), min(y1 + p, h), min(x1 + p, w)
                sr = self._run(lr[..., py0:py1, px0:px1])
                oy, ox = (y0 - py0) * s, (x0 - px0) * s
                out[..., y0 * s:y1 * s, x0 * s:x1 * s] = sr[..., oy:oy + (y1 - y0) * s, ox:ox + (x1 - x0) * s]
        return out

    def _run(self, lr: torch.Tensor) -> torch.Tensor:
        with autocast(self.device, self.precision):
            return self.model(lr).float().clamp_(0, 1)


def upscale_frames(upscaler: Upscaler, frames: Iterator[np.ndarray], total: int,
                   padding: str = "reflection_circle",
                   on_frame: Callable[[int], None] | None = None) -> Iterator[np.ndarray]:
    """Upscale a stream of `total` (H, W, 3) uint8 LR frames; yields the HR frames in order.

    Only the frames a window can reach are kept in memory (a few windows' worth), so videos of any
    length stream through.
    """
    cache: OrderedDict[int, torch.Tensor] = OrderedDict()
    source = iter(frames)
    read = 0
    reach = upscaler.window  # padded windows reach at most this far from their centre
    for center in range(total):
        while read < min(total, center + reach + 1):
            frame = next(source, None)
            if frame is None:  # the container promised more frames than it holds
                total = read
                break
            cache[read] = to_tensor(frame, upscaler.device)[0]
            read += 1
        if center >= total:
            break
        while cache and next(iter(cache)) < center - reach:
            cache.popitem(last=False)
        idx = window_indices(center, total, upscaler.window, padding)
        sr = upscaler(torch.stack([cache[i] for i in idx]))
        if on_frame is not None:
            on_frame(center)
        yield to_frame(sr)

