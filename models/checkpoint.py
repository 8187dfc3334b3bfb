"""Checkpoint I/O shared by the trainer, the converter and the inference tools.

Saving is atomic (temporary name, then rename) so an interrupted save never leaves a truncated file
under the final name. Loading recognises the official layouts: a bare state_dict (RIFE's
`flownet.pkl`, IFRNet's `.pth`), BasicSR's `{'params', 'params_ema'}`, FlowNet2's
`{'state_dict': ...}` tar files, DDP's `module.` prefix, and this project's own
`{'model': ..., 'ema': ...}` training checkpoints.

A project checkpoint also says what it holds: `CheckpointMeta` (model, size, builder kwargs, task,
training step and configuration, converted source). `CheckpointMeta.entries` writes it (the trainer,
vsr-convert) and `CheckpointMeta.read` reads it back (models.load), old layouts included, so no other
code knows the keys.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

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


# --------------------------------------------------------------------------------- checkpoint metadata

@dataclass(frozen=True)
class CheckpointMeta:
    """What a project checkpoint holds, typed: written by `entries`, read by `read` (and nowhere else).

    `config` is the training run's resolved configuration (every key; None for vsr-convert's output);
    `res` and `metric` are the parts of it the evaluation reuses (the run's tier, its PSNR/SSIM
    convention as `{'y_channel', 'crop_border'}`)."""

    model: str                       # registry name, lower case
    size: str | None = None
    kwargs: dict = field(default_factory=dict)  # builder kwargs beyond the size
    task: str | None = None          # 'sr' or 'vfi'
    step: int | None = None          # training step it was saved at (None: converted)
    config: dict | None = None
    source: str | None = None        # vsr-convert: the official checkpoint it came from

    @property
    def res(self) -> str | None:
        """The data set tier the run trained and validated on."""
        return _at(self.config, "data", "res")

    @property
    def metric(self) -> dict | None:
        """The run's metric convention, both keys: {'y_channel': bool, 'crop_border': int}; None if unknown."""
        y, border = _at(self.config, "task", "metric", "y_channel"), _at(self.config, "task", "metric", "crop_border")
        return None if y is None or border is None else {"y_channel": bool(y), "crop_border": int(border)}

    def entries(self) -> dict:
        """The checkpoint's metadata keys, to be stored beside 'model' (and, in training, 'ema', ...)."""
        out: dict[str, Any] = {"model_name": self.model, "size": self.size, "kwargs": dict(self.kwargs),
                               "task": self.task, "step": self.step}
        if self.config is not None:
            out["config"] = self.config
        if self.source is not None:
            out["source"] = self.source
        return out

    @classmethod
    def read(cls, ckpt: Any) -> "CheckpointMeta | None":
        """The metadata of a loaded project checkpoint, None for official layouts (no 'model_name').

        Older checkpoints are read too: builder kwargs under 'model_kwargs', no 'task' (taken from the
        model registry), no 'step' (taken from the training state)."""
        if not (isinstance(ckpt, dict) and isinstance(ckpt.get("model_name"), str)):
            return None
        name, size = ckpt["model_name"].lower(), ckpt.get("size")
        kwargs = ckpt.get("kwargs", ckpt.get("model_kwargs")) or {}
        step = ckpt.get("step")
        if step is None and isinstance(ckpt.get("state"), Mapping):
            step = ckpt["state"].get("step")
        task = ckpt.get("task")
        if task is None:
            from vsrvfi.models.registry import spec

            try:
                task = spec(name, size).task
            except ValueError:  # an unknown model: load_model reports it by name
                task = None
        config = ckpt.get("config")
        return cls(model=name, size=str(size) if size is not None else None, kwargs=dict(kwargs), task=task,
                   step=int(step) if step is not None else None,
                   config=dict(config) if isinstance(config, Mapping) else None, source=ckpt.get("source"))


def _at(d: Mapping | None, *keys: str) -> Any:
    for k in keys:
        if not isinstance(d, Mapping):
            return None
        d = d.get(k)
    return d
