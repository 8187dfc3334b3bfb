"""`vsr-evaluate --benchmark NAME ROOT`: score a checkpoint on a standard test set with its exact protocol.

    vsr-evaluate -c EDVR_L_x4_SR_REDS_official-9f5f5039.pth --model edvr --benchmark reds4 datasets/REDS
    vsr-evaluate -c RIFE/train_log/flownet.pkl --model rife --benchmark vimeo90k vimeo_triplet --save out/
    vsr-evaluate -c best.pth --benchmark snu-film-hard SNU-FILM --precision fp16 --batch 8

Prints the set's table (this run beside the published number of the official model, with its source
and the difference; the precision and device that produced it) and writes scores.json (per frame,
per clip, per set). `--save DIR` also writes every output frame as PNG under the set's own names.
The protocols and their sources: `inference.protocols`, docs/benchmarks.md.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from vsrvfi.core.atomic import atomic_path, check_writable_dir
from vsrvfi.core.errors import UsageError
from vsrvfi.inference import benchmark, protocols
from vsrvfi.inference.options import load_task_model
from vsrvfi.inference.runtime import pick_device
from vsrvfi.trainers.validation import make_runner


def add_args(ap: argparse.ArgumentParser) -> None:
    g = ap.add_argument_group("standard test sets (--benchmark)")
    g.add_argument("--benchmark", nargs=2, metavar=("NAME", "ROOT"),
                   help=f"score a standard set with its official protocol: {', '.join(protocols.PROTOCOLS)}")
    g.add_argument("--batch", type=int, default=0, help="windows/triplets per model call (0: 8 on a GPU, 1 on the CPU)")
    g.add_argument("--save", help="write every output frame as PNG (the set's names) and scores.json here")
    g.add_argument("--make-lr", action="store_true",
                   help="SR sets without their LR folder: make the LR from GT with MATLAB-compatible bicubic")
    g.add_argument("--subset", type=int, default=0,
                   help="score only N frames spread over the set (0: the whole protocol; a subset is labelled)")


def main(a: argparse.Namespace) -> int:
    name, root = a.benchmark
    try:
        protocol = protocols.get(name)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if a.batch < 0 or a.subset < 0:
        raise UsageError("--batch and --subset must be >= 0")
    items = protocols.read(protocol, root, a.make_lr)  # a bad layout fails before any model is loaded
    device = pick_device(a.device)
    model, meta = load_task_model(a, protocol.task)
    name, size = meta.model, meta.size
    try:
        runner = make_runner(protocol.task, model, device, a.precision, a.tile, protocol.flow_scale(name))
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    batch = a.batch or (8 if device.type == "cuda" else 1)
    save = Path(a.save) if a.save else None
    out_dir = save or (Path(a.out) if a.out else Path(a.checkpoint).parent / f"eval-{Path(a.checkpoint).stem}") / protocol.name
    check_writable_dir(out_dir)
    result = benchmark.run(protocol, root, runner, batch, a.subset, a.make_lr, save, items=items)
    print(benchmark.format_table(result, protocol, name, size, protocols.published))
    doc = {"checkpoint": str(a.checkpoint), "model": name, "size": size, "benchmark": protocol.name,
           "root": str(root), "batch": batch,
           "conventions": {sc.label: {"rules": sc.describe(), "source": sc.source} for sc in protocol.scorers},
           "published": {sc.label: vars(p) for sc in protocol.scorers
                         if (p := protocols.published(protocol.name, name, size, sc.label))},
           **result.as_dict()}
    with atomic_path(out_dir / "scores.json") as tmp:
        tmp.write_text(json.dumps(doc, indent=1))
    print(f"{len(result.frames)} frames scored in {result.seconds:.1f} s "
          f"({len(result.frames) / max(result.seconds, 1e-9):.2f} frames/s, {result.precision}); scores.json"
          f"{' and the output frames' if save else ''} in {out_dir}")
    return 0
