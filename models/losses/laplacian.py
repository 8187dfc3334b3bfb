"""Laplacian-pyramid L1 loss (RIFE's LapLoss): L1 between the band-pass levels of two images."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

_BINOMIAL = (1.0, 4.0, 6.0, 4.0, 1.0)


def gauss_kernel(channels: int, device: torch.device | None = None,
                 dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """5x5 binomial blur (sums to 1) as a depthwise kernel (channels, 1, 5, 5)."""
    k1 = torch.tensor(_BINOMIAL, device=device, dtype=dtype)
    k2 = torch.outer(k1, k1) / 256.0
    return k2.expand(channels, 1, 5, 5).contiguous()


def _blur(x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    return F.conv2d(F.pad(x, (2, 2, 2, 2), mode="reflect"), kernel, groups=x.shape[1])


def _upsample(x: torch.Tensor, kernel: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Zero-insertion x2 upsampling, blurred with 4 x kernel (keeps the mean), cropped to `size`."""
    n, c, h, w = x.shape
    up = x.new_zeros(n, c, 2 * h, 2 * w)
    up[:, :, ::2, ::2] = x
    return _blur(up, 4.0 * kernel)[:, :, :size[0], :size[1]]


def laplacian_pyramid(x: torch.Tensor, max_levels: int = 5) -> list[torch.Tensor]:
    """The `max_levels` band-pass levels (finest first); the low-pass residual is not included."""
    kernel = gauss_kernel(x.shape[1], x.device, x.dtype)
    levels = []
    current = x
    for _ in range(max_levels):
        down = _blur(current, kernel)[:, :, ::2, ::2]
        levels.append(current - _upsample(down, kernel, current.shape[-2:]))
        current = down
    return levels


class LapLoss(nn.Module):
    """Sum over pyramid levels of the mean L1 difference; RIFE trains with 5 levels.

    Image sides must exceed 2**max_levels pixels (reflect padding at the coarsest level): > 32 for 5.
    """

    def __init__(self, max_levels: int = 5) -> None:
        super().__init__()
        self.max_levels = max_levels

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if min(pred.shape[-2:]) <= 2 ** self.max_levels:
            raise ValueError(f"LapLoss with {self.max_levels} levels needs images larger than "
                             f"{2 ** self.max_levels} pixels per side, got {tuple(pred.shape[-2:])}")
        pyr_pred = laplacian_pyramid(pred.float(), self.max_levels)
        pyr_target = laplacian_pyramid(target.float(), self.max_levels)
        return sum(F.l1_loss(a, b) for a, b in zip(pyr_pred, pyr_target))

    def extra_repr(self) -> str:
        return f"max_levels={self.max_levels}"
