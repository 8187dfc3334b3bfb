"""Does training beat the naive baseline? Each model trains through the real trainer on a data set and
is scored on full held-out frames along the way, the way `vsr-evaluate` scores (trainers.validation).

    python -m benchmarks.quality --data data/demo/data
    python -m benchmarks.quality --data DATA --models vsrnet,rife --steps vsrnet=2000,rife=800 --val-frames 24
    python -m benchmarks.quality --data data/demo/data --overfit demo4k-s0000     # train and score on one clip

For each model: its configs/<model>.yaml plus `--set` overrides (and the per-model defaults below,
sized for a CPU), `--steps` steps with validation every `--val-every` steps and at step 0 (the
untrained model). Prints a table (model dB vs baseline dB at every validation, the best, minutes of
training), writes JSON and a PNG plot (dB over steps, model solid, baseline dashed). The targets:
SR models above bicubic, VFI models above frame blending, on full held-out frames.

`--overfit CLIP` (a clip name of `--data`, or the path of a prepared clip) is the check that each
model's training path can learn at all: the model trains on that one clip and is scored on full
frames of the same clip, with its own recipe; the table adds the first validation step that beats
the baseline. A model that cannot beat bicubic / blending on its own training clip is a bug.
"""
from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import Sequence

from benchmarks.results import save_results
from vsrvfi.core import layout
from vsrvfi.core.cli import ArgumentParser, entry_point, parse_list
from vsrvfi.core.errors import PathError, UsageError
from vsrvfi.trainers.config import load_config
from vsrvfi.trainers.distributed import setup_distributed
from vsrvfi.trainers.engine import Trainer
from vsrvfi.trainers.tasks import make_task

MODELS = ("vsrnet", "edvr", "rife", "ifrnet")
# Sized for a 2-core CPU: small crops and batches, the small variants, VSRNet predicting a residual
# over bicubic with the tiny flow net at the quick start's lr; schedules over the run's own steps (the
# configs hold the papers' 600k-step ones), no EMA or TSA warm start, no pseudo flow (as measured so far).
CPU_DEFAULTS = {
    "vsrnet": ["model.kwargs.residual=true", "model.kwargs.flow=tiny", "data.crop=96", "optim.lr=1e-3",
               "optim.weight_decay=0", "train.schedule.min_lr=1e-4", "train.schedule.max_lr=1e-3",
               "task.loss=mse"],  # RGB MSE, as the quick start and the numbers measured so far (DALI: mse_y)
    "edvr": ["model.kwargs.num_frame=3", "data.crop=64", "data.batch_size=2", "train.schedule.periods=null",
             "train.schedule.restart_weights=null", "task.tsa_iter=0", "train.ema=0",
             "task.metric.y_channel=true", "task.metric.crop_border=4"],
    "rife": ["data.crop=128", "data.batch_size=4", "train.schedule.world_ref=null"],
    "ifrnet": ["model.size=small", "data.crop=128", "data.batch_size=4", "task.pseudo_flow=none"],
}


def run_schedule(model: str, steps: int) -> list[str]:
    """Schedule overrides scaled to a run of `steps` steps: VSRNet's cyclic half-cycle is an eighth of the run;
    RIFE warms up over a twentieth of it instead of its config's 2000 steps (the official warm-up is 0.9 % of
    228,300 steps; unscaled, a run of a few hundred steps would train at a fraction of the lr throughout)."""
    if model == "vsrnet":
        return [f"train.schedule.step_size={max(steps // 8, 1)}"]
    if model == "rife":
        return [f"train.schedule.warmup_steps={max(steps // 20, 1)}"]
    return []


def model_overrides(model: str, data: str, steps: int, val_every: int, val_frames: int, extra: Sequence[str],
                    root: str, cpu_defaults: bool) -> list[str]:
    """The config overrides of one model's run: the run's own keys, the CPU defaults, then `extra` (wins)."""
    return [f"data.dir={data}", f"train.steps={steps}", f"train.val_every={val_every}",
            f"train.checkpoint_every={val_every}", f"train.val_frames={val_frames}",
            "train.log_every=100000", f"experiment.root={root}", f"experiment.name={model}",
            *(CPU_DEFAULTS[model] + run_schedule(model, steps) if cpu_defaults else []),
            *extra]


