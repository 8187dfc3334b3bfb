"""Training configuration: one small YAML file per model, overridden from the command line.

`load_config("configs/edvr.yaml", ["train.lr=2e-4", "data.loader=png"])` reads the file (and the
file named by its `base:` key, if any, underneath it), applies `dotted.key=value` overrides (values
parsed as YAML, so numbers, booleans and lists work) and returns a plain nested dict.
"""
from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any, Sequence

import yaml

from vsrvfi.core.errors import UsageError
from vsrvfi.core.atomic import atomic_path

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"


def merge(base: dict, over: dict) -> dict:
    """Recursive dict merge; `over` wins."""
    out = copy.deepcopy(base)
    for k, v in over.items():
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else copy.deepcopy(v)
    return out


def resolve_path(name: str | os.PathLike) -> Path:
    """A config file path, or a bare model name looked up in configs/ ('edvr' -> configs/edvr.yaml)."""
    p = Path(name)
    if p.suffix in (".yaml", ".yml"):
        if not p.exists() and (CONFIG_DIR / p.name).exists():
            return CONFIG_DIR / p.name
        return p
    return CONFIG_DIR / f"{name}.yaml"


def read_yaml(path: Path) -> dict:
    if not path.is_file():
        choices = ", ".join(sorted(q.stem for q in CONFIG_DIR.glob("*.yaml") if not q.stem.startswith("_")))
        raise UsageError(f"{path}: no such config (built in: {choices})")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise UsageError(f"{path}: not valid YAML ({exc.__class__.__name__})") from None
    if not isinstance(data, dict):
        raise UsageError(f"{path}: expected a mapping at the top level")
    base = data.pop("base", None)
    if base:
        data = merge(read_yaml(resolve_path(path.parent / base if not Path(base).is_absolute() else base)), data)
    return data


def apply_overrides(cfg: dict, overrides: Sequence[str]) -> dict:
    """Apply `a.b.c=value` overrides; an unknown top-level section is an error (likely a typo)."""
    cfg = copy.deepcopy(cfg)
    for item in overrides:
        if "=" not in item:
            raise UsageError(f"override {item!r}: expected key=value, e.g. train.lr=1e-4")
        key, raw = item.split("=", 1)
        parts = key.strip().split(".")
        if parts[0] not in cfg:
            raise UsageError(f"override {item!r}: unknown section {parts[0]!r} (have: {', '.join(cfg)})")
        node = cfg
        for p in parts[:-1]:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise UsageError(f"override {item!r}: {p!r} is not a section")
        node[parts[-1]] = yaml.safe_load(raw) if raw.strip() else None
    return cfg


def load_config(name: str | os.PathLike, overrides: Sequence[str] = ()) -> dict:
    return apply_overrides(read_yaml(resolve_path(name)), overrides)


def save_config(cfg: dict, path: str | os.PathLike) -> None:
    """Write the resolved configuration next to the run's logs (atomically)."""
    with atomic_path(path) as tmp:
        tmp.write_text(yaml.safe_dump(cfg, sort_keys=False))


def get(cfg: dict, dotted: str, default: Any = None) -> Any:
    node: Any = cfg
    for p in dotted.split("."):
        if not isinstance(node, dict) or p not in node:
            return default
        node = node[p]
    return node
