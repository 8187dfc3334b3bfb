"""Load weights into a model from any supported checkpoint: official layouts or this project's own.

`load_pretrained` is the one entry point the trainer, the inference tools and the converter use:
checkpoint I/O and layout detection come from `models.checkpoint`, key renaming from the model's
registered converter, and every mismatch is reported as one line naming the file.

Project checkpoints are `{'model': state_dict, **CheckpointMeta.entries()}` (training checkpoints add
'ema', 'optimizer', ...); `load_model` rebuilds a model from one and returns it with its metadata.
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from vsrvfi.models.checkpoint import CheckpointMeta, extract_state_dict, load_checkpoint
from vsrvfi.models.registry import build_model, convert_state_dict
from vsrvfi.core.errors import CheckpointError

# Buffers that old checkpoints lack and that PyTorch fills in itself (BatchNorm since 0.4.1).
_OPTIONAL_SUFFIXES = ("num_batches_tracked",)


@dataclass
class KeyReport:
    """How a state_dict's keys line up with a model's."""

    missing: list[str] = field(default_factory=list)  # in the model, not in the state_dict
    unexpected: list[str] = field(default_factory=list)  # in the state_dict, not in the model
    mismatched: list[str] = field(default_factory=list)  # in both with different shapes: 'key: ckpt vs model'

    @property
    def ok(self) -> bool:
        return not (self.missing or self.unexpected or self.mismatched)

    def summary(self, limit: int = 3) -> str:
        parts = []
        for label, keys in (("missing", self.missing), ("unexpected", self.unexpected),
                            ("shape-mismatched", self.mismatched)):
            if keys:
                shown = ", ".join(keys[:limit]) + (", ..." if len(keys) > limit else "")
                parts.append(f"{len(keys)} {label} keys ({shown})")
        return "; ".join(parts) or "all keys match"


def compare_keys(model: nn.Module, state_dict: dict[str, torch.Tensor]) -> KeyReport:
    """Missing, unexpected and shape-mismatched keys of `state_dict` against `model.state_dict()`."""
    own = model.state_dict()
    report = KeyReport()
    for key, value in own.items():
        if key not in state_dict:
            if not key.endswith(_OPTIONAL_SUFFIXES):
                report.missing.append(key)
        elif tuple(state_dict[key].shape) != tuple(value.shape):
            report.mismatched.append(f"{key}: {tuple(state_dict[key].shape)} vs {tuple(value.shape)}")
    report.unexpected = [k for k in state_dict if k not in own]
    return report


def read_state_dict(path: str | os.PathLike, name: str, prefer_ema: bool = True) -> tuple[dict, Any]:
    """(state_dict in our key layout, raw checkpoint object) of any supported checkpoint for model `name`."""
    ckpt = load_checkpoint(path)
    return state_dict_of(ckpt, name, path, prefer_ema), ckpt


def state_dict_of(ckpt: Any, name: str, path: str | os.PathLike, prefer_ema: bool = True) -> dict:
    """The weights of an already loaded checkpoint object, renamed to our keys for model `name`."""
    meta = CheckpointMeta.read(ckpt)
    if meta is not None and meta.model != name.lower():
        raise CheckpointError(path, f"checkpoint is for model {meta.model!r}, not {name!r}")
    try:
        state_dict = extract_state_dict(ckpt, prefer_ema=prefer_ema)
    except ValueError as exc:
        raise CheckpointError(path, str(exc)) from None
    return convert_state_dict(name, state_dict)


def apply_state_dict(model: nn.Module, state_dict: dict[str, torch.Tensor], strict: bool = True,
                     source: str | os.PathLike = "<state_dict>", name: str = "") -> KeyReport:
    """Copy matching entries into `model`; with `strict`, any mismatch is a one-line CheckpointError instead."""
    report = compare_keys(model, state_dict)
    if strict and not report.ok:
        what = name or "the model"
        if not any(k in model.state_dict() for k in state_dict):
            raise CheckpointError(source, f"not a checkpoint of {what}: none of its {len(state_dict)} keys belong to it")
        raise CheckpointError(source, f"does not match {what}: {report.summary()}")
    bad = {m.split(":")[0] for m in report.mismatched}
    model.load_state_dict({k: v for k, v in state_dict.items() if k not in bad and k not in report.unexpected},
                          strict=False)
    return report


def load_pretrained(model: nn.Module, path: str | os.PathLike, name: str, strict: bool = True,
                    prefer_ema: bool = True) -> tuple[list[str], list[str]]:
    """Load `path` (official or project layout, converted for model `name`) into `model`.

    Returns (missing, unexpected) key lists; a shape-mismatched key is not loaded and appears in both.
    With `strict` (the default) any mismatch raises CheckpointError('<path>: ...') and nothing is loaded.
    EMA weights are preferred when the checkpoint has them (BasicSR `params_ema`, our `ema`).
    """
    state_dict, _ = read_state_dict(path, name, prefer_ema)
    report = apply_state_dict(model, state_dict, strict, path, name)
    bad = [m.split(":")[0] for m in report.mismatched]
    return report.missing + bad, report.unexpected + bad


def official_config(name: str, state_dict: dict, size: str | None,
                    path: str | os.PathLike) -> tuple[str | None, dict]:
    """(size, builder kwargs) of an official `name` state_dict (our keys), inferred from its shapes.

    A requested `size` that contradicts the weights is a one-line CheckpointError; None when neither says.
    """
    from vsrvfi.models.registry import infer_config

    inferred, kwargs = infer_config(name, state_dict)
    if size and inferred and size.lower() != inferred:
        raise CheckpointError(path, f"holds {name} size {inferred!r}, not {size!r}")
    return size or inferred, kwargs


def load_model(path: str | os.PathLike, name: str | None = None, size: str | None = None,
               prefer_ema: bool = True, **overrides: Any) -> tuple[nn.Module, CheckpointMeta]:
    """(model, its metadata) from any checkpoint, loaded strictly; the model is returned in eval mode.

    A project checkpoint (converted or from training) names its model, size and builder kwargs in its
    `CheckpointMeta`. An official checkpoint needs `name` (rife, ifrnet, edvr, vsrnet); its size and
    kwargs are inferred from the weights' shapes where the model registers an inferer, else `size` or
    the default, and its metadata names it as the source. `overrides` replace builder kwargs (e.g.
    `num_frame`).
    """
    from vsrvfi.models.registry import spec

    ckpt = load_checkpoint(path)
    meta = CheckpointMeta.read(ckpt)
    if meta is not None:
        if name and name.lower() != meta.model:
            raise CheckpointError(path, f"checkpoint is for model {meta.model!r}, not {name!r}")
        if size and meta.size and size.lower() != meta.size.lower():
            raise CheckpointError(path, f"holds {meta.model} size {meta.size!r}, not {size!r}")
        name, size, kwargs = meta.model, size or meta.size, meta.kwargs
        state_dict = state_dict_of(ckpt, name, path, prefer_ema)
    else:
        if not name:
            raise CheckpointError(path, "not a project checkpoint (no model_name): say which model it holds "
                                   "(rife, ifrnet, edvr or vsrnet)")
        name = name.lower()
        state_dict = state_dict_of(ckpt, name, path, prefer_ema)
        size, kwargs = official_config(name, state_dict, size, path)
    try:
        model_spec = spec(name, size)
        model = build_model(name, model_spec.size, **{**kwargs, **overrides})
    except (ValueError, TypeError) as exc:
        raise CheckpointError(path, f"cannot build {name}/{size}: {exc}") from None
    apply_state_dict(model, state_dict, True, path, name)
    if meta is None:
        meta = CheckpointMeta(model=name, size=model_spec.size, kwargs=dict(kwargs), task=model_spec.task,
                              source=str(path))
    else:
        meta = dataclasses.replace(meta, size=model_spec.size, task=meta.task or model_spec.task)
    return model.eval(), meta
