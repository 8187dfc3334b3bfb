"""The published training objectives of RIFE and IFRNet, assembled from the loss families.

Both take the model's output object (`models.rife.RIFEOutput`, `models.ifrnet.IFRNetOutput`) and
return `(total, parts)`, where `parts` maps each term's name to its detached value for logging.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from vsrvfi.models.losses.census import CensusLoss, GeometryLoss
from vsrvfi.models.losses.distillation import FlowDistillationLoss
from vsrvfi.models.losses.laplacian import LapLoss
from vsrvfi.models.losses.pixel import Charbonnier


class RIFELoss(nn.Module):
    """RIFE: LapLoss(pred, gt) + LapLoss(teacher_pred, gt) + distill_weight * distillation.

    distill_weight is 0.01 for RIFE; the authors advise 0.005 or 0.002 for the arbitrary-timestep
    RIFEm. The distillation term is the one the model computed (`out.distill`); without a teacher
    output (no gt given to the model) only the Laplacian term is used.
    """

    def __init__(self, distill_weight: float = 0.01, max_levels: int = 5) -> None:
        super().__init__()
        self.distill_weight = distill_weight
        self.lap = LapLoss(max_levels)

    def forward(self, out: Any, gt: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        parts = {"lap": self.lap(out.pred, gt)}
        if out.teacher_pred is not None:
            parts["teacher"] = self.lap(out.teacher_pred, gt)
            parts["distill"] = out.distill
        total = parts["lap"] + parts.get("teacher", 0.0) + self.distill_weight * parts.get("distill", 0.0)
        return total, {k: v.detach() for k, v in parts.items()}


class IFRNetLoss(nn.Module):
    """IFRNet: Charbonnier + census (reconstruction), 0.01 x geometry consistency over the three
    decoder feature levels, and 0.01 x task-oriented flow distillation when a pseudo flow is given.
    """

    def __init__(self, geo_weight: float = 0.01, distill_weight: float = 0.01, beta: float = 0.3,
                 eps: float = 1e-3) -> None:
        super().__init__()
        self.geo_weight = geo_weight
        self.distill_weight = distill_weight
        self.charbonnier = Charbonnier(eps)
        self.census = CensusLoss(7)
        self.geometry = GeometryLoss(3)
        self.distill = FlowDistillationLoss(beta)

    def forward(self, out: Any, gt: torch.Tensor,
                pseudo_flow: torch.Tensor | None = None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        parts = {"rec": self.charbonnier(out.pred, gt) + self.census(out.pred, gt)}
        if out.gt_features is None:
            raise ValueError("IFRNetLoss needs the model output of a forward pass given gt")
        parts["geo"] = self.geo_weight * sum(self.geometry(p, t) for p, t in zip(out.features, out.gt_features))
        if pseudo_flow is not None:
            parts["distill"] = self.distill_weight * self.distill(out.flows, pseudo_flow)
        total = sum(parts.values())
        return total, {k: v.detach() for k, v in parts.items()}
