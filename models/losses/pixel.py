"""Pixel losses: Charbonnier (EDVR, IFRNet)."""
from __future__ import annotations

import torch
from torch import nn


def reduce_loss(loss: torch.Tensor, reduction: str) -> torch.Tensor:
    """Apply 'mean', 'sum' or 'none' to an element-wise loss."""
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    if reduction == "none":
        return loss
    raise ValueError(f"reduction must be 'mean', 'sum' or 'none', not {reduction!r}")


class Charbonnier(nn.Module):
    """Charbonnier penalty sqrt((x - y)^2 + eps^2), a differentiable L1.

    eps = 1e-3 is the default of both papers that use it: EDVR (Wang et al. 2019, "eps is set to
    1e-3"; their code adds eps^2 = 1e-6 under the root) and IFRNet (Kong et al. 2022,
    `(diff**2 + 1e-6) ** 0.5`). EDVR sums over the batch (`reduction="sum"`), IFRNet averages.
    `weight`, when given, multiplies the element-wise loss before reduction (broadcast).
    Computed in float32 (as are all losses here), so mixed-precision training cannot overflow it.
    """

    def __init__(self, eps: float = 1e-3, reduction: str = "mean") -> None:
        super().__init__()
        if eps <= 0:
            raise ValueError(f"eps must be positive, not {eps}")
        reduce_loss(torch.zeros(()), reduction)  # validate early
        self.eps = float(eps)
        self.reduction = reduction

    def forward(self, pred: torch.Tensor, target: torch.Tensor,
                weight: torch.Tensor | None = None) -> torch.Tensor:
        loss = torch.sqrt((pred.float() - target.float()) ** 2 + self.eps ** 2)
        if weight is not None:
            loss = loss * weight
        return reduce_loss(loss, self.reduction)

    def extra_repr(self) -> str:
        return f"eps={self.eps}, reduction={self.reduction!r}"
