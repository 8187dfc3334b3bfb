"""PSNR and SSIM: the one implementation the trainer, the evaluator and the tools use.

Conventions (stated in every report that uses them):
- inputs are float tensors (N, 3, H, W) in [0, 1], RGB;
- `quantize=True` rounds both images to 8 bits first, as saved frames would be (RIFE's habit);
- `y_channel=True` scores the BT.601 luma (BasicSR's SR convention), `crop_border` drops that many
  pixels on each side (BasicSR uses the scale factor for SR);
- SSIM uses pytorch-msssim: 11x11 Gaussian window, sigma 1.5, valid region, data range 1.
Scores are per image; average them per clip, then over clips, for video scores.
"""
from __future__ import annotations

import torch
from pytorch_msssim import ssim as _ssim

_Y_WEIGHTS = (65.481, 128.553, 24.966)


def describe(y_channel: bool = False, crop_border: int = 0) -> str:
    """The convention of `psnr`/`ssim` with these options, as every report states it."""
    return (f"{'Y (BT.601)' if y_channel else 'RGB'}, border {crop_border} px, "
            f"8-bit rounded, SSIM 11x11 Gaussian")


def _prepare(x: torch.Tensor, crop_border: int, y_channel: bool, quantize: bool) -> torch.Tensor:
    x = x.detach().float().clamp(0, 1)
    if quantize:
        x = torch.round(x * 255) / 255
    if crop_border:
        x = x[..., crop_border:-crop_border, crop_border:-crop_border]
    if y_channel:
        w = torch.tensor(_Y_WEIGHTS, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
        x = ((x * w).sum(1, keepdim=True) + 16.0) / 255.0
    return x


def psnr(pred: torch.Tensor, target: torch.Tensor, crop_border: int = 0, y_channel: bool = False,
         quantize: bool = True) -> torch.Tensor:
    """Per-image PSNR in dB, shape (N,); inputs (N, C, H, W) in [0, 1]."""
    p = _prepare(pred, crop_border, y_channel, quantize).double()
    t = _prepare(target, crop_border, y_channel, quantize).double()
    mse = ((p - t) ** 2).flatten(1).mean(1)
    return (10 * torch.log10(1.0 / mse.clamp_min(1e-12))).float()


def ssim(pred: torch.Tensor, target: torch.Tensor, crop_border: int = 0, y_channel: bool = False,
         quantize: bool = True) -> torch.Tensor:
    """Per-image SSIM, shape (N,); inputs (N, C, H, W) in [0, 1]. Needs at least 11x11 pixels."""
    p = _prepare(pred, crop_border, y_channel, quantize)
    t = _prepare(target, crop_border, y_channel, quantize)
    return _ssim(p, t, data_range=1.0, size_average=False).float()
