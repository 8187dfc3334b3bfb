"""Training configuration: the typed schema (trainers/schema.py), a small YAML file per model, and
`key=value` overrides from the command line.

`load_config("configs/edvr.yaml", ["train.lr=2e-4", "data.loader=png"])` merges the file (and the
file named by its `base:` key, if any, underneath it) and then the overrides onto the schema, and
returns the resolved configuration, an OmegaConf DictConfig read by attribute (`cfg.train.steps`).
The `task` section's schema is the model's recipe's (trainers/recipes.py). An unknown key, a value
of the wrong type or outside its choices is a one-line UsageError naming the key, e.g.
`train.stepz: unknown key; did you mean train.steps?`. Values are YAML 1.2 (only true/false are
booleans, so `train.amp=off` is the string 'off'; `1e-4` is a number).
"""
from __future__ import annotations

import dataclasses
import difflib
import os
import re
import types
import typing
from pathlib import Path
from typing import Any, Mapping, Sequence

import yaml
from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import ConfigKeyError, OmegaConfBaseException

from vsrvfi.core import layout
from vsrvfi.core.atomic import atomic_path
from vsrvfi.core.errors import UsageError
from vsrvfi.pipelines.augment import AugmentOptions
from vsrvfi.pipelines.options import LoaderOptions
from vsrvfi.trainers.recipes import RECIPES, recipe_class
from vsrvfi.trainers.schema import Config, DataConfig

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"


# --------------------------------------------------------------------------------------------- YAML

class _Yaml12Loader(yaml.SafeLoader):
    """YAML with 1.2 scalars: only true/false are booleans (`off` stays a string), 1e-4 is a float."""


_Yaml12Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}
_Yaml12Loader.add_implicit_resolver("tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
                                    list("tTfF"))
