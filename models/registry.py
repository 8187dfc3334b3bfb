"""Build models by name and size, load official or project checkpoints, count parameters.

Each architecture module registers its builders with `@register("name", "size")` and, where the
official key names differ from ours, a converter with `@register_converter("name")`.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Callable

from torch import nn

# Architecture modules that register themselves on import.
_ARCH_MODULES = ("vsrvfi.models.rife", "vsrvfi.models.ifrnet", "vsrvfi.models.edvr", "vsrvfi.models.vsrnet")


@dataclass(frozen=True)
class ModelSpec:
    name: str
    size: str
    task: str  # "sr" or "vfi"
    builder: Callable[..., nn.Module]


_SPECS: dict[tuple[str, str], ModelSpec] = {}
_DEFAULT_SIZE: dict[str, str] = {}
_CONVERTERS: dict[str, Callable[[dict], dict]] = {}
_INFERERS: dict[str, Callable[[dict], tuple[str | None, dict]]] = {}
_loaded = False


def register(name: str, size: str, task: str, default: bool = False):
    """Decorator: register `builder(**kwargs) -> nn.Module` as model `name` of `size`."""
    def wrap(builder: Callable[..., nn.Module]):
        _SPECS[(name.lower(), size.lower())] = ModelSpec(name.lower(), size.lower(), task, builder)
        if default or name.lower() not in _DEFAULT_SIZE:
            _DEFAULT_SIZE[name.lower()] = size.lower()
        return builder
    return wrap


def register_converter(name: str):
    """Decorator: register `convert(state_dict) -> state_dict` mapping official keys to ours."""
    def wrap(fn: Callable[[dict], dict]):
        _CONVERTERS[name.lower()] = fn
        return fn
    return wrap


def register_inferer(name: str):
    """Decorator: register `infer(state_dict) -> (size or None, builder kwargs)` for a converted state_dict."""
    def wrap(fn: Callable[[dict], tuple[str | None, dict]]):
        _INFERERS[name.lower()] = fn
        return fn
    return wrap


def _load_arch_modules() -> None:
    global _loaded
    if not _loaded:
        for mod in _ARCH_MODULES:
            try:
                importlib.import_module(mod)
            except ModuleNotFoundError as exc:
                if exc.name != mod:  # a real missing dependency, not a not-yet-written module
                    raise
        _loaded = True


def available() -> list[tuple[str, str]]:
    """All registered (name, size) pairs."""
    _load_arch_modules()
    return sorted(_SPECS)


def spec(name: str, size: str | None = None) -> ModelSpec:
    _load_arch_modules()
    key = name.lower()
    size = (size or _DEFAULT_SIZE.get(key, "")).lower()
    try:
        return _SPECS[(key, size)]
    except KeyError:
        choices = ", ".join(f"{n}/{s}" for n, s in sorted(_SPECS))
        raise ValueError(f"unknown model {name!r} size {size!r}; available: {choices}") from None


def build_model(name: str, size: str | None = None, **kwargs) -> nn.Module:
    """Build a registered model with random weights."""
    return spec(name, size).builder(**kwargs)


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def convert_state_dict(name: str, state_dict: dict) -> dict:
    """Map an official state_dict's keys onto ours (identity when the layouts already agree)."""
    _load_arch_modules()
    fn = _CONVERTERS.get(name.lower())
    return fn(state_dict) if fn else state_dict


def infer_config(name: str, state_dict: dict) -> tuple[str | None, dict]:
    """Guess (size, builder kwargs) from a state_dict already in our key layout; (None, {}) if unknown."""
    _load_arch_modules()
    fn = _INFERERS.get(name.lower())
    return fn(state_dict) if fn else (None, {})
