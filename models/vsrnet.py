"""VSRNet (Kappeler et al. 2016) as in NVIDIA DALI's video_superres example, with a choice of flow network.

The DALI model (docs/examples/use_cases/video_superres/model/model.py): every frame is upsampled
bilinearly x4 and converted to YCbCr (JPEG coefficients); each outer frame's Y is motion-compensated
to the centre frame by backward warping with FlowNet2-SD flow (centre -> outer, computed on RGB);
`conv1` (9x9, 1 -> 64, batch norm, LeakyReLU 0.1, weights shared by all frames and applied frame by
frame) runs on each compensated Y, the results are concatenated along channels, `conv2` (5x5,
64*T -> 32, batch norm, LeakyReLU) and `conv3` (5x5, 32 -> 1) follow and a sigmoid gives the
high-resolution Y of the centre frame; Cb and Cr are the upsampled centre frame's. Parameter names
match DALI's (`conv1.0`, `conv1.1`, ...; its `FlowNetSD_network.` prefix is renamed to `flow_net.`).

Differences from the DALI example, by design:
- Input is the low-resolution clip (N, T, 3, h, w) in [0, 1], output the centre frame
  (N, 3, scale*h, scale*w) in [0, 1]. DALI takes high-resolution frames in [0, 255] and degrades
  them inside the model (4x4 average pooling, then bilinear x4), and its flow sees the
  high-resolution frames; here the flow sees the upsampled low-resolution frames, all a model can
  have at inference.
- Flow is in pixels as FlowNet2SD defines it (finest prediction x `div_flow` = 20, upsampled x4).
  DALI divides the upsampled raw prediction by 16 instead, i.e. uses 1/320 of that flow, which makes
  its warp almost the identity; `div_flow=1/16` reproduces it.
- `residual=True` (an option; off reproduces DALI's layout and loads its weights) upsamples with the
  bicubic of the SR baseline and predicts a correction of the upsampled Y (no sigmoid; the last
  convolution starts at zero), so an untrained model is exactly the bicubic baseline and training
  only has to learn the detail. From scratch, the sigmoid model has to learn the identity first.
- The flow network is an option: "flownet_sd" (FlowNet2-SD; load the converted
  `FlowNet2-SD_checkpoint.pth.tar` with `flownet_path`, or train it from random initialisation),
  "tiny" (a ~0.1 M-parameter two-scale flow net that starts at zero flow) or "none" (no motion
  compensation). With a loaded FlowNet2-SD the flow net is frozen by default, as in DALI.
"""
from __future__ import annotations

import os

import torch
import torch.nn.functional as F
from torch import nn

from vsrvfi.models.baselines import bicubic_upscale
from vsrvfi.models.flownet_sd import FlowNetSD
from vsrvfi.models.load import load_pretrained
from vsrvfi.models.registry import register, register_converter, register_inferer
from vsrvfi.models.warp import backward_warp

FLOW_CHOICES = ("flownet_sd", "tiny", "none")


def rgb_to_ycbcr(rgb: torch.Tensor) -> torch.Tensor:
    """JPEG (full-range BT.601) YCbCr of RGB in [0, 1] along dim -3, chroma centred on 0.5."""
    r, g, b = rgb.unbind(-3)
    y = 0.299 * r + 0.587 * g + 0.114 * b
    cb = 0.5 - 0.1687346 * r - 0.331264 * g + 0.5 * b
    cr = 0.5 + 0.5 * r - 0.418688 * g - 0.081312 * b
    return torch.stack([y, cb, cr], -3)


def ycbcr_to_rgb(ycc: torch.Tensor) -> torch.Tensor:
    """Inverse of `rgb_to_ycbcr`, clamped to [0, 1] as DALI's example clamps to [0, 255]."""
    y, cb, cr = ycc.unbind(-3)
    cb, cr = cb - 0.5, cr - 0.5
    rgb = torch.stack([y + 1.402 * cr, y - 0.344136 * cb - 0.714136 * cr, y + 1.772 * cb], -3)
    return rgb.clamp(0.0, 1.0)


