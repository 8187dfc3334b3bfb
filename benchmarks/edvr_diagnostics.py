"""Per-step EDVR training diagnostics: why does (or doesn't) EDVR leave its bilinear base?

    python -m benchmarks.edvr_diagnostics --data data/demo/data --steps 300 --out /tmp/edvr_diag.jsonl
    python -m benchmarks.edvr_diagnostics --data DATA --save-batches /tmp/b.pt --batches 40   # for an outside comparison

Trains EDVR through the real trainer (`Trainer.train_step`: guard, rollback, scheduler) and writes one
JSON line per step: the guard's verdict (ok / skip / rollback), the largest DCN offset mean, the
learning rate (after any rollback), the learnt residual's mean |value| (EDVR adds it to the bilinear
upsampling of the centre frame) and the share of pixels where it is under half an 8-bit level, the
loss of the model and of its bilinear base on the same batch, and the gradient norm per module
(extraction, PCD, TSA fusion, reconstruction, upsampling). With `--batches K` the first K batches are
drawn once and cycled (a fixed training set: an overfit test; `--save-batches` and `--save-init` write
them and the initial weights so another implementation can be trained on exactly the same crops from
the same start).
"""
from __future__ import annotations

import itertools
import json
import math
import tempfile
import time
from pathlib import Path
from typing import Sequence

import torch
import torch.nn.functional as F
from tqdm import tqdm

from vsrvfi.core.cli import ArgumentParser, entry_point
from vsrvfi.trainers.config import load_config
from vsrvfi.trainers.distributed import setup_distributed, unwrap
from vsrvfi.trainers.engine import Trainer
from vsrvfi.trainers.tasks import make_task

#: Parameter-name prefixes of each EDVR module, in forward order (the first match names a parameter's group).
GROUPS = (("pcd", ("pcd_align.",)), ("tsa", ("fusion.",)), ("reconstruction", ("reconstruction.",)),
          ("upsampling", ("upconv1.", "upconv2.", "conv_hr.", "conv_last.")),
          ("extraction", ("conv_first.", "feature_extraction.", "conv_l2", "conv_l3", "predeblur.", "conv_1x1.")))
HALF_LEVEL = 0.5 / 255


def module_group(name: str) -> str:
    """The EDVR module a parameter belongs to (GROUPS), 'other' if none."""
    return next((g for g, prefixes in GROUPS if name.startswith(prefixes)), "other")


def grad_norms(model: torch.nn.Module) -> dict[str, float]:
    """L2 norm of the current gradients per module group (0.0 for a group without gradients)."""
    sq: dict[str, float] = {g: 0.0 for g, _ in GROUPS}
    for name, p in model.named_parameters():
        if p.grad is not None:
            sq[module_group(name)] = sq.get(module_group(name), 0.0) + float(p.grad.detach().float().pow(2).sum())
    return {g: math.sqrt(v) for g, v in sq.items()}


class ResidualProbe:
    """Keeps EDVR's last learnt residual (the output of conv_last, before the bilinear base is added)."""

    def __init__(self, model: torch.nn.Module):
        self.last: torch.Tensor | None = None
        self.handle = unwrap(model).conv_last.register_forward_hook(self._hook)

    def _hook(self, module, args, out) -> None:
        self.last = out.detach()

    def stats(self) -> dict[str, float]:
        r = self.last.abs()
        return {"residual_absmean": float(r.mean()), "residual_below_half_level": float((r < HALF_LEVEL).float().mean())}


