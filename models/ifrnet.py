"""IFRNet video frame interpolation (Kong et al., CVPR 2022), key-compatible with the official code.

Layout and parameter names follow ltkong218/IFRNet (`models/IFRNet.py`, `IFRNet_L.py`,
`IFRNet_S.py`), so the official `IFRNet*_Vimeo90K.pth` / `*_GoPro.pth` state_dicts load strictly as
they are. The losses, which the official Model holds, live in models.losses (IFRNetLoss).

Architecture: a shared 4-level pyramid encoder (stride 2 each) for both inputs; decoders from the
coarsest level up jointly refine the intermediate flows t->0, t->1 and an intermediate feature
("ft"), each level warping the input features with the current flows; the finest decoder also
gives a fusion mask and an RGB residual. The timestep enters the coarsest decoder as a constant
plane, so any t in (0, 1) works. Inputs are centred by their joint mean before encoding.

Sizes (parameters as published): "base" 4,959,692, "large" 19,699,460, "small" 2,803,610.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from vsrvfi.models.registry import register, register_inferer
from vsrvfi.models.vfi_common import as_timestep, pad_inputs, unpad
from vsrvfi.models.warp import backward_warp

#: encoder widths per level (1/2 .. 1/16), first-conv kernel, ResBlock side channels.
SIZES = {
    "base": dict(channels=(32, 48, 72, 96), first_kernel=3, side_channels=32),
    "large": dict(channels=(64, 96, 144, 192), first_kernel=7, side_channels=64),
    "small": dict(channels=(24, 36, 54, 72), first_kernel=3, side_channels=24),
}


def _resize(x: torch.Tensor, factor: float) -> torch.Tensor:
    return F.interpolate(x, scale_factor=factor, mode="bilinear", align_corners=False)


def _conv(cin: int, cout: int, k: int = 3, stride: int = 1, pad: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, k, stride, pad), nn.PReLU(cout))


class ResBlock(nn.Module):
    """Residual block whose last `side_channels` channels get two extra convs in between (IFRNet's
    cheap way to refine the flow/feature side channels more than the rest)."""

    def __init__(self, channels: int, side_channels: int) -> None:
        super().__init__()
        self.side = side_channels
        self.conv1 = _conv(channels, channels)
        self.conv2 = _conv(side_channels, side_channels)
        self.conv3 = _conv(channels, channels)
        self.conv4 = _conv(side_channels, side_channels)
        self.conv5 = nn.Conv2d(channels, channels, 3, 1, 1)
        self.prelu = nn.PReLU(channels)

    def _side(self, x: torch.Tensor, conv: nn.Module) -> torch.Tensor:
        return torch.cat((x[:, :-self.side], conv(x[:, -self.side:])), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self._side(self.conv1(x), self.conv2)
        out = self._side(self.conv3(out), self.conv4)
        return self.prelu(x + self.conv5(out))


class Encoder(nn.Module):
    """Feature pyramid at 1/2, 1/4, 1/8, 1/16 resolution."""

    def __init__(self, channels: tuple[int, ...], first_kernel: int) -> None:
        super().__init__()
        c1, c2, c3, c4 = channels
        self.pyramid1 = nn.Sequential(_conv(3, c1, first_kernel, 2, first_kernel // 2), _conv(c1, c1))
        self.pyramid2 = nn.Sequential(_conv(c1, c2, 3, 2, 1), _conv(c2, c2))
        self.pyramid3 = nn.Sequential(_conv(c2, c3, 3, 2, 1), _conv(c3, c3))
        self.pyramid4 = nn.Sequential(_conv(c3, c4, 3, 2, 1), _conv(c4, c4))

    def forward(self, img: torch.Tensor) -> list[torch.Tensor]:
        feats = []
        x = img
        for level in (self.pyramid1, self.pyramid2, self.pyramid3, self.pyramid4):
            x = level(x)
            feats.append(x)
        return feats


class Decoder(nn.Module):
    """conv -> ResBlock -> x2 transposed conv; outputs 4 flow channels + the next level's channels.

    The coarsest decoder (`first=True`) reads both level-4 features and the timestep plane; the others
    read the previous intermediate feature, both features warped by the current flows, and the flows.
    """

    def __init__(self, in_channels: int, mid_channels: int, out_channels: int, side_channels: int,
                 first: bool = False) -> None:
        super().__init__()
        self.first = first
        self.convblock = nn.Sequential(_conv(in_channels, mid_channels), ResBlock(mid_channels, side_channels),
                                       nn.ConvTranspose2d(mid_channels, out_channels, 4, 2, 1))

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        if self.first:
            f0, f1, embt = inputs
            x = torch.cat((f0, f1, embt.expand(-1, 1, f0.shape[2], f0.shape[3])), 1)
        else:
            ft, f0, f1, flow0, flow1 = inputs
            x = torch.cat((ft, backward_warp(f0, flow0), backward_warp(f1, flow1), flow0, flow1), 1)
        return self.convblock(x)


@dataclass
class IFRNetOutput:
    """Everything one IFRNet forward pass produces.

    pred: the interpolated frame (N, 3, H, W) in [0, 1] (clamped).
    flows: flows coarse to fine at 1/8, 1/4, 1/2 and full resolution, each (N, 4, h, w): channels
        0:2 the flow t->0, 2:4 the flow t->1, in pixels of that level (backward-warp convention).
        The last one is at the input size; the coarser ones refer to the padded frame if padding
        was needed (and to the resized frame when scale_factor != 1).
    mask: fusion weight of warped frame 0 (sigmoid), (N, 1, H, W); residual: RGB residual (N, 3, H, W);
    merged: mask-blended warps before the residual, (N, 3, H, W).
    features: the decoders' reconstructed intermediate features at 1/8, 1/4, 1/2 resolution.
    gt_features: the encoder's features of the centred ground truth at the same levels (only when gt
        was given, else None); features vs gt_features is the geometry consistency loss.
    """

    pred: torch.Tensor
    flows: list[torch.Tensor] = field(default_factory=list)
    mask: torch.Tensor | None = None
    residual: torch.Tensor | None = None
    merged: torch.Tensor | None = None
    features: list[torch.Tensor] = field(default_factory=list)
    gt_features: list[torch.Tensor] | None = None


class IFRNet(nn.Module):
    """IFRNet with encoder widths `channels`, first-conv kernel and ResBlock side channels."""

    def __init__(self, channels: tuple[int, int, int, int] = (32, 48, 72, 96), first_kernel: int = 3,
                 side_channels: int = 32) -> None:
        super().__init__()
        c1, c2, c3, c4 = channels
        self.encoder = Encoder(tuple(channels), first_kernel)
        self.decoder4 = Decoder(2 * c4 + 1, 2 * c4, 4 + c3, side_channels, first=True)
        self.decoder3 = Decoder(3 * c3 + 4, 3 * c3, 4 + c2, side_channels)
        self.decoder2 = Decoder(3 * c2 + 4, 3 * c2, 4 + c1, side_channels)
        self.decoder1 = Decoder(3 * c1 + 4, 3 * c1, 8, side_channels)  # flows 4, mask 1, residual 3

    @staticmethod
    def pad_multiple(scale_factor: float = 1.0) -> int:
        """Frame sides must be a multiple of this: 16 at the encoder's resolution (20 for 0.8)."""
        m = 16.0 / scale_factor
        if scale_factor <= 0 or abs(m - round(m)) > 1e-6:
            raise ValueError(f"scale_factor must divide 16 into a whole number (1, 0.8, 0.5, ...), got {scale_factor}")
        return int(round(m))

    def forward(self, img0: torch.Tensor, img1: torch.Tensor, timestep: float | torch.Tensor = 0.5,
                gt: torch.Tensor | None = None, scale_factor: float = 1.0) -> IFRNetOutput:
        """Interpolate at `timestep` between img0 and img1 (N, 3, H, W) in [0, 1], any H and W.

        timestep: float or per-sample tensor (N,) / (N, 1, 1, 1) (IFRNet's `embt`).
        gt: the true frame at `timestep` (training): its encoder features are returned for the
            geometry consistency loss.
        scale_factor: run the network on inputs resized by this factor and resize flows, mask and
            residual back (official inference option; e.g. 0.8 or 0.5 for large motion / 4K).
        Frames are padded (replicate) to a multiple of `pad_multiple(scale_factor)` and image-sized
        outputs cropped back.
        """
        img0, img1, gt, pad = pad_inputs("IFRNet", img0, img1, gt, self.pad_multiple(scale_factor))
        out = self._run(img0, img1, as_timestep(timestep, img0), gt, scale_factor)
        if any(pad):
            out.pred, out.mask, out.residual, out.merged = (unpad(x, pad) for x in
                                                            (out.pred, out.mask, out.residual, out.merged))
            out.flows[-1] = unpad(out.flows[-1], pad)
        return out

    @torch.no_grad()
    def interpolate(self, img0: torch.Tensor, img1: torch.Tensor, timestep: float | torch.Tensor = 0.5,
                    scale_factor: float = 1.0) -> torch.Tensor:
        """Inference convenience: the interpolated frame (N, 3, H, W), without gradients."""
        return self.forward(img0, img1, timestep, scale_factor=scale_factor).pred

    def _run(self, img0: torch.Tensor, img1: torch.Tensor, embt: torch.Tensor, gt: torch.Tensor | None,
             scale_factor: float) -> IFRNetOutput:
        mean = torch.cat((img0, img1), 2).mean(dim=(1, 2, 3), keepdim=True)
        img0, img1 = img0 - mean, img1 - mean
        x0, x1 = img0, img1
        if scale_factor != 1.0:
            x0, x1 = _resize(img0, scale_factor), _resize(img1, scale_factor)
        f0 = self.encoder(x0)
        f1 = self.encoder(x1)

        out = self.decoder4(f0[3], f1[3], embt)
        flow0, flow1, ft = out[:, 0:2], out[:, 2:4], out[:, 4:]
        flows, features = [out[:, 0:4]], [ft]
        for decoder, level in ((self.decoder3, 2), (self.decoder2, 1), (self.decoder1, 0)):
            out = decoder(ft, f0[level], f1[level], flow0, flow1)
            flow0 = out[:, 0:2] + 2.0 * _resize(flow0, 2.0)
            flow1 = out[:, 2:4] + 2.0 * _resize(flow1, 2.0)
            flows.append(torch.cat((flow0, flow1), 1))
            ft = out[:, 4:]
            if level:
                features.append(ft)
        mask = torch.sigmoid(out[:, 4:5])
        residual = out[:, 5:]
        if scale_factor != 1.0:
            inv = 1.0 / scale_factor
            flow0, flow1 = _resize(flow0, inv) * inv, _resize(flow1, inv) * inv
            flows[-1] = torch.cat((flow0, flow1), 1)
            mask, residual = _resize(mask, inv), _resize(residual, inv)
            if mask.shape[-2:] != img0.shape[-2:]:
                raise ValueError(f"scale_factor {scale_factor} does not map {tuple(img0.shape[-2:])} back onto itself")

        merged = mask * backward_warp(img0, flow0) + (1 - mask) * backward_warp(img1, flow1) + mean
        pred = torch.clamp(merged + residual, 0, 1)
        gt_features = None
        if gt is not None:
            g = gt - mean
            if scale_factor != 1.0:
                g = _resize(g, scale_factor)
            gt_features = self.encoder(g)[:3][::-1]  # 1/8, 1/4, 1/2 like `features`
        return IFRNetOutput(pred=pred, flows=flows, mask=mask, residual=residual, merged=merged,
                            features=features, gt_features=gt_features)


@register("ifrnet", "base", task="vfi", default=True)
def ifrnet_base() -> IFRNet:
    return IFRNet(**SIZES["base"])


@register("ifrnet", "large", task="vfi")
def ifrnet_large() -> IFRNet:
    return IFRNet(**SIZES["large"])


@register("ifrnet", "small", task="vfi")
def ifrnet_small() -> IFRNet:
    return IFRNet(**SIZES["small"])


@register_inferer("ifrnet")
def infer_ifrnet(state_dict: dict) -> tuple[str | None, dict]:
    """The size from the first encoder conv's width (32 base, 64 large, 24 small)."""
    w = state_dict.get("encoder.pyramid1.0.0.weight")
    if w is None:
        return None, {}
    by_width = {cfg["channels"][0]: name for name, cfg in SIZES.items()}
    return by_width.get(int(w.shape[0])), {}
