"""Pseudo optical-flow labels for IFRNet's flow distillation.

IFRNet distils flows t->0 and t->1 estimated between the ground-truth middle frame and the inputs
by a pretrained flow network (LiteFlowNet in the paper). Any estimator can be plugged in as a
callable; without one, OpenCV's DIS optical flow (CPU, no weights) is the offline default.
"""
from __future__ import annotations

from typing import Callable

import cv2
import numpy as np
import torch

# OpenCV's own worker pool, once started, can deadlock DALI's CPU video reader in the same process.
cv2.setNumThreads(1)

#: estimator(src, dst) -> (N, 2, H, W) flow in pixels such that backward_warp(dst, flow) ~ src;
#: src and dst are (N, 3, H, W) RGB in [0, 1].
FlowEstimator = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

_DIS_PRESETS = {"ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST,
                "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
                "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM}


def _to_gray_u8(img: torch.Tensor) -> np.ndarray:
    rgb = (img.detach().float().clamp(0, 1) * 255.0 + 0.5).to(torch.uint8).permute(1, 2, 0).cpu().numpy()
    return cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY)


def dis_flow(src: torch.Tensor, dst: torch.Tensor, preset: str = "medium") -> torch.Tensor:
    """DIS optical flow from every `src` image to its `dst` image, (N, 2, H, W) on src's device.

    The flow is backward-warp ready: sampling dst at p + flow(p) reproduces src(p).
    """
    if preset not in _DIS_PRESETS:
        raise ValueError(f"DIS preset must be one of {', '.join(_DIS_PRESETS)}, not {preset!r}")
    if src.shape != dst.shape or src.dim() != 4 or src.shape[1] != 3:
        raise ValueError(f"dis_flow needs two (N, 3, H, W) batches of equal shape, got "
                         f"{tuple(src.shape)} and {tuple(dst.shape)}")
    dis = cv2.DISOpticalFlow_create(_DIS_PRESETS[preset])
    flows = [dis.calc(_to_gray_u8(a), _to_gray_u8(b), None) for a, b in zip(src, dst)]
    return torch.from_numpy(np.stack(flows)).permute(0, 3, 1, 2).to(src.device, src.dtype)


class PseudoFlowLabeler:
    """Pseudo flow labels (N, 4, H, W) = [flow t->0 | flow t->1] for a batch of triplets, no gradient.

    `estimator` is any FlowEstimator (e.g. a pretrained network wrapped in a function); when it is
    None, OpenCV DIS with `preset` is used. Labels are cheap enough to make on the fly for small
    crops, but computing them once per data set (as IFRNet's generate_flow.py does) is faster.
    """

    def __init__(self, estimator: FlowEstimator | None = None, preset: str = "medium") -> None:
        if estimator is None and preset not in _DIS_PRESETS:
            raise ValueError(f"DIS preset must be one of {', '.join(_DIS_PRESETS)}, not {preset!r}")
        self.estimator = estimator
        self.preset = preset

    def flow(self, src: torch.Tensor, dst: torch.Tensor) -> torch.Tensor:
        if self.estimator is None:
            return dis_flow(src, dst, self.preset)
        flow = self.estimator(src, dst)
        if flow.shape != (src.shape[0], 2, *src.shape[-2:]):
            raise ValueError(f"flow estimator returned {tuple(flow.shape)}, expected "
                             f"{(src.shape[0], 2, *src.shape[-2:])}")
        return flow

    @torch.no_grad()
    def __call__(self, img0: torch.Tensor, imgt: torch.Tensor, img1: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.flow(imgt, img0), self.flow(imgt, img1)], 1).detach()
