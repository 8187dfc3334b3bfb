"""Checkpoint I/O shared by the trainer, the converter and the inference tools.

Saving is atomic (temporary name, then rename) so an interrupted save never leaves a truncated file
under the final name. Loading recognises the official layouts: a bare state_dict (RIFE's
`flownet.pkl`, IFRNet's `.pth`), BasicSR's `{'params', 'params_ema'}`, FlowNet2's
`{'state_dict': ...}` tar files, DDP's `module.` prefix, and this project's own
`{'model': ..., 'ema': ...}` training checkpoints.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from vsrvfi.core.atomic import atomic_path

from vsrvfi.core.errors import CheckpointError

# Keys under which a state_dict may sit inside a checkpoint, in order of preference.
_NESTED_KEYS = ("params_ema", "params", "ema", "model", "state_dict", "net", "generator")


def save_checkpoint(obj: Any, path: str | os.PathLike) -> Path:
    """torch.save `obj` to `path` atomically; returns the path."""
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        # through a Python file, so a full disk surfaces as the OSError it is (torch's own file writer
        # reports it as an unrelated RuntimeError) and atomic_path reports it in one line
        torch.save(obj, f)
    return Path(path)


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> Any:
    """torch.load with a one-line error naming the file when it is missing or unreadable."""
    p = Path(path)
    if not p.is_file():
        raise CheckpointError(p, "no such checkpoint file")
    try:
        return torch.load(p, map_location=map_location, weights_only=False)
    except Exception as exc:  # torch raises many types for a bad file
        raise CheckpointError(p, f"not a readable checkpoint ({exc.__class__.__name__}: {exc})") from None


def strip_prefix(state_dict: dict[str, Any], prefix: str = "module.") -> dict[str, Any]:
    """Remove a key prefix (DDP's `module.`) from every key that has it."""
    return {(k[len(prefix):] if k.startswith(prefix) else k): v for k, v in state_dict.items()}


def extract_state_dict(ckpt: Any, prefer_ema: bool = True) -> dict[str, torch.Tensor]:
    """The model weights inside any supported checkpoint layout, `module.` prefixes removed."""
    order = _NESTED_KEYS if prefer_ema else tuple(k for k in _NESTED_KEYS if "ema" not in k) + ("params_ema", "ema")
    obj = ckpt
    while isinstance(obj, dict) and not _is_state_dict(obj):
        for key in order:
            if key in obj and isinstance(obj[key], dict) and obj[key]:
                obj = obj[key]
                break
        else:
            raise ValueError(f"no state_dict found among keys {sorted(obj)[:10]}")
    if not isinstance(obj, dict):
        raise ValueError(f"checkpoint holds a {type(obj).__name__}, not a state_dict")
    return strip_prefix(obj)


def _is_state_dict(d: dict) -> bool:
    return bool(d) and all(isinstance(v, torch.Tensor) for v in d.values())
