"""Learning-rate schedules of the four papers, built from torch's own schedulers (stepped per iteration)."""
from __future__ import annotations

import math
from typing import Any, Mapping

import torch
from torch.optim.lr_scheduler import (CosineAnnealingLR, CosineAnnealingWarmRestarts, CyclicLR, LambdaLR,
                                      LRScheduler)

from vsrvfi.core.errors import UsageError

SCHEDULES = ("constant", "cosine", "warmup_cosine", "cosine_restarts", "cyclic")


def build_scheduler(optimizer: torch.optim.Optimizer, cfg: Any, total_steps: int) -> LRScheduler:
    """The `train.schedule` section (ScheduleConfig or a mapping; null or absent parameters take the
    defaults below): constant, cosine (IFRNet), warmup_cosine (RIFE), cosine_restarts (EDVR), cyclic (VSRNet)."""
    def get(key: str, default: Any) -> Any:
        value = cfg.get(key) if isinstance(cfg, Mapping) else getattr(cfg, key, None)
        return default if value is None else value

    name = get("name", "constant")
    total = max(int(total_steps), 1)
    base = optimizer.param_groups[0]["lr"]
    if name == "constant":
        return LambdaLR(optimizer, lambda step: 1.0)
    if name == "cosine":
        return CosineAnnealingLR(optimizer, T_max=total, eta_min=float(get("eta_min", base * 0.1)))
    if name == "warmup_cosine":
        warmup = int(get("warmup_steps", min(2000, total // 10)))
        floor = float(get("eta_min", base * 0.01)) / base

        def factor(step: int) -> float:
            if step < warmup:
                return (step + 1) / warmup
            t = (step - warmup) / max(total - warmup, 1)
            return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(t, 1.0)))
        return LambdaLR(optimizer, factor)
    if name == "cosine_restarts":
        period = int(get("period", max(total // int(get("restarts", 4)), 1)))
        return CosineAnnealingWarmRestarts(optimizer, T_0=period, eta_min=float(get("eta_min", 1e-7)))
    if name == "cyclic":
        return CyclicLR(optimizer, base_lr=float(get("min_lr", base * 0.1)), max_lr=float(get("max_lr", base)),
                        step_size_up=int(get("step_size", max(total // 8, 1))), mode=get("mode", "triangular"),
                        cycle_momentum=False)
    raise UsageError(f"schedule {name!r}: use {', '.join(SCHEDULES)}")
