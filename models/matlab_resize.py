"""MATLAB-compatible bicubic resize (`imresize(img, scale)` with antialiasing), as the standard SR
test sets' LR frames were made (Vid4 BIx4, REDS bicubic X4, Vimeo-90K matlabLRx4).

torch's `interpolate(mode="bicubic", antialias=True)` uses another kernel parameter (a = -0.75) and
edge rule, so LR frames it makes differ from the sets' by a few levels; this module follows MATLAB:
cubic kernel a = -0.5 (Keys), the kernel widened by 1/scale when shrinking (antialiasing), output
pixel x (1-based) centred at u = x / scale + 0.5 * (1 - 1 / scale) in the input, weights normalised
to sum to 1, 'symmetric' edge padding (the edge pixel repeated, then mirrored). Source of each rule:
MATLAB's imresize.m `contributions`, as ported by BasicSR `basicsr/utils/matlab_functions.py`
(`calculate_weights_indices`). Here the weights of each axis form one (out, in) matrix, so a resize
is two matrix products in float64.
"""
from __future__ import annotations

import math

import numpy as np
import torch


def cubic(x: np.ndarray) -> np.ndarray:
    """Keys' cubic convolution kernel with a = -0.5 (MATLAB's 'bicubic')."""
    ax = np.abs(x)
    return ((1.5 * ax**3 - 2.5 * ax**2 + 1) * (ax <= 1)
            + (-0.5 * ax**3 + 2.5 * ax**2 - 4 * ax + 2) * ((ax > 1) & (ax <= 2)))


def resize_matrix(in_len: int, out_len: int, scale: float, antialias: bool = True) -> np.ndarray:
    """(out_len, in_len) float64 matrix M with out = M @ in along one axis, MATLAB's weights and edges."""
    width = 4.0 / scale if (scale < 1 and antialias) else 4.0
    u = np.arange(1, out_len + 1, dtype=np.float64) / scale + 0.5 * (1 - 1 / scale)
    left = np.floor(u - width / 2)
    taps = math.ceil(width) + 2
    idx = left[:, None] + np.arange(taps)[None, :]  # 1-based input positions
    dist = u[:, None] - idx
    w = scale * cubic(dist * scale) if (scale < 1 and antialias) else cubic(dist)
    w = w / w.sum(axis=1, keepdims=True)
    j = idx.astype(np.int64) - 1
    period = 2 * in_len  # 'symmetric' padding: ... 1 0 | 0 1 ... n-1 | n-1 n-2 ...
    j = np.mod(j, period)
    j = np.where(j >= in_len, period - 1 - j, j)
    m = np.zeros((out_len, in_len), dtype=np.float64)
    np.add.at(m, (np.repeat(np.arange(out_len), taps), j.ravel()), w.ravel())
    return m


def imresize(x: torch.Tensor, scale: float, antialias: bool = True) -> torch.Tensor:
    """Resize (..., H, W) by `scale` (same on both axes) to (ceil(H*scale), ceil(W*scale)), like MATLAB.

    Float in, float out (float64 inside, the input's dtype out), not rounded: round to 8 bits as the
    sets' PNGs were (`round(x * 255)`) where that matters.
    """
    h, w = x.shape[-2:]
    oh, ow = math.ceil(h * scale), math.ceil(w * scale)
    mh = torch.from_numpy(resize_matrix(h, oh, scale, antialias)).to(x.device)
    mw = torch.from_numpy(resize_matrix(w, ow, scale, antialias)).to(x.device)
    return (mh @ x.double() @ mw.T).to(x.dtype)


def downscale_uint8(frame: np.ndarray, factor: int) -> np.ndarray:
    """An (H, W, 3) uint8 frame shrunk `factor` times with MATLAB's bicubic, rounded to uint8 (a set's BIx`factor` LR)."""
    t = torch.from_numpy(np.array(frame)).permute(2, 0, 1).double() / 255.0
    lr = imresize(t, 1.0 / factor)
    return (lr * 255.0).round().clamp(0, 255).to(torch.uint8).permute(1, 2, 0).numpy()