_Yaml12Loader.add_implicit_resolver("tag:yaml.org,2002:float",
                                    re.compile(r"^[-+]?[0-9][0-9_]*(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
                                    list("-+0123456789"))


def parse_value(text: str) -> Any:
    """A command-line value as YAML 1.2 ('' is null)."""
    return yaml.load(text, Loader=_Yaml12Loader) if text.strip() else None


def resolve_path(name: str | os.PathLike) -> Path:
    """A config file path, or a bare model name looked up in configs/ ('edvr' -> configs/edvr.yaml)."""
    p = Path(name)
    if p.suffix in (".yaml", ".yml"):
        if not p.exists() and (CONFIG_DIR / p.name).exists():
            return CONFIG_DIR / p.name
        return p
    return CONFIG_DIR / f"{name}.yaml"


def read_yaml(path: Path) -> list[tuple[str, dict]]:
    """(path, mapping) of `path` and of the files under it (its `base:` chain), the deepest base first."""
    if not path.is_file():
        choices = ", ".join(sorted(q.stem for q in CONFIG_DIR.glob("*.yaml") if not q.stem.startswith("_")))
        raise UsageError(f"{path}: no such config (built in: {choices})")
    try:
        data = yaml.load(path.read_text(), Loader=_Yaml12Loader) or {}
    except yaml.YAMLError as exc:
        raise UsageError(f"{path}: not valid YAML ({exc.__class__.__name__})") from None
    if not isinstance(data, dict):
        raise UsageError(f"{path}: expected a mapping at the top level")
    base = data.pop("base", None)
    chain = read_yaml(resolve_path(path.parent / base if not Path(base).is_absolute() else base)) if base else []
    return chain + [(str(path), data)]


# ------------------------------------------------------------------------------------------ loading

def load_config(name: str | os.PathLike, overrides: Sequence[str] = ()) -> DictConfig:
    """The resolved, typed configuration of config file (or built-in model name) `name` with `overrides`."""
    return build_config(read_yaml(resolve_path(name)), overrides)


def to_config(cfg: Mapping | DictConfig) -> DictConfig:
    """A typed configuration from a plain mapping (e.g. a checkpoint's "config"); typed ones pass through."""
    if isinstance(cfg, DictConfig):
        return cfg
    return build_config([("config", dict(cfg))], ())


def build_config(layers: Sequence[tuple[str, Mapping]], overrides: Sequence[str]) -> DictConfig:
    """Merge `layers` ((where, mapping), lowest first) and then `overrides` (key=value) onto the schema."""
    parsed = [_split_override(item) for item in overrides]
    name = None  # the model (its recipe has the `task` schema): the last word on model.name
    for _, data in layers:
        if isinstance(data.get("model"), Mapping) and data["model"].get("name"):
            name = data["model"]["name"]
    for key, raw in parsed:
        if key == "model.name":
            name = raw.strip()
    if not name:
        raise UsageError(f"model.name is not set: start from a built-in config ({', '.join(sorted(RECIPES))}) "
                         "or set model.name in the YAML file")
    recipe = recipe_class(name)
    cfg = OmegaConf.structured(Config(task=recipe.task_schema()))
    for where, data in layers:
        cfg = _merge(cfg, _normalize(dict(data)), f"{where}: ")
    for key, raw in parsed:
        try:
            value = raw if _is_str_field(cfg, key) and raw.strip() not in ("", "null", "~") else parse_value(raw)
        except yaml.YAMLError:
            raise UsageError(f"{key}: {raw!r} is not a valid YAML value") from None
        cfg = _merge(cfg, _normalize(_nest(key, value)), "", key, value)
    _resolve_model(cfg, recipe)
    _check(cfg)
    _resolve_res(cfg)
    OmegaConf.set_readonly(cfg, True)
    return cfg


def save_config(cfg: DictConfig, path: str | os.PathLike) -> None:
    """Write the resolved configuration next to the run's logs (atomically)."""
    with atomic_path(path) as tmp:
        tmp.write_text(OmegaConf.to_yaml(cfg, resolve=True))


def to_dict(cfg: DictConfig) -> dict:
    """The configuration as plain dicts and lists (what checkpoints keep: loadable without the schema)."""
    return OmegaConf.to_container(cfg, resolve=True)


# ---------------------------------------------------------------------------------------- internals

def _split_override(item: str) -> tuple[str, str]:
    if "=" not in item:
        raise UsageError(f"override {item!r}: expected key=value, e.g. train.lr=1e-4")
    key, raw = item.split("=", 1)
    key = key.strip()
    if not key or any(not p for p in key.split(".")):
        raise UsageError(f"override {item!r}: expected key=value, e.g. train.lr=1e-4")
    return key, raw


def _nest(key: str, value: Any) -> dict:
    out: dict = {}
    node = out
    parts = key.split(".")
    for p in parts[:-1]:
        node = node.setdefault(p, {})
    node[parts[-1]] = value
    return out


def _normalize(data: dict) -> dict:
    """data.augment: true/false mean 0.5/0 (AugmentOptions' convention)."""
    aug = (data.get("data") or {}).get("augment") if isinstance(data.get("data"), Mapping) else None
    if isinstance(aug, Mapping):
        data = {**data, "data": {**data["data"], "augment": {
            k: (0.5 if v else 0.0) if isinstance(v, bool) else v for k, v in aug.items()}}}
    return data


def _merge(cfg: DictConfig, data: Mapping, where: str, key: str | None = None, value: Any = None) -> DictConfig:
    """OmegaConf.merge; its errors become one-line UsageErrors (`key`, `value`: the override being merged)."""
    try:
        return OmegaConf.merge(cfg, data)
    except OmegaConfBaseException as exc:
        raise UsageError(where + _describe(exc, cfg, key, value)) from None


def _describe(exc: OmegaConfBaseException, cfg: DictConfig, given: str | None, value: Any) -> str:
    """One line for an omegaconf error: the key, and the nearest valid key or the expected type."""
    key = re.sub(r"\[.*$", "", str(getattr(exc, "full_key", "") or ""))
    if isinstance(exc, ConfigKeyError) or " not in " in str(exc):
        key = given or key
        if key.startswith("task."):
            owners = [n for n, r in sorted(RECIPES.items()) if _declares(r.task_schema, key[5:])]
            if owners:
                return f"{key}: not a {cfg.model.name} key ({', '.join(owners)} only)"
        close = _nearest(key, _all_keys(cfg))
        if close:
            return f"{key}: unknown key; did you mean {close}?"
        known = set(_all_keys(cfg))
        parts = key.split(".")
        parent = next((".".join(parts[:i]) for i in range(len(parts) - 1, 0, -1) if ".".join(parts[:i]) in known), "")
        siblings = [k.rpartition(".")[2] for k in known if k.rpartition(".")[0] == parent]
        return f"{key}: unknown key ({parent or 'the config'} has: {', '.join(sorted(siblings))})"
    if given and given.startswith(key + "."):  # a key under a value
        hint = _field_type(cfg, key)
        return f"{given}: unknown key ({key} is {_type_name(hint) if hint is not None else 'a value'}, not a section)"
    if not key:  # a value where a section is
        key = given or key
    else:
        value = getattr(exc, "value", value)
    hint = _field_type(cfg, key)
    if hint is not None:
        return f"{key}: expected {_type_name(hint)}, got {_show(value)}"
    return f"{key}: {str(exc).splitlines()[0]}"


def _nearest(key: str, keys: list[str]) -> str | None:
    """The valid key `key` was most likely meant to be: a close name in the same section, else the same
    name in another section (train.lr -> optim.lr), else the closest dotted name as deep (trian.steps)."""
    parent, _, leaf = key.rpartition(".")
    same = [k.rpartition(".")[2] for k in keys if k.rpartition(".")[0] == parent]
    close = difflib.get_close_matches(leaf, same, n=1, cutoff=0.7)
    if close:
        return f"{parent}.{close[0]}" if parent else close[0]
    elsewhere = [k for k in keys if k.rpartition(".")[2] == leaf]
    if elsewhere:
        return elsewhere[0]
    if parent in keys:  # the section is right, the name is not close to any of its keys
        return None
    close = difflib.get_close_matches(key, [k for k in keys if k.count(".") == key.count(".")], n=1, cutoff=0.7)
    return close[0] if close else None


def _declares(cls: type, dotted: str) -> bool:
    """Whether dataclass `cls` declares the (dotted) key."""
    for part in dotted.split("."):
        hints = typing.get_type_hints(cls) if dataclasses.is_dataclass(cls) else {}
        if part not in hints:
            return False
        cls = hints[part]
    return True


def _show(value: Any) -> str:
    if isinstance(value, (DictConfig, ListConfig)):
        value = OmegaConf.to_container(value)
    return "null" if value is None else repr(value)


def _all_keys(node: Any, prefix: str = "") -> list[str]:
    """Dotted names of every section and key declared by the schema (free-form dicts not entered)."""
    out = []
    if not isinstance(node, DictConfig) or not dataclasses.is_dataclass(OmegaConf.get_type(node)):
        return out
    for k in node.keys():
        name = f"{prefix}{k}"
        out.append(name)
        out.extend(_all_keys(node._get_node(k), name + "."))
    return out


def _field_type(cfg: DictConfig, key: str) -> Any:
    """The schema's type of dotted `key`, or None when the schema does not declare it."""
    parent, _, leaf = key.rpartition(".")
    node = OmegaConf.select(cfg, parent) if parent else cfg
    if not isinstance(node, DictConfig):
        return None
    cls = OmegaConf.get_type(node)
    if not dataclasses.is_dataclass(cls):
        return None
    return typing.get_type_hints(cls).get(leaf)


def _is_str_field(cfg: DictConfig, key: str) -> bool:
    t = _field_type(cfg, key)
    return t is str or (typing.get_origin(t) in (typing.Union, types.UnionType) and str in typing.get_args(t)
                        and len(typing.get_args(t)) == 2)


def _type_name(t: Any) -> str:
    origin, args = typing.get_origin(t), typing.get_args(t)
    if origin in (typing.Union, types.UnionType):
        rest = [a for a in args if a is not type(None)]
        return " or ".join(_type_name(a) for a in rest) + (" or null" if len(rest) < len(args) else "")
    if origin in (list, typing.List):
        return f"a list of {_type_name(args[0]).split(' ', 1)[1]}s" if args else "a list"
    if origin in (dict, typing.Dict):
        return "a mapping"
    return {int: "an integer", float: "a number", bool: "true or false", str: "a string",
            typing.Any: "any value"}.get(t, "a section" if dataclasses.is_dataclass(t) else str(t))


def _resolve_model(cfg: DictConfig, recipe: type) -> None:
    """model.size: the model's default when null, else checked; task.kind checked against the model."""
    from vsrvfi.models.registry import available, spec

    sizes = [s for n, s in available() if n == recipe.name]
    if cfg.model.size is None:
        cfg.model.size = spec(recipe.name).size
    elif str(cfg.model.size).lower() not in sizes:
        raise UsageError(f"model.size: {cfg.model.size!r} is not a size of {recipe.name} "
                         f"(have: {', '.join(sizes)})")
    cfg.model.name, cfg.model.size = recipe.name, str(cfg.model.size).lower()
    if cfg.task.kind is None:
        cfg.task.kind = recipe.kind
    elif cfg.task.kind != recipe.kind:
        raise UsageError(f"task.kind: {recipe.name} is a {recipe.kind} model, not {cfg.task.kind}")


def _check(node: DictConfig, prefix: str = "") -> None:
    """The schema's `choices` and `min` metadata, and the crop forms, on the merged configuration."""
    cls = OmegaConf.get_type(node)
    for f in dataclasses.fields(cls):
        key, value = f"{prefix}{f.name}", node[f.name]
        if isinstance(value, DictConfig) and dataclasses.is_dataclass(OmegaConf.get_type(value)):
            _check(value, key + ".")
            continue
        choices, low = f.metadata.get("choices"), f.metadata.get("min")
        if choices is not None and value is not None and value not in choices:
            close = difflib.get_close_matches(str(value), [str(c) for c in choices], n=1)
            hint = f"; did you mean {close[0]}?" if close else ""
            raise UsageError(f"{key}: {value!r} is not one of {', '.join(map(str, choices))}{hint}")
        if low is not None and value is not None and value < low:
            raise UsageError(f"{key}: must be at least {low:g}, got {value!r}")
    if cls is DataConfig:
        _check_crop(f"{prefix}crop", node["crop"])
    if f"{prefix}" == "train." and node["val_benchmark"]:
        _check_val_benchmark(node["val_benchmark"])
    if cls is AugmentOptions:
        for name in dataclasses.fields(AugmentOptions):
            if not 0.0 <= node[name.name] <= 1.0:
                raise UsageError(f"{prefix}{name.name}: a probability must be in [0, 1], got {node[name.name]!r}")


_LOADER_RES = LoaderOptions.res  # the loaders' own default, when the data set has no tier yet


def _resolve_res(cfg: DictConfig) -> None:
    """data.res / data.lr_res named correctly; 'auto' becomes a tier the data set has (540p when none)."""
    for key in ("res", "lr_res"):
        value = cfg.data[key]
        if value is None or value == "auto":
            continue
        try:
            layout.resolution_height(value)
        except ValueError:
            raise UsageError(f"data.{key}: {value!r} is not a resolution; use auto, "
                             f"{', '.join(layout.RESOLUTIONS)} or <height>p") from None
    if cfg.data.res == "auto":
        tiers = layout.existing_tiers(cfg.data.dir, cfg.data.loader)
        cfg.data.res = layout.pick_tier(tiers) or _LOADER_RES


def _check_val_benchmark(value: str) -> None:
    """train.val_benchmark is NAME:ROOT with a known set (the layout itself is read when the trainer starts)."""
    from vsrvfi.inference import protocols

    name, sep, root = str(value).partition(":")
    if not sep or not root:
        raise UsageError(f"train.val_benchmark: {value!r} is not NAME:ROOT (e.g. vimeo90k:/data/vimeo_triplet)")
    try:
        protocols.get(name)
    except ValueError as exc:
        raise UsageError(f"train.val_benchmark: {exc}") from None


def _check_crop(key: str, value: Any) -> None:
    if value is None:
        return
    items = list(value) if isinstance(value, ListConfig) else [value]
    if len(items) not in (1, 2) or any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in items) \
            or (len(items) == 1 and isinstance(value, ListConfig)):
        raise UsageError(f"{key}: expected a positive integer (square), [height, width] or null, got {_show(value)}")
