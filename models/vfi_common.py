"""Small helpers shared by the frame-interpolation models: timestep tensors and size padding."""
from __future__ import annotations


import torch
import torch.nn.functional as F


def as_timestep(t: float | torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Timestep(s) in (0, 1) as an (N, 1, 1, 1) tensor on `like`'s device and dtype.

    Accepts a float, a 0-d tensor, or one value per sample shaped (N,), (N, 1) or (N, 1, 1, 1).
    """
    n = like.shape[0]
    t = torch.as_tensor(t, dtype=like.dtype, device=like.device)
    if t.numel() == 1:
        return t.reshape(1, 1, 1, 1).expand(n, 1, 1, 1)
    if t.numel() != n:
        raise ValueError(f"timestep has {t.numel()} values for a batch of {n}")
    return t.reshape(n, 1, 1, 1)


def padding_for(h: int, w: int, multiple: int) -> tuple[int, int, int, int]:
    """(left, right, top, bottom) padding that makes (h, w) a multiple of `multiple`, split evenly."""
    ph = (-h) % multiple
    pw = (-w) % multiple
    return pw // 2, pw - pw // 2, ph // 2, ph - ph // 2


def pad_to_multiple(x: torch.Tensor, multiple: int,
                    mode: str = "replicate") -> tuple[torch.Tensor, tuple[int, int, int, int]]:
    """Pad the last two dims of `x` to a multiple (replicate padding, as the official benchmarks do)."""
    pad = padding_for(x.shape[-2], x.shape[-1], multiple)
    if any(pad):
        x = F.pad(x, pad, mode=mode)
    return x, pad


def unpad(x: torch.Tensor | None, pad: tuple[int, int, int, int]) -> torch.Tensor | None:
    """Undo `pad_to_multiple` on an image-sized tensor (None passes through)."""
    if x is None or not any(pad):
        return x
    left, right, top, bottom = pad
    return x[..., top:x.shape[-2] - bottom, left:x.shape[-1] - right]


def pad_inputs(name: str, img0: torch.Tensor, img1: torch.Tensor, gt: torch.Tensor | None,
               multiple: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, tuple[int, int, int, int]]:
    """Check two (N, 3, H, W) frames (and gt) agree in shape, pad all to `multiple`; returns them and the pad."""
    if img0.shape != img1.shape or img0.dim() != 4 or img0.shape[1] != 3:
        raise ValueError(f"{name} needs two (N, 3, H, W) frames of equal shape, got "
                         f"{tuple(img0.shape)} and {tuple(img1.shape)}")
    if gt is not None and gt.shape != img0.shape:
        raise ValueError(f"gt shape {tuple(gt.shape)} differs from the inputs' {tuple(img0.shape)}")
    img0, pad = pad_to_multiple(img0, multiple)
    img1, _ = pad_to_multiple(img1, multiple)
    if gt is not None:
        gt, _ = pad_to_multiple(gt, multiple)
    return img0, img1, gt, pad
