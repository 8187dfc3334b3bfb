"""RIFE video frame interpolation (Huang et al., ECCV 2022), key-compatible with the official code.

Layout and parameter names follow hzwer/ECCV2022-RIFE (`model/IFNet.py`, `model/IFNet_m.py`,
`model/refine.py`), so the official `train_log/flownet.pkl` loads strictly once its DDP `module.`
prefix is stripped (models.checkpoint.extract_state_dict does that). No key renaming is needed.

Architecture: IFNet estimates the intermediate flows t->0 and t->1 and a fusion mask coarse to fine
with three IFBlocks (240/150/90 channels, working at 1/4, 1/2 and full resolution of the default
scale list); a privileged teacher block (`block_tea`, 90 channels) that also sees the ground truth
refines the last estimate during training only, and its flow supervises the students (leakage
distillation). ContextNet extracts warped context features of both inputs and a small U-Net
predicts a residual added to the mask-blended warps.

Sizes: "base" (RIFE, midpoint only; 10,708,215 parameters, 10,071,550 without the teacher block)
and "m" (RIFEm, arbitrary timestep given to every block as an extra input plane; 10,710,780 /
10,073,710).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from vsrvfi.models.losses.distillation import rife_distillation_loss
from vsrvfi.models.registry import register, register_inferer
from vsrvfi.models.vfi_common import as_timestep, pad_inputs, unpad
from vsrvfi.models.warp import backward_warp

DEFAULT_SCALES = (4.0, 2.0, 1.0)


def _conv(cin: int, cout: int, k: int = 3, stride: int = 1, pad: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, k, stride, pad), nn.PReLU(cout))


def _deconv(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.ConvTranspose2d(cin, cout, 4, 2, 1), nn.PReLU(cout))


def _resize(x: torch.Tensor, factor: float) -> torch.Tensor:
    return F.interpolate(x, scale_factor=factor, mode="bilinear", align_corners=False)


class IFBlock(nn.Module):
    """One IFNet stage: at 1/scale resolution, predict 4 flow channels (t->0, t->1) and 1 mask logit.

    The input is downsampled by `scale`, then by 4 inside (two stride-2 convs), processed by eight
    residual 3x3 convs and brought back to full resolution; flow values are rescaled accordingly.
    With a previous flow, it is appended (resized and rescaled) and the outputs are updates.
    """

    def __init__(self, in_channels: int, c: int) -> None:
        super().__init__()
        self.conv0 = nn.Sequential(_conv(in_channels, c // 2, 3, 2, 1), _conv(c // 2, c, 3, 2, 1))
        self.convblock = nn.Sequential(*[_conv(c, c) for _ in range(8)])
        self.lastconv = nn.ConvTranspose2d(c, 5, 4, 2, 1)

    def forward(self, x: torch.Tensor, flow: torch.Tensor | None,
                scale: float) -> tuple[torch.Tensor, torch.Tensor]:
        if scale != 1:
            x = _resize(x, 1.0 / scale)
        if flow is not None:
            if scale != 1:
                flow = _resize(flow, 1.0 / scale) * (1.0 / scale)
            x = torch.cat((x, flow), 1)
        x = self.conv0(x)
        x = self.convblock(x) + x
        out = _resize(self.lastconv(x), scale * 2)
        return out[:, :4] * (scale * 2), out[:, 4:5]


class _Conv2(nn.Module):
    """Two conv+PReLU, the first with `stride` (key names conv1/conv2 as in refine.py)."""

    def __init__(self, cin: int, cout: int, stride: int = 2) -> None:
        super().__init__()
        self.conv1 = _conv(cin, cout, 3, stride, 1)
        self.conv2 = _conv(cout, cout, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(self.conv1(x))


class ContextNet(nn.Module):
    """Features of one input frame at 1/2..1/16 resolution (16..128 channels), each warped by the flow."""

    def __init__(self, c: int = 16) -> None:
        super().__init__()
        self.conv1 = _Conv2(3, c)
        self.conv2 = _Conv2(c, 2 * c)
        self.conv3 = _Conv2(2 * c, 4 * c)
        self.conv4 = _Conv2(4 * c, 8 * c)

    def forward(self, img: torch.Tensor, flow: torch.Tensor) -> list[torch.Tensor]:
        feats = []
        x = img
        for conv in (self.conv1, self.conv2, self.conv3, self.conv4):
            x = conv(x)
            flow = _resize(flow, 0.5) * 0.5
            feats.append(backward_warp(x, flow))
        return feats


class RefineUNet(nn.Module):
    """U-Net over inputs, warps, mask logit, flow and both context pyramids -> sigmoid (N, 3, H, W)."""

    def __init__(self, c: int = 16) -> None:
        super().__init__()
        self.down0 = _Conv2(17, 2 * c)
        self.down1 = _Conv2(4 * c, 4 * c)
        self.down2 = _Conv2(8 * c, 8 * c)
        self.down3 = _Conv2(16 * c, 16 * c)
        self.up0 = _deconv(32 * c, 8 * c)
        self.up1 = _deconv(16 * c, 4 * c)
        self.up2 = _deconv(8 * c, 2 * c)
        self.up3 = _deconv(4 * c, c)
        self.conv = nn.Conv2d(c, 3, 3, 1, 1)

    def forward(self, img0: torch.Tensor, img1: torch.Tensor, warped0: torch.Tensor, warped1: torch.Tensor,
                mask_logit: torch.Tensor, flow: torch.Tensor, c0: list[torch.Tensor],
                c1: list[torch.Tensor]) -> torch.Tensor:
        s0 = self.down0(torch.cat((img0, img1, warped0, warped1, mask_logit, flow), 1))
        s1 = self.down1(torch.cat((s0, c0[0], c1[0]), 1))
        s2 = self.down2(torch.cat((s1, c0[1], c1[1]), 1))
        s3 = self.down3(torch.cat((s2, c0[2], c1[2]), 1))
        x = self.up0(torch.cat((s3, c0[3], c1[3]), 1))
        x = self.up1(torch.cat((x, s2), 1))
        x = self.up2(torch.cat((x, s1), 1))
        x = self.up3(torch.cat((x, s0), 1))
        return torch.sigmoid(self.conv(x))


@dataclass
class RIFEOutput:
    """Everything one RIFE forward pass produces; image-sized tensors are (N, C, H, W) at input size.

    pred: the final frame (N, 3, H, W) in [0, 1] (refined, clamped).
    flows: the three student flow estimates, coarse to fine, each (N, 4, H, W): channels 0:2 the flow
        t->0 and 2:4 the flow t->1, in pixels (backward-warp convention of models.warp).
    mask: final fusion weight of the warped frame 0 (sigmoid), (N, 1, H, W).
    merged: the three student blends mask*warp(img0) + (1-mask)*warp(img1) before refinement.
    teacher_pred, teacher_flow, teacher_mask: the privileged teacher's blend, flow and mask (only
        when gt was given, else None).
    distill: leakage-distillation loss (scalar; zero without gt), see rife_distillation_loss.
    """

    pred: torch.Tensor
    flows: list[torch.Tensor] = field(default_factory=list)
    mask: torch.Tensor | None = None
    merged: list[torch.Tensor] = field(default_factory=list)
    teacher_pred: torch.Tensor | None = None
    teacher_flow: torch.Tensor | None = None
    teacher_mask: torch.Tensor | None = None
    distill: torch.Tensor | None = None


def _check_scales(scales: Sequence[float]) -> tuple[float, ...]:
    scales = tuple(float(s) for s in scales)
    if len(scales) != 3 or any(s <= 0 or not math.log2(s).is_integer() for s in scales):
        raise ValueError(f"scale_list must be three powers of two (e.g. 4, 2, 1), got {scales}")
    return scales


class RIFE(nn.Module):
    """RIFE / RIFEm interpolation network (IFNet + ContextNet + refinement U-Net).

    `arbitrary=False` is RIFE (midpoint only), `arbitrary=True` is RIFEm (any timestep in (0, 1)).
    """

    def __init__(self, arbitrary: bool = False) -> None:
        super().__init__()
        self.arbitrary = arbitrary
        t = 1 if arbitrary else 0
        # inputs: img0, img1 (6) [+ t]; later stages add warped0, warped1, mask (7) and the flow (4)
        self.block0 = IFBlock(6 + t, c=240)
        self.block1 = IFBlock(13 + 4 + t, c=150)
        self.block2 = IFBlock(13 + 4 + t, c=90)
        self.block_tea = IFBlock(16 + 4 + t, c=90)  # + gt (3)
        self.contextnet = ContextNet()
        self.unet = RefineUNet()

    @staticmethod
    def pad_multiple(scale_list: Sequence[float] = DEFAULT_SCALES) -> int:
        """Frame sides must be a multiple of this for `scale_list` (32 up to a coarsest scale of 8)."""
        return max(32, int(4 * max(_check_scales(scale_list))))

    def forward(self, img0: torch.Tensor, img1: torch.Tensor, timestep: float | torch.Tensor = 0.5,
                gt: torch.Tensor | None = None, scale_list: Sequence[float] = DEFAULT_SCALES,
                scale: float = 1.0) -> RIFEOutput:
        """Interpolate between img0 and img1 (N, 3, H, W) in [0, 1], any H and W.

        timestep: float or per-sample tensor (N,) / (N, 1, 1, 1); RIFE (base) only accepts 0.5 and
            ignores it (checked for floats and CPU tensors; a CUDA tensor is not read, to avoid a sync).
        gt: the true middle frame (training). When given, the teacher block runs and the output
            carries teacher_* and the distillation loss; otherwise those are None / zero.
        scale_list: the resolution divisor of each student stage (official default 4, 2, 1).
        scale: process the flow at this relative resolution, i.e. divide every entry of scale_list
            by it; the official advice is 0.5 for 4K input (2.0 for small, fast-moving content).
        Frames are padded (replicate) to a multiple of `pad_multiple(...)` and outputs cropped back.
        """
        scales = _check_scales([s / scale for s in scale_list])
        img0, img1, gt, pad = pad_inputs("RIFE", img0, img1, gt, self.pad_multiple(scales))
        out = self._run(img0, img1, self._timestep_plane(timestep, img0), gt, scales)
        if any(pad):
            out.pred, out.mask = unpad(out.pred, pad), unpad(out.mask, pad)
            out.flows = [unpad(f, pad) for f in out.flows]
            out.merged = [unpad(m, pad) for m in out.merged]
            out.teacher_pred, out.teacher_flow = unpad(out.teacher_pred, pad), unpad(out.teacher_flow, pad)
            out.teacher_mask = unpad(out.teacher_mask, pad)
        return out

    @torch.no_grad()
    def interpolate(self, img0: torch.Tensor, img1: torch.Tensor, timestep: float | torch.Tensor = 0.5,
                    scale: float = 1.0) -> torch.Tensor:
        """Inference convenience: the interpolated frame (N, 3, H, W), without gradients."""
        return self.forward(img0, img1, timestep, scale=scale).pred

    def _timestep_plane(self, timestep: float | torch.Tensor, like: torch.Tensor) -> torch.Tensor | None:
        t = as_timestep(timestep, like)
        if not self.arbitrary:
            if t.device.type == "cpu" and not bool(torch.all(t == 0.5)):
                raise ValueError("RIFE (base) interpolates the midpoint only (timestep 0.5); use rife/m")
            return None
        return t.expand(-1, 1, like.shape[2], like.shape[3])

    def _run(self, img0: torch.Tensor, img1: torch.Tensor, tplane: torch.Tensor | None,
             gt: torch.Tensor | None, scales: tuple[float, ...]) -> RIFEOutput:
        pair = (img0, img1) if tplane is None else (img0, img1, tplane)
        flow = mask = None
        warped0, warped1 = img0, img1
        flows, merged = [], []
        for block, s in zip((self.block0, self.block1, self.block2), scales):
            if flow is None:
                flow, mask = block(torch.cat(pair, 1), None, s)
            else:
                d_flow, d_mask = block(torch.cat((*pair, warped0, warped1, mask), 1), flow, s)
                flow, mask = flow + d_flow, mask + d_mask
            warped0 = backward_warp(img0, flow[:, :2])
            warped1 = backward_warp(img1, flow[:, 2:4])
            weight = torch.sigmoid(mask)
            flows.append(flow)
            merged.append(warped0 * weight + warped1 * (1 - weight))
        out = RIFEOutput(pred=merged[-1], flows=flows, mask=weight, merged=merged,
                         distill=img0.new_zeros(()))
        if gt is not None:
            d_flow, d_mask = self.block_tea(torch.cat((*pair, warped0, warped1, mask, gt), 1), flow, 1)
            out.teacher_flow = flow + d_flow
            out.teacher_mask = torch.sigmoid(mask + d_mask)
            out.teacher_pred = (backward_warp(img0, out.teacher_flow[:, :2]) * out.teacher_mask
                                + backward_warp(img1, out.teacher_flow[:, 2:4]) * (1 - out.teacher_mask))
            out.distill = rife_distillation_loss(flows, merged, out.teacher_flow, out.teacher_pred, gt)
        c0 = self.contextnet(img0, flow[:, :2])
        c1 = self.contextnet(img1, flow[:, 2:4])
        res = self.unet(img0, img1, warped0, warped1, mask, flow, c0, c1)[:, :3] * 2 - 1
        out.pred = torch.clamp(merged[-1] + res, 0, 1)
        return out


@register("rife", "base", task="vfi", default=True)
def rife_base() -> RIFE:
    """RIFE (ECCV 2022 paper model): midpoint interpolation."""
    return RIFE(arbitrary=False)


@register("rife", "m", task="vfi")
def rife_m() -> RIFE:
    """RIFEm: arbitrary-timestep interpolation."""
    return RIFE(arbitrary=True)


@register_inferer("rife")
def infer_rife(state_dict: dict) -> tuple[str | None, dict]:
    """RIFEm's first conv takes 7 input channels (frames + timestep), RIFE's 6."""
    w = state_dict.get("block0.conv0.0.0.weight")
    if w is None:
        return None, {}
    return {6: "base", 7: "m"}.get(int(w.shape[1])), {}
