"""Flow distillation losses: RIFE's privileged (leakage) distillation and IFRNet's task-oriented
flow distillation with robust, reliability-weighted Charbonnier."""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn


def rife_distillation_loss(flows: Sequence[torch.Tensor], merged: Sequence[torch.Tensor],
                           teacher_flow: torch.Tensor, teacher_pred: torch.Tensor, gt: torch.Tensor,
                           margin: float = 0.01) -> torch.Tensor:
    """RIFE's leakage distillation: pull each student flow towards the teacher's.

    The teacher block sees the ground truth ("privileged" information). For every student stage i
    the loss is the mean over pixels of ||teacher_flow - flows[i]||_rms * M_i, where the mask M_i
    keeps only pixels where the student's blend `merged[i]` is worse than the teacher's by more than
    `margin` (mean absolute error over channels). The teacher flow and the mask are detached.

    flows: per-stage (N, 4, H, W) flows t->0 | t->1; merged: per-stage (N, 3, H, W) blends before
    refinement; teacher_flow (N, 4, H, W); teacher_pred, gt (N, 3, H, W). Returns a scalar.
    """
    gt = gt.float()
    teacher_err = (teacher_pred.float() - gt).abs().mean(1, keepdim=True)
    target = teacher_flow.detach().float()
    loss = target.new_zeros(())
    for flow, blend in zip(flows, merged):
        flow = flow.float()
        mask = ((blend.float() - gt).abs().mean(1, keepdim=True) > teacher_err + margin).float().detach()
        # clamp keeps the gradient of sqrt finite where the student already equals the teacher
        rms = ((target - flow) ** 2).mean(1, keepdim=True).clamp_min(1e-12).sqrt()
        loss = loss + (rms * mask).mean()
    return loss


class RIFEDistillationLoss(nn.Module):
    """Module form of `rife_distillation_loss` (margin 0.01 as in RIFE)."""

    def __init__(self, margin: float = 0.01) -> None:
        super().__init__()
        self.margin = margin

    def forward(self, flows: Sequence[torch.Tensor], merged: Sequence[torch.Tensor],
                teacher_flow: torch.Tensor, teacher_pred: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
        return rife_distillation_loss(flows, merged, teacher_flow, teacher_pred, gt, self.margin)


def robust_weight(flow_pred: torch.Tensor, flow_pseudo: torch.Tensor, beta: float = 0.3) -> torch.Tensor:
    """Reliability of a pseudo flow label, exp(-beta * EPE(prediction, label)), (N, 1, H, W).

    Where the network's own final flow disagrees with the label, the label is likely wrong (occlusion,
    estimator failure) and gets a small weight. The prediction is detached.
    """
    epe = ((flow_pred.detach() - flow_pseudo) ** 2).sum(dim=1, keepdim=True).sqrt()
    return torch.exp(-beta * epe)


def adaptive_charbonnier(diff: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """IFRNet's robust penalty mean((diff^2 + eps^2)^(w/2)), eps = 10^(-(10w - 1)/3).

    w = 1 gives a Charbonnier (L1-like) penalty for reliable labels; smaller w flattens the penalty
    (towards a robust, outlier-insensitive loss) for unreliable ones.
    """
    eps = 10 ** (-(10 * weight - 1) / 3)
    return ((diff ** 2 + eps ** 2) ** (weight / 2)).mean()


def _upscale_flow(flow: torch.Tensor, factor: int) -> torch.Tensor:
    return factor * F.interpolate(flow, scale_factor=float(factor), mode="bilinear", align_corners=False)


class FlowDistillationLoss(nn.Module):
    """IFRNet's task-oriented flow distillation (robust, weighted by pseudo-label reliability).

    forward(flows, pseudo_flow): `flows` are IFRNet's intermediate flows coarse to fine, each
    (N, 4, h, w) = flow t->0 | t->1; the last one is the full-resolution final flow, which only sets
    the reliability weights. Every coarser flow is upsampled to full size (values scaled) and
    compared with `pseudo_flow` (N, 4, H, W) by `adaptive_charbonnier`. Returns the unweighted sum;
    IFRNet multiplies it by 0.01.
    """

    def __init__(self, beta: float = 0.3) -> None:
        super().__init__()
        self.beta = beta

    def forward(self, flows: Sequence[torch.Tensor], pseudo_flow: torch.Tensor) -> torch.Tensor:
        final, pseudo_flow = flows[-1].float(), pseudo_flow.float()
        if final.shape[-2:] != pseudo_flow.shape[-2:] or pseudo_flow.shape[1] != 4:
            raise ValueError(f"pseudo flow {tuple(pseudo_flow.shape)} does not match the final flow "
                             f"{tuple(final.shape)} (expected (N, 4, H, W))")
        halves = (slice(0, 2), slice(2, 4))
        weights = [robust_weight(final[:, s], pseudo_flow[:, s], self.beta) for s in halves]
        loss = final.new_zeros(())
        for flow in reversed(flows[:-1]):  # finest first, as IFRNet sums them
            factor = final.shape[-1] // flow.shape[-1]
            if (flow.shape[-2] * factor, flow.shape[-1] * factor) != tuple(final.shape[-2:]):
                raise ValueError(f"flow of size {tuple(flow.shape[-2:])} is not a power-of-two fraction of "
                                 f"{tuple(final.shape[-2:])}: train IFRNet on sides that are multiples of 16")
            up = _upscale_flow(flow.float(), factor)
            for s, w in zip(halves, weights):
                loss = loss + adaptive_charbonnier(up[:, s] - pseudo_flow[:, s], w)
        return loss

    def extra_repr(self) -> str:
        return f"beta={self.beta}"