def base_loss(task, batch: dict) -> float:
    """The training loss of EDVR's bilinear base alone on `batch` (what a zero residual scores)."""
    lr = batch["lr"].float()
    base = F.interpolate(lr[:, lr.shape[1] // 2], scale_factor=task.scale, mode="bilinear", align_corners=False)
    with torch.no_grad():
        return float(task.recipe.criterion(base, batch["hr"].float()))


def diagnose(data: str, steps: int, overrides: Sequence[str], out: Path, fixed_batches: int = 0,
             save_batches: str | None = None, every: int = 1, save_init: str | None = None) -> list[dict]:
    """Train EDVR for `steps` steps through Trainer.train_step and write a JSON line per `every` steps to `out`."""
    rows = []
    with tempfile.TemporaryDirectory() as root:
        cfg = load_config("edvr", [f"data.dir={data}", f"train.steps={steps}", "train.val_every=0",
                                   f"train.checkpoint_every={max(steps // 6, 1)}", "train.log_every=100000",
                                   f"experiment.root={root}", "experiment.name=diag", *overrides])
        task = make_task(cfg)
        trainer = Trainer(cfg, task, Path(root) / "diag", setup_distributed(cfg.train.device))
        trainer._bar = tqdm(total=steps, disable=True)  # periodic() updates it
        probe = ResidualProbe(trainer.model)
        if save_init:  # the initial weights, so another implementation can start from the same point
            torch.save(unwrap(trainer.model).state_dict(), save_init)
        batches = trainer._batches()
        if fixed_batches:
            drawn = [{k: (v.clone() if torch.is_tensor(v) else v) for k, v in b.items()}
                     for b in itertools.islice(batches, fixed_batches)]
            batches.close()
            if save_batches:
                torch.save([{"lr": b["lr"], "hr": b["hr"]} for b in drawn], save_batches)
            batches = itertools.cycle(drawn)
        t0 = time.perf_counter()
        with out.open("w") as f:
            try:
                while trainer.state.step < steps:
                    batch = next(batches)
                    step = trainer.state.step
                    result = trainer.train_step(batch)
                    row = {"step": step, "verdict": result.verdict, "loss": float(result.loss.detach()),
                           "base_loss": base_loss(task, batch),
                           "offset_absmean": float(getattr(unwrap(trainer.model), "offset_absmean", float("nan"))),
                           "lr": trainer.optimizer.param_groups[0]["lr"], "lr_scale": trainer.state.lr_scale,
                           **probe.stats(), **{f"grad_{k}": v for k, v in grad_norms(trainer.model).items()},
                           "seconds": time.perf_counter() - t0}
                    if result.verdict != "rollback":
                        trainer.periodic(result, batch)
                    if step % every == 0 or result.verdict != "ok":
                        rows.append(row)
                        f.write(json.dumps(row) + "\n")
                        f.flush()
            finally:
                if hasattr(batches, "close"):
                    batches.close()
                trainer.close()
    return rows


def summarize(rows: list[dict]) -> str:
    """A few lines: verdict counts, and loss vs base loss, residual, offsets, gradients at the first/last rows."""
    counts = {v: sum(r["verdict"] == v for r in rows) for v in ("ok", "skip", "rollback")}
    lines = [f"steps logged {len(rows)}: " + ", ".join(f"{k} {v}" for k, v in counts.items())]
    head = f"{'step':>5} {'loss/base':>9} {'resid|.|':>9} {'<half lvl':>9} {'offset':>7} {'lr':>9} " + " ".join(
        f"{'g_' + g[:5]:>9}" for g, _ in GROUPS)
    lines.append(head)
    pick = rows if len(rows) <= 12 else [rows[i * (len(rows) - 1) // 11] for i in range(12)]
    for r in pick:
        lines.append(f"{r['step']:>5} {r['loss'] / r['base_loss']:>9.3f} {r['residual_absmean']:>9.5f} "
                     f"{r['residual_below_half_level']:>9.3f} {r['offset_absmean']:>7.2f} {r['lr']:>9.2e} "
                     + " ".join(f"{r['grad_' + g]:>9.3g}" for g, _ in GROUPS))
    lines.append("loss/base: the model's training loss over its bilinear base's on the same batch (< 1: better "
                 "than bilinear); resid|.|: mean |learnt residual|; <half lvl: share of pixels where it rounds away")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    ap = ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, help="a prepared DATA_DIR")
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--batches", type=int, default=0, help="draw this many batches once and cycle them (0: the loader)")
    ap.add_argument("--save-batches", default=None, help="with --batches: save them (torch.save) to this path")
    ap.add_argument("--save-init", default=None, help="save the initial state_dict (torch.save) to this path")
    ap.add_argument("--every", type=int, default=1, help="log every N steps (guard events always)")
    ap.add_argument("--set", action="append", default=[], help="config key=value (repeatable)")
    ap.add_argument("--out", default="edvr_diagnostics.jsonl")
    a = ap.parse_args(argv)
    rows = diagnose(a.data, a.steps, a.set, Path(a.out), a.batches, a.save_batches, a.every, a.save_init)
    print(summarize(rows))
    return 0


cli = entry_point(main, interrupted="the JSON lines written so far are kept")

if __name__ == "__main__":
    raise SystemExit(cli())