def run_model(model: str, data: str, steps: int, val_every: int, val_frames: int, extra: Sequence[str],
              root: str, cpu_defaults: bool) -> dict:
    overrides = model_overrides(model, data, steps, val_every, val_frames, extra, root, cpu_defaults)
    cfg = load_config(model, overrides)
    trainer = Trainer(cfg, make_task(cfg), Path(root) / model, setup_distributed(cfg.train.device))
    t0 = time.perf_counter()
    try:
        first = trainer.validate()  # step 0: the untrained model (a residual model starts at the baseline)
        if first is not None:
            trainer.val_history.append({"step": 0, **first.as_dict()})
            print(f"{model} step 0: {first.line()}", flush=True)
        trainer.fit()
    finally:
        trainer.close()
    curve = trainer.val_history
    best = max(curve, key=lambda r: r["psnr"])
    last = curve[-1]
    return {"model": model, "overrides": overrides, "curve": curve, "best": best, "last": last,
            "baseline": "bicubic" if trainer.task.kind == "sr" else "blend",
            "convention": first.convention if first else "", "frames": last["frames"], "clips": last["clips"],
            "train_minutes": (time.perf_counter() - t0 - sum(r["seconds"] for r in curve)) / 60,
            "val_seconds": sum(r["seconds"] for r in curve)}


def overfit_data_dir(data: str, clip: str, root: str | os.PathLike) -> Path:
    """A DATA_DIR under `root` whose train and val splits are both `clip` (symlinks to its videos and
    PNG frames in every resolution of `data` that has it): train on one clip, score on the same frames.
    `clip` is a clip name of `data` or the path of a prepared clip (DATA/<res>/scenes/<split>/<clip>.mp4)."""
    path = Path(clip)
    if path.suffix == layout.CLIP_EXT and path.is_file():
        data, clip = str(path.resolve().parents[3]), path.stem
    out = Path(root) / "overfit-data"
    found = 0
    for res_dir in sorted(Path(data).iterdir()) if Path(data).is_dir() else []:
        for split in layout.SPLITS:
            video = layout.clip_path(data, res_dir.name, split, clip)
            frames = layout.frames_dir(data, res_dir.name, split, clip)
            for target_split in layout.SPLITS:
                if video.is_file():
                    dst = layout.clip_path(out, res_dir.name, target_split, clip)
                    dst.parent.mkdir(parents=True, exist_ok=True)
                    dst.symlink_to(video.resolve())
                    found += 1
                if frames.is_dir():
                    dst = layout.frames_dir(out, res_dir.name, target_split, clip)
                    dst.parent.mkdir(parents=True, exist_ok=True)
                    dst.symlink_to(frames.resolve(), target_is_directory=True)
    if not found:
        raise PathError(data, f"no clip named {clip!r} in any resolution's train or val split")
    return out


def steps_to_beat(curve: list[dict]) -> int | None:
    """The first validation step after 0 that scores above the baseline (None: none did)."""
    return next((c["step"] for c in curve if c["step"] > 0 and c["psnr"] > c["baseline_psnr"]), None)


def format_overfit_table(rows: list[dict]) -> str:
    head = (f"{'model':<8} {'steps':>6} {'train min':>9} {'baseline dB':>12} {'step-0 dB':>9} {'final dB':>9} "
            f"{'gain':>6} {'beats baseline at':>17} {'best gain':>9}  target")
    lines = [head, "-" * len(head)]
    for r in rows:
        first, last, best = r["curve"][0], r["last"], r["best"]
        step0 = f"{first['psnr']:>9.2f}" if first["step"] == 0 else f"{'-':>9}"
        at = steps_to_beat(r["curve"])
        met = "met" if last["psnr"] > last["baseline_psnr"] else "not met"
        lines.append(f"{r['model']:<8} {last['step']:>6} {r['train_minutes']:>9.1f} {last['baseline_psnr']:>12.2f} "
                     f"{step0} {last['psnr']:>9.2f} {last['psnr'] - last['baseline_psnr']:>+6.2f} "
                     f"{'step ' + str(at) if at is not None else 'never':>17} "
                     f"{best['psnr'] - best['baseline_psnr']:>+9.2f}  {met} (> {r['baseline']})")
    for kind in dict.fromkeys(r["baseline"] for r in rows):
        r = next(r for r in rows if r["baseline"] == kind)
        task = "SR" if kind == "bicubic" else "VFI"
        lines.append(f"{task} scored on {r['frames']} full frames of the training clip itself, {r['convention']}; "
                     "'beats baseline at': the first validation above it")
    return "\n".join(lines)


