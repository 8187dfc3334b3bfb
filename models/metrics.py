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


def _gaussian(size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    x = torch.arange(size, dtype=torch.float64) - size // 2
    g = torch.exp(-x**2 / (2 * sigma**2))
    return g / g.sum()


def ssim_3d(pred: torch.Tensor, target: torch.Tensor, quantize: bool = False) -> torch.Tensor:
    """Per-image SSIM of the VFI papers ('ssim_matlab' of RIFE's benchmark/pytorch_msssim and
    `calculate_ssim` of IFRNet's metric.py): the colour image is a volume (3, H, W) filtered with an
    11x11x11 Gaussian (sigma 1.5) after replicate padding by 5 on all three axes, data range 1, the
    SSIM map averaged over the volume. Shape (N,); inputs (N, 3, H, W) in [0, 1]."""
    p = _prepare(pred, 0, False, quantize).double()
    t = _prepare(target, 0, False, quantize).double()
    g = _gaussian().to(p.device)

    def blur_matrix(n: int) -> torch.Tensor:  # 1-D Gaussian with replicate padding by 5, as an (n, n) matrix
        m = torch.zeros(n, n, dtype=torch.float64, device=p.device)
        for k in range(11):
            idx = (torch.arange(n, device=p.device) + k - 5).clamp(0, n - 1)
            m[torch.arange(n, device=p.device), idx] += g[k]
        return m

    mc, mh, mw = (blur_matrix(n) for n in p.shape[1:])

    def filt(x: torch.Tensor) -> torch.Tensor:  # the 11x11x11 Gaussian is separable: one axis at a time
        return torch.einsum("cd,ndhw->nchw", mc, mh @ x @ mw.T)

    mu1, mu2 = filt(p), filt(t)
    s11, s22, s12 = filt(p * p) - mu1**2, filt(t * t) - mu2**2, filt(p * t) - mu1 * mu2
    c1, c2 = 0.01**2, 0.03**2
    m = ((2 * mu1 * mu2 + c1) * (2 * s12 + c2)) / ((mu1**2 + mu2**2 + c1) * (s11 + s22 + c2))
    return m.flatten(1).mean(1).float()


def interpolation_error(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Middlebury's interpolation error (IE): mean absolute difference of the 8-bit images, RGB, in
    levels of 0-255 (IFRNet metric.py `calculate_ie`; RIFE benchmark/MiddleBury_Other.py). Shape (N,)."""
    p = torch.round(pred.detach().double().clamp(0, 1) * 255)
    t = torch.round(target.detach().double().clamp(0, 1) * 255)
    return (p - t).abs().flatten(1).mean(1).float()
