"""The naive baselines every score is reported beside: bicubic upscaling (SR), frame blending (VFI)."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def bicubic_upscale(lr: torch.Tensor, scale: int) -> torch.Tensor:
    """(N, 3, h, w) -> (N, 3, scale*h, scale*w), bicubic (a = -0.75, PyTorch's), clamped to [0, 1]."""
    return F.interpolate(lr.float(), scale_factor=scale, mode="bicubic", align_corners=False).clamp_(0, 1)


def blend(img0: torch.Tensor, img1: torch.Tensor, t: float | torch.Tensor) -> torch.Tensor:
    """(1 - t) * img0 + t * img1; `t` a float or one value per sample (N,) / (N, K) broadcast over pixels."""
    t = torch.as_tensor(t, dtype=torch.float32, device=img0.device)
    t = t.reshape(*t.shape, *([1] * (img0.dim() - t.dim()))) if t.dim() else t
    return (1 - t) * img0.float() + t * img1.float()
