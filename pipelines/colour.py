"""How far two batches' images are apart in 8-bit levels, and the project's tolerance for a different
YUV->RGB conversion of the same decoded frames (another decoder, NVDEC, another FFmpeg).

BT.601 luma (0.299 R + 0.587 G + 0.114 B) does not depend on the chroma for the same matrix, so it is
held to a tight bound; RGB, where chroma upsampling and rounding differ at colour edges, to a loose
one. A wrong frame, crop, flip or order is off by far more than either on moving content. The same
numbers as tests/test_gpu_pipelines.py (NVDEC vs the CPU decode).
"""
from __future__ import annotations

from typing import Mapping

import torch

TOLERANCE = {"luma_mean": 1.0, "luma_p99": 6.0, "rgb_mean": 4.0}  # 8-bit levels
# The peer loaders (pipelines.peers) convert with swscale's default flags (torchcodec: SWS_BILINEAR;
# decord: its FFmpeg's default), without accurate rounding or full chroma interpolation: G and B come
# out about one level low on average, and saturated colour edges differ by much more once clipped. On
# the tiny synthetic test clips (144p test patterns, small crops) that measured luma mean 1.06-1.62,
# luma p99 9.5-20.3 and RGB mean 2.4-5.2 levels: over TOLERANCE. Their check therefore holds the luma
# mean to 2 levels and the tails loosely: another sample of the batch measured about 50 levels, the
# same frames shifted by one pixel 2.8 (so the crop position is checked exactly, through the "crop"
# metadata, not through the pixels).
PEER_TOLERANCE = {"luma_mean": 2.0, "luma_p99": 24.0, "rgb_mean": 6.0}
_LUMA = (0.299, 0.587, 0.114)
_SAMPLE = 1_000_000  # quantiles of at most this many values (torch.quantile's input limit is 16M)


def _stats(d: torch.Tensor) -> dict:
    d = d.abs().flatten()
    sample = d if d.numel() <= _SAMPLE else d[torch.randperm(d.numel(), generator=torch.Generator().manual_seed(0))[:_SAMPLE]]
    mse = float((d ** 2).mean())
    return {"max": float(d.max()), "mean": float(d.mean()), "p99": float(torch.quantile(sample, 0.99)),
            "psnr": min(99.0, 10 * torch.log10(torch.tensor(255.0 ** 2 / max(mse, 1e-12))).item())}


def image_difference(a: torch.Tensor, b: torch.Tensor) -> dict:
    """RGB and luma difference stats (max, mean, p99, PSNR; 8-bit levels) of two (..., 3, H, W) images in [0, 1]."""
    if a.shape != b.shape:
        raise ValueError(f"shapes differ: {tuple(a.shape)} vs {tuple(b.shape)}")
    x, y = a.detach().float().cpu() * 255.0, b.detach().float().cpu() * 255.0
    w = torch.tensor(_LUMA).view(3, 1, 1)
    return {"rgb": _stats(x - y), "luma": _stats((x * w).sum(-3) - (y * w).sum(-3))}


def batch_difference(batch: Mapping[str, torch.Tensor], ref: Mapping[str, torch.Tensor]) -> dict:
    """Per image key, image_difference of `batch` against `ref`; raises ValueError when the keys or any
    non-image tensor (clip, start, aug, crop, timesteps) differ: then the two did not do the same work."""
    if set(batch) != set(ref):
        raise ValueError(f"keys differ: {sorted(batch)} vs {sorted(ref)}")
    out = {}
    for k in batch:
        a, b = batch[k].cpu(), ref[k].cpu()
        if k == "timesteps" or not a.is_floating_point():
            if a.shape != b.shape or not torch.allclose(a.float(), b.float()):
                raise ValueError(f"{k} differs: not the same samples")
        else:
            out[k] = image_difference(a, b)
    return out


def within_tolerance(diff: Mapping[str, dict], tolerance: Mapping[str, float] = TOLERANCE) -> bool:
    """True when every image key of batch_difference() is within `tolerance`."""
    return all(d["luma"]["mean"] <= tolerance["luma_mean"] and d["luma"]["p99"] <= tolerance["luma_p99"]
               and d["rgb"]["mean"] <= tolerance["rgb_mean"] for d in diff.values())


def summary(diff: Mapping[str, dict]) -> str:
    """One line: the worst luma mean/p99 and RGB mean over the keys, and the RGB max."""
    worst = lambda part, stat: max(d[part][stat] for d in diff.values())  # noqa: E731
    return (f"luma mean {worst('luma', 'mean'):.2f} p99 {worst('luma', 'p99'):.1f}, "
            f"RGB mean {worst('rgb', 'mean'):.2f} max {worst('rgb', 'max'):.0f} levels")
