"""Convert an official checkpoint (BasicSR, old EDVR, FlowNet2/DALI, RIFE, IFRNet, ...) into this project's format.

    vsr-convert --model edvr --size l EDVR_L_x4_SR_REDS_official-ca46bd8c.pth edvr_l.pth

The layout is detected (`models.checkpoint.extract_state_dict`), keys are renamed by the model's
registered converter, and builder kwargs (frame count, TSA, ...) are inferred from the weights
where the model registers an inferer; `--set key=value` overrides them. Output:
`{'model': state_dict, **CheckpointMeta.entries()}` (model, size, kwargs, task, source), written
atomically, which `models.load.load_model` rebuilds and `load_pretrained` loads.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import yaml

from vsrvfi.models.checkpoint import CheckpointMeta, load_checkpoint, save_checkpoint
from vsrvfi.models.load import apply_state_dict, compare_keys, official_config, state_dict_of
from vsrvfi.models.registry import available, build_model, count_parameters, spec
from vsrvfi.core.cli import ArgumentParser, entry_point
from vsrvfi.core.errors import UsageError

_SHOW_KEYS = 20


def parse_sets(items: Sequence[str]) -> dict[str, Any]:
    """['num_frame=7', 'with_tsa=false'] -> {'num_frame': 7, 'with_tsa': False} (values parsed as YAML)."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"--set expects key=value, got {item!r}")
        out[key.strip()] = yaml.safe_load(value)
    return out


def convert(src: str | Path, dst: str | Path, name: str, size: str | None = None,
            overrides: dict[str, Any] | None = None, strict: bool = True, prefer_ema: bool = True) -> dict:
    """Convert `src` for model `name` and save it to `dst`; returns the saved checkpoint's metadata and key report."""
    name = name.lower()
    try:
        spec(name, size)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    state_dict = state_dict_of(load_checkpoint(src), name, src, prefer_ema)
    size, kwargs = official_config(name, state_dict, size, src)
    size = (size or spec(name).size).lower()
    kwargs = {**kwargs, **(overrides or {})}
    try:
        model = build_model(name, size, **kwargs)
    except (TypeError, ValueError) as exc:
        raise UsageError(f"cannot build {name}/{size} with {kwargs}: {exc}") from None
    report = compare_keys(model, state_dict)
    if not report.ok and len(report.unexpected) < len(state_dict):  # some overlap: worth listing
        _print_keys(report)
    apply_state_dict(model, state_dict, strict, src, name)  # strict: one-line error after the key listing
    meta = CheckpointMeta(model=name, size=size, kwargs=kwargs, task=spec(name, size).task, source=str(src))
    save_checkpoint({"model": model.state_dict(), **meta.entries()}, dst)
    return {"meta": meta, "parameters": count_parameters(model), "report": report}


def _print_keys(report) -> None:
    for label, keys in (("missing", report.missing), ("unexpected", report.unexpected),
                        ("shape-mismatched", report.mismatched)):
        if keys:
            print(f"{len(keys)} {label} keys:")
            for key in keys[:_SHOW_KEYS]:
                print(f"  {key}")
            if len(keys) > _SHOW_KEYS:
                print(f"  ... and {len(keys) - _SHOW_KEYS} more")


def main(argv: Sequence[str] | None = None) -> int:
    models = sorted({n for n, _ in available()})
    ap = ArgumentParser(prog="vsr-convert", description="Convert an official checkpoint into this project's format.")
    ap.add_argument("--model", required=True, help=f"architecture: {', '.join(models)}")
    ap.add_argument("--size", help="model size (inferred from the weights when possible)")
    ap.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                    help="builder kwarg override, e.g. num_frame=7 (repeatable)")
    ap.add_argument("--non-strict", action="store_true", help="save even if some keys are missing or unexpected")
    ap.add_argument("--no-ema", action="store_true", help="take 'params' rather than 'params_ema' when both exist")
    ap.add_argument("input", help="official checkpoint (.pth, .pkl, .pth.tar)")
    ap.add_argument("output", help="converted checkpoint to write")
    a = ap.parse_args(argv)
    if Path(a.input).resolve() == Path(a.output).resolve():
        raise UsageError("output must differ from input")
    info = convert(a.input, a.output, a.model, a.size, parse_sets(a.sets), strict=not a.non_strict,
                   prefer_ema=not a.no_ema)
    meta = info["meta"]
    kwargs = ", ".join(f"{k}={v}" for k, v in meta.kwargs.items())
    print(f"{meta.model}/{meta.size} ({kwargs}): {info['parameters']:,} parameters; "
          f"{info['report'].summary()}; saved {a.output}")
    return 0


cli = entry_point(main, interrupted="nothing was written")

if __name__ == "__main__":
    raise SystemExit(cli())
