"""Learning-rate schedules of the four papers, each the official formula of the lr at optimizer step s.

Step s is 0-based: the s-th optimizer step of the run is taken with `lr_at(s)`. Each schedule is the
function the official training code evaluates, with its own off-by-ones (docs/recipes.md):

- warmup_cosine (RIFE, ECCV2022-RIFE train.py `get_learning_rate(step)`): lr * s / W for s < W (so
  step 0 has lr 0), then eta_min + (lr - eta_min) * (1 + cos(pi * (s - W) / (total - W))) / 2.
- cosine (IFRNet, train_vimeo90k.py `get_lr(args, iters)`): eta_min + (lr - eta_min) * (1 + cos(pi * s / total)) / 2.
- cosine_restarts (EDVR, BasicSR `CosineAnnealingRestartLR`): BasicSR's iteration i = s + 1 steps its
  scheduler from i = 2 on, so step s sees `last_epoch` = s; the period holding s is the first whose
  cumulative end is >= s (the lr reaches eta_min *at* a period's end and restarts one step later),
  each period scaled by its restart weight.
- cyclic (VSRNet, DALI video_superres main.py + model/clr.py): triangular between min_lr and max_lr,
  `step_size` steps up (DALI: 2 epochs), starting at min_lr.
- constant.

`world_ref` scales the whole schedule by world size / world_ref (RIFE: lr * world_size / 4).
`build_scheduler` wraps the function in torch's LambdaLR (whose state resumes exactly).
"""
from __future__ import annotations

import bisect
import math
from itertools import accumulate
from typing import Any, Callable, Mapping, Optional

import torch
from torch.optim.lr_scheduler import LambdaLR

from vsrvfi.core.errors import UsageError

SCHEDULES = ("constant", "cosine", "warmup_cosine", "cosine_restarts", "cyclic")


def _get(cfg: Any, key: str, default: Any) -> Any:
    value = cfg.get(key) if isinstance(cfg, Mapping) else getattr(cfg, key, None)
    return default if value is None else value


def restart_periods(cfg: Any, total: int) -> tuple[list[int], list[float]]:
    """cosine_restarts' (periods, restart_weights): the configured ones, else `restarts` equal periods
    covering `total` steps (the last one takes the remainder), weights 1."""
    periods = [int(p) for p in _get(cfg, "periods", [])]
    if not periods and _get(cfg, "period", None):
        period = int(_get(cfg, "period", 1))
        periods = [period] * max(-(-total // period), 1)
    if not periods:
        n = int(_get(cfg, "restarts", 4))
        periods = [max(total // n, 1)] * n
        periods[-1] += max(total - sum(periods), 0)
    weights = [float(w) for w in _get(cfg, "restart_weights", [])] or [1.0] * len(periods)
    if len(weights) != len(periods):
        raise UsageError(f"train.schedule.restart_weights: {len(weights)} weights for {len(periods)} periods")
    if min(periods) < 1:
        raise UsageError("train.schedule.periods: every period must be at least 1 step")
    return periods, weights


def lr_function(cfg: Any, base_lr: float, total_steps: int,
                steps_per_epoch: Optional[Callable[[], int]] = None) -> Callable[[int], float]:
    """lr(s) of the `train.schedule` section (ScheduleConfig or a mapping; null parameters take the
    defaults in trainers/schema.py) for a run of `total_steps` steps starting from lr `base_lr`.
    `steps_per_epoch` is asked only when a schedule counts in epochs (cyclic without step_size)."""
    name = _get(cfg, "name", "constant")
    total = max(int(total_steps), 1)
    base = float(base_lr)
    if name == "constant":
        return lambda s: base
    if name == "cosine":
        eta = float(_get(cfg, "eta_min", base * 0.1))
        return lambda s: (base - eta) * 0.5 * (1.0 + math.cos(s / total * math.pi)) + eta
    if name == "warmup_cosine":
        warmup = int(_get(cfg, "warmup_steps", min(2000, total // 10)))
        eta = float(_get(cfg, "eta_min", base * 0.01))

        def warmup_cosine(s: int) -> float:
            if s < warmup:
                return base * (s / warmup)
            return (base - eta) * (math.cos((s - warmup) / max(total - warmup, 1) * math.pi) * 0.5 + 0.5) + eta
        return warmup_cosine
    if name == "cosine_restarts":
        periods, weights = restart_periods(cfg, total)
        ends = list(accumulate(periods))
        eta = float(_get(cfg, "eta_min", 1e-7))

        def cosine_restarts(s: int) -> float:
            s = min(s, ends[-1])  # past the last period: stay at its end (BasicSR has no lr there)
            i = bisect.bisect_left(ends, s)  # the first period whose cumulative end is >= s
            start = ends[i - 1] if i else 0
            return eta + weights[i] * 0.5 * (base - eta) * (1 + math.cos(math.pi * ((s - start) / periods[i])))
        return cosine_restarts
    if name == "cyclic":
        lo, hi = float(_get(cfg, "min_lr", base * 0.1)), float(_get(cfg, "max_lr", base))
        fixed = _get(cfg, "step_size", None)
        epochs = float(_get(cfg, "step_size_epochs", 2))
        sizes: list[int] = [int(fixed)] if fixed is not None else []

        def step_size() -> int:
            """DALI's stepsize = 2 x train_batches: asked of the loader when first needed (after the
            first step: lr(0) is min_lr whatever the size), then kept."""
            if not sizes:
                per_epoch = steps_per_epoch() if steps_per_epoch is not None else None
                if not per_epoch:
                    raise UsageError("train.schedule.step_size: needed when the number of batches per epoch is unknown")
                sizes.append(max(int(round(epochs * per_epoch)), 1))
            return sizes[0]

        def cyclic(s: int) -> float:
            if s == 0:
                return lo
            size = step_size()
            cycle = math.floor(1 + s / (2 * size))
            return lo + (hi - lo) * max(0.0, 1 - abs(s / size - 2 * cycle + 1))
        return cyclic
    raise UsageError(f"train.schedule.name: {name!r}: use {', '.join(SCHEDULES)}")


def world_factor(cfg: Any, world_size: int) -> float:
    """world size / `world_ref` (RIFE's linear lr scaling), 1 when world_ref is null."""
    ref = _get(cfg, "world_ref", None)
    return 1.0 if ref is None else world_size / float(ref)


def build_scheduler(optimizer: torch.optim.Optimizer, cfg: Any, total_steps: int, world_size: int = 1,
                    steps_per_epoch: Optional[Callable[[], int]] = None) -> "PaperLR":
    """A LambdaLR stepping the optimizer's lr along `lr_function` (times `world_factor`), per iteration.

    The optimizer's own lr is the schedule's base; LambdaLR multiplies it by lr(s) / base, so a
    rollback that scales the scheduler's base_lrs scales the whole schedule."""
    base = optimizer.param_groups[0]["lr"]
    fn = lr_function(cfg, base, total_steps, steps_per_epoch)
    scale = world_factor(cfg, world_size)
    if base <= 0:
        return PaperLR(optimizer, lambda s: 0.0)
    return PaperLR(optimizer, lambda s: fn(s) * scale / base)


class PaperLR(LambdaLR):
    """LambdaLR that refuses, in one line, the state of another scheduler class (a checkpoint written
    before the schedules were the official formulas: its base lrs mean something else)."""

    def load_state_dict(self, state_dict: dict) -> None:
        if "lr_lambdas" not in state_dict:
            raise UsageError("the checkpoint's learning-rate schedule is from an earlier version of the trainer; "
                             "resume it with that version, or start a new run from its weights (model.pretrained=...)")
        super().load_state_dict(state_dict)
