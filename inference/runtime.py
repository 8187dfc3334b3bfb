"""Device and precision choices shared by the inference tools, and frame <-> tensor conversion."""
from __future__ import annotations

import contextlib

import numpy as np
import torch

from vsrvfi.core.errors import UsageError

PRECISIONS = ("fp32", "fp16", "bf16")


def pick_device(name: str = "auto") -> torch.device:
    """'auto' is the first CUDA GPU when there is one, else the CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UsageError(f"--device {name}: no CUDA GPU is visible")
    try:
        return torch.device(name)
    except RuntimeError:
        raise UsageError(f"--device {name!r}: use auto, cpu, cuda or cuda:N") from None


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """Mixed-precision context for `precision` (fp16 only on CUDA; bf16 on either)."""
    if precision not in PRECISIONS:
        raise UsageError(f"--precision {precision!r}: use {', '.join(PRECISIONS)}")
    if precision == "fp32":
        return contextlib.nullcontext()
    if precision == "fp16" and device.type != "cuda":
        raise UsageError("--precision fp16 needs a CUDA GPU; use fp32 or bf16 on the CPU")
    dtype = torch.float16 if precision == "fp16" else torch.bfloat16
    return torch.autocast(device.type, dtype=dtype)


def to_tensor(frames: np.ndarray | list[np.ndarray], device: torch.device) -> torch.Tensor:
    """(H, W, 3) or (N, H, W, 3) uint8 RGB -> (1 or N, 3, H, W) float32 in [0, 1] on `device`."""
    arr = np.stack(frames) if isinstance(frames, list) else frames
    t = torch.from_numpy(np.ascontiguousarray(arr)).to(device)
    if t.dim() == 3:
        t = t[None]
    return t.permute(0, 3, 1, 2).float().div_(255)


def to_frame(x: torch.Tensor) -> np.ndarray:
    """(3, H, W) or (1, 3, H, W) float in [0, 1] -> (H, W, 3) uint8 RGB (rounded)."""
    if x.dim() == 4:
        x = x[0]
    return x.float().clamp(0, 1).mul(255).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()
