"""Census-style losses of IFRNet: the ternary (census) loss on images and the geometry consistency
loss on features. Both compare soft local-difference signatures, so they ignore a constant offset
(brightness) and respond to structure."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def local_differences(x: torch.Tensor, patch_size: int) -> torch.Tensor:
    """Soft signature of every channel: (neighbour - centre) / sqrt(0.81 + (neighbour - centre)^2).

    (N, C, H, W) -> (N, C * patch_size**2, H, W); neighbours outside the image count as zero.
    """
    n, c, h, w = x.shape
    k2 = patch_size * patch_size
    patches = F.unfold(x, patch_size, padding=patch_size // 2).view(n, c, k2, h, w)
    diff = (patches - x.unsqueeze(2)).view(n, c * k2, h, w)
    return diff / torch.sqrt(0.81 + diff * diff)


def soft_hamming(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-pixel soft Hamming distance between two signatures, (N, 1, H, W)."""
    d2 = (a - b) ** 2
    return (d2 / (0.1 + d2)).mean(dim=1, keepdim=True)


def border_mask(x: torch.Tensor, border: int) -> torch.Tensor:
    """(N, 1, H, W) ones with a zero frame `border` pixels wide (where the patch leaves the image)."""
    n, _, h, w = x.shape
    inner = x.new_ones(n, 1, h - 2 * border, w - 2 * border)
    return F.pad(inner, [border] * 4)


class CensusLoss(nn.Module):
    """IFRNet's ternary loss: soft census of the channel-mean image, 7x7 patches, target detached."""

    def __init__(self, patch_size: int = 7) -> None:
        super().__init__()
        self.patch_size = patch_size

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        sig_pred = local_differences(pred.float().mean(dim=1, keepdim=True), self.patch_size)
        sig_target = local_differences(target.float().mean(dim=1, keepdim=True), self.patch_size).detach()
        dist = soft_hamming(sig_pred, sig_target)
        return (dist * border_mask(pred, self.patch_size // 2)).mean()

    def extra_repr(self) -> str:
        return f"patch_size={self.patch_size}"


class GeometryLoss(nn.Module):
    """IFRNet's geometry consistency loss: census signatures of every feature channel, 3x3 patches.

    Pulls the decoder's reconstructed intermediate features towards the encoder features of the
    ground-truth frame in local structure, not in value; neither side is detached (as in IFRNet).
    """

    def __init__(self, patch_size: int = 3) -> None:
        super().__init__()
        self.patch_size = patch_size

    def forward(self, pred_feat: torch.Tensor, target_feat: torch.Tensor) -> torch.Tensor:
        dist = soft_hamming(local_differences(pred_feat.float(), self.patch_size),
                            local_differences(target_feat.float(), self.patch_size))
        return (dist * border_mask(pred_feat, self.patch_size // 2)).mean()

    def extra_repr(self) -> str:
        return f"patch_size={self.patch_size}"