def format_table(rows: list[dict]) -> str:
    head = (f"{'model':<8} {'steps':>6} {'train min':>9} {'model dB':>9} {'baseline dB':>12} {'gain':>6} "
            f"{'best dB':>8} {'@step':>6} {'frames':>7}  target")
    lines = [head, "-" * len(head)]
    for r in rows:
        last, best = r["last"], r["best"]
        met = "met" if last["psnr"] > last["baseline_psnr"] else "not met"
        lines.append(f"{r['model']:<8} {last['step']:>6} {r['train_minutes']:>9.1f} {last['psnr']:>9.2f} "
                     f"{last['baseline_psnr']:>12.2f} {last['psnr'] - last['baseline_psnr']:>+6.2f} "
                     f"{best['psnr']:>8.2f} {best['step']:>6} {last['frames']:>7}  {met} (> {r['baseline']})")
    for kind in dict.fromkeys(r["baseline"] for r in rows):  # SR (vs bicubic) and VFI (vs blend) score differently
        r = next(r for r in rows if r["baseline"] == kind)
        task = "SR" if kind == "bicubic" else "VFI"
        lines.append(f"{task} scored on full held-out frames, {r['convention']}; 'frames' over {r['clips']} val "
                     "clip(s), the same sample at every validation")
    return "\n".join(lines)


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(rows), figsize=(3.6 * len(rows), 3.2), squeeze=False)
    for ax, r in zip(axes[0], rows):
        steps = [c["step"] for c in r["curve"]]
        ax.plot(steps, [c["psnr"] for c in r["curve"]], "o-", label=r["model"])
        ax.plot(steps, [c["baseline_psnr"] for c in r["curve"]], "--", color="gray", label=r["baseline"])
        ax.set_title(f"{r['model']} ({r['train_minutes']:.0f} min)", fontsize=10)
        ax.set_xlabel("step")
        ax.set_ylabel("PSNR dB, full val frames")
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100, format="png")
    plt.close(fig)


def parse_steps(text: str, models: Sequence[str]) -> dict[str, int]:
    """'300' -> every model 300 steps; 'vsrnet=2000,rife=800' -> per model (the others: 300)."""
    try:
        if "=" not in text:
            return {m: int(text) for m in models}
        given = {k.strip(): int(v) for k, v in (item.split("=", 1) for item in parse_list(text))}
    except ValueError:
        raise UsageError(f"--steps {text!r}: expected a number or model=steps pairs") from None
    unknown = set(given) - set(models)
    if unknown:
        raise UsageError(f"--steps {text!r}: {', '.join(sorted(unknown))} not in --models")
    return {m: given.get(m, 300) for m in models}


def main(argv: Sequence[str] | None = None) -> int:
    ap = ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, help="a prepared DATA_DIR with a val split")
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--steps", default="300",
                    help="training steps: one number for every model, or per model (vsrnet=2000,rife=800)")
    ap.add_argument("--val-every", type=int, default=0, help="steps between validations (0: a sixth of the steps)")
    ap.add_argument("--val-frames", type=int, default=8, help="full frames scored per validation")
    ap.add_argument("--set", action="append", default=[], help="extra key=value for every model")
    ap.add_argument("--no-cpu-defaults", action="store_true", help="train with the configs as they are")
    ap.add_argument("--overfit", metavar="CLIP", default=None,
                    help="train and score on this one clip (a clip name of --data, or a prepared clip's path)")
    ap.add_argument("--out", default=None,
                    help="path stem for .json and .png (default docs/benchmarks/quality, or .../overfit)")
    a = ap.parse_args(argv)
    models = parse_list(a.models)
    unknown = [m for m in models if m not in MODELS]
    if unknown:
        raise UsageError(f"--models: {', '.join(unknown)} unknown (have: {', '.join(MODELS)})")
    steps = parse_steps(a.steps, models)
    table = format_overfit_table if a.overfit else format_table
    rows = []
    with tempfile.TemporaryDirectory() as root:
        data = str(overfit_data_dir(a.data, a.overfit, root)) if a.overfit else a.data
        for model in models:
            rows.append(run_model(model, data, steps[model], a.val_every or max(1, steps[model] // 6), a.val_frames, a.set, root,
                                  not a.no_cpu_defaults))
            print(table(rows[-1:]).splitlines()[2], flush=True)
    print(table(rows))
    if a.overfit:
        for r in rows:
            r["beats_baseline_at"] = steps_to_beat(r["curve"])
    out = a.out or ("docs/benchmarks/overfit" if a.overfit else "docs/benchmarks/quality")
    save_results(out, {"data": a.data, "overfit_clip": a.overfit, "steps": steps,
                          "val_every": {m: a.val_every or max(1, steps[m] // 6) for m in models}, "val_frames": a.val_frames,
                          "set": a.set}, rows, plot)
    return 0


cli = entry_point(main, interrupted="the runs were in a temporary folder and are gone; nothing written")

if __name__ == "__main__":
    raise SystemExit(cli())