def _conv_bn(in_ch: int, out_ch: int, kernel_size: int) -> nn.Sequential:
    """flownet2-pytorch's `conv(batchNorm=True, ...)`, the block DALI's VSRNet is built from."""
    return nn.Sequential(nn.Conv2d(in_ch, out_ch, kernel_size, 1, (kernel_size - 1) // 2, bias=False),
                         nn.BatchNorm2d(out_ch), nn.LeakyReLU(0.1, inplace=True))


def _conv_lrelu(in_ch: int, out_ch: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(in_ch, out_ch, 3, stride, 1), nn.LeakyReLU(0.1, inplace=True))


class TinyFlowNet(nn.Module):
    """Small flow estimator (~0.1 M parameters): a coarse flow at 1/16 size refined at 1/4, upsampled.

    Same interface as FlowNetSD: flow in pixels from `ref` to `nbr`. The prediction heads start at
    zero, so an untrained model warps nothing and training starts from plain VSRNet.
    """

    multiple = 16

    def __init__(self):
        super().__init__()
        self.encoder = nn.Sequential(_conv_lrelu(6, 16, 2), _conv_lrelu(16, 32, 2))  # 1/4
        self.coarse = nn.Sequential(_conv_lrelu(32, 64, 2), _conv_lrelu(64, 64, 2), _conv_lrelu(64, 64))  # 1/16
        self.head_coarse = nn.Conv2d(64, 2, 3, 1, 1)
        self.refine = nn.Sequential(_conv_lrelu(32 + 2, 32), nn.Conv2d(32, 2, 3, 1, 1))
        for head in (self.head_coarse, self.refine[-1]):
            nn.init.zeros_(head.weight)
            nn.init.zeros_(head.bias)

    def forward(self, ref: torch.Tensor, nbr: torch.Tensor) -> torch.Tensor:
        h, w = ref.shape[-2:]
        x = torch.cat([ref, nbr], 1) - 0.5
        pad_h, pad_w = -h % self.multiple, -w % self.multiple
        if pad_h or pad_w:
            x = F.pad(x, (0, pad_w, 0, pad_h), mode="replicate")
        feat4 = self.encoder(x)
        # flows are in full-resolution pixels at every scale, so resizing them needs no rescaling
        coarse = F.interpolate(self.head_coarse(self.coarse(feat4)), scale_factor=4, mode="bilinear", align_corners=False)
        flow4 = coarse + self.refine(torch.cat([feat4, coarse], 1))
        return F.interpolate(flow4, scale_factor=4, mode="bilinear", align_corners=False)[..., :h, :w]


class VSRNet(nn.Module):
    """Motion-compensated VSRNet predicting the centre frame of T low-resolution frames (see module doc)."""

    def __init__(self, num_frame: int = 3, scale: int = 4, flow: str = "flownet_sd", div_flow: float = 20.0,
                 residual: bool = False):
        super().__init__()
        if flow not in FLOW_CHOICES:
            raise ValueError(f"VSRNet: flow must be one of {', '.join(FLOW_CHOICES)}, got {flow!r}")
        if num_frame < 1 or scale < 1:
            raise ValueError(f"VSRNet: num_frame and scale must be positive, got {num_frame}, {scale}")
        self.num_frame = num_frame
        self.center_frame_idx = num_frame // 2
        self.scale = scale
        self.flow = flow
        self.residual = residual
        self.flow_net: nn.Module | None = {"flownet_sd": lambda: FlowNetSD(rgb_max=1.0, div_flow=div_flow),
                                            "tiny": TinyFlowNet, "none": lambda: None}[flow]()
        self.conv1 = _conv_bn(1, 64, 9)
        self.conv2 = _conv_bn(64 * num_frame, 32, 5)
        self.conv3 = nn.Conv2d(32, 1, 5, 1, 2)
        if residual:
            nn.init.zeros_(self.conv3.weight)
            nn.init.zeros_(self.conv3.bias)
        else:
            nn.init.normal_(self.conv3.weight, 0.0, 0.1)

    def freeze_flow(self, frozen: bool = True) -> None:
        """Stop (or resume) training the flow network; a frozen one runs without autograd."""
        if self.flow_net is not None:
            self.flow_net.requires_grad_(not frozen)

    @property
    def flow_frozen(self) -> bool:
        return self.flow_net is None or not any(p.requires_grad for p in self.flow_net.parameters())

    def upsample(self, lr: torch.Tensor) -> torch.Tensor:
        """(N, T, C, h, w) -> (N, T, C, scale*h, scale*w): bilinear as DALI's nn.Upsample, or with
        `residual` the SR baseline's bicubic (so the correction starts from the baseline)."""
        n, t, c, h, w = lr.shape
        if self.residual:
            up = bicubic_upscale(lr.reshape(n * t, c, h, w), self.scale)
        else:
            up = F.interpolate(lr.reshape(n * t, c, h, w), scale_factor=self.scale, mode="bilinear",
                               align_corners=False)
        return up.view(n, t, c, h * self.scale, w * self.scale)

    def estimate_flows(self, frames: torch.Tensor) -> list[torch.Tensor | None]:
        """Flow from the centre frame to each frame of (N, T, 3, H, W); None for the centre (and without a flow net)."""
        if self.flow_net is None:
            return [None] * frames.shape[1]
        ref = frames[:, self.center_frame_idx]
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.flow_frozen):
            return [None if i == self.center_frame_idx else self.flow_net(ref, frames[:, i])
                    for i in range(frames.shape[1])]

    def reconstruct(self, ycc: torch.Tensor, flows: list[torch.Tensor | None]) -> torch.Tensor:
        """Upsampled YCbCr frames (N, T, 3, H, W) and per-frame flows -> RGB centre frame (N, 3, H, W)."""
        feats = []
        for i, flow in enumerate(flows):
            y = ycc[:, i, :1]
            if flow is not None:
                y = backward_warp(y, flow)
            feats.append(self.conv1(y))  # frame by frame, as DALI, so batch-norm statistics match
        out = self.conv3(self.conv2(torch.cat(feats, 1)))
        if self.residual:
            y_hr = (ycc[:, self.center_frame_idx, :1] + out).clamp(0.0, 1.0)
        else:
            y_hr = torch.sigmoid(out)
        return ycbcr_to_rgb(torch.cat([y_hr, ycc[:, self.center_frame_idx, 1:]], 1))

    def forward(self, lr: torch.Tensor) -> torch.Tensor:
        """lr: (N, T, 3, h, w) in [0, 1] -> centre frame (N, 3, scale*h, scale*w) in [0, 1]."""
        if lr.dim() != 5 or lr.shape[1] != self.num_frame or lr.shape[2] != 3:
            raise ValueError(f"VSRNet expects (N, {self.num_frame}, 3, h, w), got {tuple(lr.shape)}")
        up = self.upsample(lr)
        return self.reconstruct(rgb_to_ycbcr(up), self.estimate_flows(up))


