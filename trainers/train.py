"""Train a model: `python -m vsrvfi.trainers.train MODEL|CONFIG [key=value ...] [--resume]`.

Run it under torchrun for several GPUs or machines (./run.sh does); alone it trains on one device.
MODEL is a built-in config name (vsrnet, edvr, rife, ifrnet) or a YAML path; `key=value` overrides
any config entry (e.g. `train.steps=200 data.loader=png model.size=l`; the keys and their defaults:
trainers/schema.py and trainers/recipes.py). The run lives in experiments/<name>/: config.yaml (the
resolved configuration), tb/ (tensorboard), checkpoints/{last,best}.pth.
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Sequence

import torch.distributed as dist
from omegaconf import DictConfig

from vsrvfi.core.cli import run_cli

from vsrvfi.core.errors import UsageError
from vsrvfi.trainers.config import load_config
from vsrvfi.trainers.distributed import setup_distributed
from vsrvfi.trainers.engine import Trainer
from vsrvfi.trainers.tasks import make_task


def run_dir_for(cfg: DictConfig) -> Path:
    e = cfg.experiment
    return Path(e.root) / (e.name or f"{cfg.model.name}-{cfg.model.size}")


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("config", help="vsrnet | edvr | rife | ifrnet | path/to/config.yaml")
    ap.add_argument("overrides", nargs="*", help="key=value, e.g. train.steps=100")
    ap.add_argument("--resume", nargs="?", const="auto", default=None,
                    help="continue from experiments/<name>/checkpoints/last.pth, or from the given checkpoint")
    a = ap.parse_args(argv)
    cfg = load_config(a.config, a.overrides)
    if not cfg.data.dir:
        raise UsageError("data.dir is not set: pass data.dir=DATA_DIR (tools/prepare_data.sh makes one), "
                         "or use ./run.sh, which prepares the built-in demo")
    if not Path(cfg.data.dir).is_dir():
        raise UsageError(f"{cfg.data.dir}: no such data directory")
    dist_info = setup_distributed(cfg.train.device)
    run_dir = run_dir_for(cfg)
    trainer = Trainer(cfg, make_task(cfg), run_dir, dist_info)
    resume: bool | Path = False
    if a.resume is None and (run_dir / "checkpoints" / "last.pth").exists():
        raise UsageError(f"{run_dir}: holds a run already; pass --resume to continue it, "
                         f"or experiment.name=NEW for a new run")
    if a.resume == "auto":
        resume = True
    elif a.resume:
        resume = Path(a.resume)
    try:
        state = trainer.fit(resume=resume)
    finally:
        trainer.close()
        if dist.is_initialized():
            dist.destroy_process_group()
    if dist_info.is_main:
        best = f"best.pth at {state.best_line}" if state.best_line else "no validation ran"
        print(f"done: step {state.step}; {best}\n"
              f"run in {run_dir} (tensorboard --logdir {run_dir / 'tb'}); score it again with "
              f"vsr-evaluate -c {run_dir / 'checkpoints' / 'best.pth'} {cfg.data.dir} --res {cfg.data.res} "
              f"--frames {trainer.validator.per_clip if trainer.validator else cfg.train.val_frames}")
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
