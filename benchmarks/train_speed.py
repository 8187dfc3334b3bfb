"""Training throughput per model and loader: steps/s and the share of each step spent waiting for data.

    python -m benchmarks.train_speed --data data/demo/data
    python -m benchmarks.train_speed --data DATA --models edvr,rife --loaders dali,png --steps 30 --amp bf16

Each (model, loader) pair trains `--warmup` + `--steps` steps through the real trainer (its
configs/<model>.yaml with the overrides below), in one process, one pair after the other; the
warm-up steps are dropped. Data time is the trainer's own (trainers.step_timer): from the end of the
previous step to the batch being on the device, on a GPU measured with CUDA events on the training
stream (so DALI output not yet ready for that stream counts, and DALI's own streams are never waited
for as part of a step); its share is the sum of data time over the sum of step time, the number that
says whether the loader keeps the device busy (the target on a GPU: under 2%). Prints a table, writes
JSON (after every pair) and a PNG plot.
"""
from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path
from typing import Sequence

from benchmarks.results import save_results
from vsrvfi.core.cli import ArgumentParser, entry_point, parse_list
from vsrvfi.core.errors import UsageError
from vsrvfi.trainers.config import load_config, to_dict
from vsrvfi.trainers.distributed import setup_distributed
from vsrvfi.trainers.engine import Trainer
from vsrvfi.trainers.tasks import make_task

MODELS = ("vsrnet", "edvr", "rife", "ifrnet")


def run_pair(model: str, loader: str, data: str, steps: int, warmup: int, extra: Sequence[str], root: str) -> dict:
    """Train one model with one loader for warmup + steps steps; timings of the kept steps."""
    overrides = [f"data.dir={data}", f"data.loader={loader}", f"train.steps={warmup + steps}", "train.val_every=0",
                 "train.checkpoint_every=0", "train.val_frames=2", "train.log_every=100000",
                 f"experiment.root={root}", f"experiment.name={model}-{loader}", *extra]
    cfg = load_config(model, overrides)
    trainer = Trainer(cfg, make_task(cfg), Path(root) / f"{model}-{loader}", setup_distributed(cfg.train.device))
    t0 = time.perf_counter()
    try:
        trainer.fit()
    finally:
        trainer.close()
    kept = list(trainer.timings)[warmup:]
    data = to_dict(cfg)["data"]
    data_t = [d for d, _ in kept]
    step_t = [s for _, s in kept]
    return {
        "model": model, "loader": loader, "steps": len(kept),
        "steps_per_s": len(kept) / sum(step_t),
        "step_ms_median": statistics.median(step_t) * 1e3,
        "data_ms_median": statistics.median(data_t) * 1e3,
        "data_ms_mean": statistics.fmean(data_t) * 1e3,
        "data_share": sum(data_t) / sum(step_t),
        "wall_s": time.perf_counter() - t0,
        "batch": data["batch_size"], "crop": data["crop"], "res": data["res"],
        "device": str(trainer.device), "amp": cfg.train.amp,
    }


def format_table(rows: list[dict]) -> str:
    head = f"{'model':<8} {'loader':<6} {'steps/s':>8} {'step ms':>9} {'data ms':>9} {'data share':>11}"
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(f"{r['model']:<8} {r['loader']:<6} {r['steps_per_s']:>8.2f} {r['step_ms_median']:>9.1f} "
                     f"{r['data_ms_median']:>9.1f} {100 * r['data_share']:>10.1f}%")
    return "\n".join(lines)


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = list(dict.fromkeys(r["model"] for r in rows))
    loaders = list(dict.fromkeys(r["loader"] for r in rows))
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    width = 0.8 / len(loaders)
    for k, loader in enumerate(loaders):
        got = {r["model"]: r for r in rows if r["loader"] == loader}
        xs = [i + k * width for i in range(len(models))]
        axes[0].bar(xs, [got[m]["steps_per_s"] if m in got else 0 for m in models], width, label=loader)
        axes[1].bar(xs, [100 * got[m]["data_share"] if m in got else 0 for m in models], width, label=loader)
    for ax, title in zip(axes, ("training steps/s", "data time share of a step (%)")):
        ax.set_xticks([i + width * (len(loaders) - 1) / 2 for i in range(len(models))], models)
        ax.set_title(title)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> int:
    ap = ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, help="a prepared DATA_DIR (VP9 clips for DALI on the CPU)")
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--loaders", default="dali,png")
    ap.add_argument("--steps", type=int, default=20, help="timed steps per pair")
    ap.add_argument("--warmup", type=int, default=3, help="untimed steps first (loader start, allocator)")
    ap.add_argument("--out", default="docs/benchmarks/train_speed", help="path stem for .json and .png")
    ap.add_argument("overrides", nargs="*", help="config overrides for every pair, e.g. data.crop=128 train.amp=bf16")
    a = ap.parse_args(argv)
    if not Path(a.data).is_dir():
        raise UsageError(f"{a.data}: no such data directory")
    models, loaders = parse_list(a.models), parse_list(a.loaders)
    rows = []
    meta = {"steps": a.steps, "warmup": a.warmup, "overrides": a.overrides, "data": a.data}
    with tempfile.TemporaryDirectory(prefix="train-speed-") as root:
        for model in models:
            for loader in loaders:
                rows.append(run_pair(model, loader, a.data, a.steps, a.warmup, a.overrides, root))
                print(format_table(rows[-1:]).splitlines()[-1], flush=True)
                # after every pair: a run cut short (the GPU suite's time limit) keeps the pairs it finished
                save_results(a.out, meta, rows, plot)
    print()
    print(format_table(rows))
    return 0


cli = entry_point(main, interrupted="no results were written")

if __name__ == "__main__":
    raise SystemExit(cli())
