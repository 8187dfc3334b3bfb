"""Backward warping by optical flow, the one implementation every model uses."""
from __future__ import annotations

import torch
import torch.nn.functional as F

_GRIDS: dict[tuple, torch.Tensor] = {}


def _base_grid(n: int, h: int, w: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """Normalised (x, y) sampling grid in [-1, 1], shape (1, 2, H, W), cached per size/device/dtype."""
    key = (h, w, device, dtype)
    grid = _GRIDS.get(key)
    if grid is None:
        xs = torch.linspace(-1.0, 1.0, w, device=device, dtype=dtype).view(1, 1, 1, w).expand(1, 1, h, w)
        ys = torch.linspace(-1.0, 1.0, h, device=device, dtype=dtype).view(1, 1, h, 1).expand(1, 1, h, w)
        grid = torch.cat([xs, ys], 1)
        _GRIDS[key] = grid
    return grid


def backward_warp(image: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Sample `image` (N, C, H, W) at pixel positions p + flow(p); flow is (N, 2, H, W) in pixels, (dx, dy).

    Bilinear, border padding, align_corners=True: the convention of RIFE, IFRNet and FlowNet2 code.
    """
    n, _, h, w = flow.shape
    scale = torch.tensor([2.0 / max(w - 1, 1), 2.0 / max(h - 1, 1)], device=flow.device, dtype=flow.dtype)
    grid = _base_grid(n, h, w, flow.device, flow.dtype) + flow * scale.view(1, 2, 1, 1)
    return F.grid_sample(image, grid.permute(0, 2, 3, 1).to(image.dtype), mode="bilinear",
                         padding_mode="border", align_corners=True)
