"""FlowNet2-SD (small-displacement FlowNet, Ilg et al. 2017), key-compatible with NVIDIA/flownet2-pytorch.

Module names follow `networks/FlowNetSD.py` there (`conv0.0.weight`, `inter_conv5.0`,
`upsampled_flow6_to_5`, ...), so the converted `FlowNet2-SD_checkpoint.pth.tar`
(`{'state_dict': ...}`, no batch norm) loads strictly. `forward` is the `FlowNet2SD` wrapper of
`models.py`: per-channel mean subtraction over the image pair, division by `rgb_max`, finest
prediction (1/4 size) times `div_flow` (20) upsampled x4 bilinearly, which gives the flow in pixels.
Inputs of any size are padded to a multiple of 64 and the flow cropped back. Without batch norm
(FlowNet2-SD's setting) it has 45,371,666 parameters, as published in flownet2-pytorch.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _conv(batch_norm: bool, in_ch: int, out_ch: int, kernel_size: int = 3, stride: int = 1) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Conv2d(in_ch, out_ch, kernel_size, stride, (kernel_size - 1) // 2, bias=not batch_norm)]
    if batch_norm:
        layers.append(nn.BatchNorm2d(out_ch))
    layers.append(nn.LeakyReLU(0.1, inplace=True))
    return nn.Sequential(*layers)


def _inter_conv(batch_norm: bool, in_ch: int, out_ch: int) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Conv2d(in_ch, out_ch, 3, 1, 1)]
    if batch_norm:
        layers.append(nn.BatchNorm2d(out_ch))
    return nn.Sequential(*layers)


def _deconv(in_ch: int, out_ch: int) -> nn.Sequential:
    return nn.Sequential(nn.ConvTranspose2d(in_ch, out_ch, 4, 2, 1), nn.LeakyReLU(0.1, inplace=True))


def _predict_flow(in_ch: int) -> nn.Conv2d:
    return nn.Conv2d(in_ch, 2, 3, 1, 1)


class FlowNetSD(nn.Module):
    """Flow from `ref` to `nbr` (both (N, 3, H, W), [0, rgb_max]) so that backward_warp(nbr, flow) ~ ref."""

    multiple = 64  # six stride-2 stages

    def __init__(self, batch_norm: bool = False, rgb_max: float = 1.0, div_flow: float = 20.0):
        super().__init__()
        self.rgb_max = rgb_max
        self.div_flow = div_flow
        bn = batch_norm
        self.conv0 = _conv(bn, 6, 64)
        self.conv1 = _conv(bn, 64, 64, stride=2)
        self.conv1_1 = _conv(bn, 64, 128)
        self.conv2 = _conv(bn, 128, 128, stride=2)
        self.conv2_1 = _conv(bn, 128, 128)
        self.conv3 = _conv(bn, 128, 256, stride=2)
        self.conv3_1 = _conv(bn, 256, 256)
        self.conv4 = _conv(bn, 256, 512, stride=2)
        self.conv4_1 = _conv(bn, 512, 512)
        self.conv5 = _conv(bn, 512, 512, stride=2)
        self.conv5_1 = _conv(bn, 512, 512)
        self.conv6 = _conv(bn, 512, 1024, stride=2)
        self.conv6_1 = _conv(bn, 1024, 1024)

        # Decoder inputs are [encoder skip, deconv output, upsampled flow]: 512+512+2, 512+256+2, ...
        self.deconv5 = _deconv(1024, 512)
        self.deconv4 = _deconv(1026, 256)
        self.deconv3 = _deconv(770, 128)
        self.deconv2 = _deconv(386, 64)
        self.inter_conv5 = _inter_conv(bn, 1026, 512)
        self.inter_conv4 = _inter_conv(bn, 770, 256)
        self.inter_conv3 = _inter_conv(bn, 386, 128)
        self.inter_conv2 = _inter_conv(bn, 194, 64)
        self.predict_flow6 = _predict_flow(1024)
        self.predict_flow5 = _predict_flow(512)
        self.predict_flow4 = _predict_flow(256)
        self.predict_flow3 = _predict_flow(128)
        self.predict_flow2 = _predict_flow(64)
        self.upsampled_flow6_to_5 = nn.ConvTranspose2d(2, 2, 4, 2, 1)
        self.upsampled_flow5_to_4 = nn.ConvTranspose2d(2, 2, 4, 2, 1)
        self.upsampled_flow4_to_3 = nn.ConvTranspose2d(2, 2, 4, 2, 1)
        self.upsampled_flow3_to_2 = nn.ConvTranspose2d(2, 2, 4, 2, 1)

        for m in self.modules():  # the official initialisation
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
                nn.init.xavier_uniform_(m.weight)
                if m.bias is not None:
                    nn.init.uniform_(m.bias)

    def predictions(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Raw multi-scale predictions [flow2 (1/4), flow3, ..., flow6 (1/64)] for a normalised 6-channel pair."""
        c0 = self.conv0(x)
        c1 = self.conv1_1(self.conv1(c0))
        c2 = self.conv2_1(self.conv2(c1))
        c3 = self.conv3_1(self.conv3(c2))
        c4 = self.conv4_1(self.conv4(c3))
        c5 = self.conv5_1(self.conv5(c4))
        c6 = self.conv6_1(self.conv6(c5))

        flow6 = self.predict_flow6(c6)
        concat5 = torch.cat((c5, self.deconv5(c6), self.upsampled_flow6_to_5(flow6)), 1)
        flow5 = self.predict_flow5(self.inter_conv5(concat5))
        concat4 = torch.cat((c4, self.deconv4(concat5), self.upsampled_flow5_to_4(flow5)), 1)
        flow4 = self.predict_flow4(self.inter_conv4(concat4))
        concat3 = torch.cat((c3, self.deconv3(concat4), self.upsampled_flow4_to_3(flow4)), 1)
        flow3 = self.predict_flow3(self.inter_conv3(concat3))
        concat2 = torch.cat((c2, self.deconv2(concat3), self.upsampled_flow3_to_2(flow3)), 1)
        flow2 = self.predict_flow2(self.inter_conv2(concat2))
        return [flow2, flow3, flow4, flow5, flow6]

    def normalise(self, ref: torch.Tensor, nbr: torch.Tensor) -> torch.Tensor:
        """FlowNet2's input: each channel minus its mean over both images, / rgb_max, stacked to 6 channels."""
        pair = torch.stack([ref, nbr], 2)  # (N, 3, 2, H, W), the layout flownet2-pytorch averages over
        mean = pair.flatten(2).mean(-1).view(pair.shape[0], pair.shape[1], 1, 1, 1)
        pair = (pair - mean) / self.rgb_max
        return torch.cat([pair[:, :, 0], pair[:, :, 1]], 1)

    def forward(self, ref: torch.Tensor, nbr: torch.Tensor) -> torch.Tensor:
        """Flow (N, 2, H, W) in pixels, (dx, dy), from `ref` to `nbr`."""
        h, w = ref.shape[-2:]
        x = self.normalise(ref, nbr)
        pad_h, pad_w = -h % self.multiple, -w % self.multiple
        if pad_h or pad_w:
            x = F.pad(x, (0, pad_w, 0, pad_h), mode="replicate")
        flow2 = self.predictions(x)[0]
        flow = F.interpolate(flow2 * self.div_flow, scale_factor=4, mode="bilinear", align_corners=False)
        return flow[..., :h, :w]