@register("vsrnet", "base", task="sr", default=True)
def vsrnet_base(num_frame: int = 3, scale: int = 4, flow: str = "flownet_sd",
                flownet_path: str | os.PathLike | None = None, freeze_flow: bool | None = None,
                div_flow: float = 20.0, residual: bool = False) -> VSRNet:
    """VSRNet with `flow` in {"flownet_sd", "tiny", "none"}.

    flownet_path: a FlowNet2-SD checkpoint (`{'state_dict': ...}`) loaded strictly into the flow net.
    freeze_flow: default frozen when flownet_path is given (DALI's setup), trained jointly otherwise.
    residual: predict a correction over the bicubic upsampled Y (starts as the bicubic baseline).
    """
    model = VSRNet(num_frame, scale, flow, div_flow, residual)
    if flownet_path is not None:
        if flow != "flownet_sd":
            raise ValueError(f"VSRNet: flownet_path needs flow='flownet_sd', not {flow!r}")
        load_pretrained(model.flow_net, flownet_path, "flownet_sd", strict=True)
    model.freeze_flow(flownet_path is not None if freeze_flow is None else freeze_flow)
    return model


@register_converter("vsrnet")
def convert_dali_vsrnet(state_dict: dict) -> dict:
    """DALI example names (`FlowNetSD_network.`) -> ours (`flow_net.`)."""
    prefix = "FlowNetSD_network."
    return {("flow_net." + k[len(prefix):] if k.startswith(prefix) else k): v for k, v in state_dict.items()}


@register_inferer("vsrnet")
def infer_vsrnet(state_dict: dict) -> tuple[str | None, dict]:
    """(size, builder kwargs) of a VSRNet state_dict: frame count and flow network kind."""
    if "conv2.0.weight" not in state_dict:
        return None, {}
    if "flow_net.conv0.0.weight" in state_dict:
        flow = "flownet_sd"
    elif "flow_net.head_coarse.weight" in state_dict:
        flow = "tiny"
    else:
        flow = "none"
    return "base", {"num_frame": state_dict["conv2.0.weight"].shape[1] // 64, "flow": flow}
