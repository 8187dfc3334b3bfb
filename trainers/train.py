"""Train a model: `vsr-train MODEL|CONFIG [key=value ...] [--resume]` (or `python -m vsrvfi.trainers.train`).

Run it under torchrun for several GPUs or machines (./run.sh does); alone it trains on one device.
MODEL is a built-in config name (vsrnet, edvr, rife, ifrnet) or a YAML path; `key=value` overrides
any config entry (e.g. `train.steps=200 data.loader=png model.size=l`; the keys and their defaults:
trainers/schema.py and trainers/recipes.py). The run lives in experiments/<name>/: config.yaml (the
resolved configuration), tb/ (tensorboard), checkpoints/{last,best}.pth. SIGINT/SIGTERM finish the
current step, save checkpoints/last.pth and stop (exit 128 + signal); `--resume` continues from there.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

from omegaconf import DictConfig

from vsrvfi.core.cli import ArgumentParser, Interrupted, entry_point
from vsrvfi.core.errors import UsageError
from vsrvfi.trainers.config import load_config


def run_dir_for(cfg: DictConfig) -> Path:
    e = cfg.experiment
    return Path(e.root) / (e.name or f"{cfg.model.name}-{cfg.model.size}")


def checked_args(a) -> tuple[DictConfig, Path, bool | Path]:
    """The config, run folder and resume choice, with every problem found before anything heavy starts."""
    cfg = load_config(a.config, a.overrides)
    data_dir = cfg.data.dir
    if not data_dir and not a.check:
        raise UsageError("data.dir is not set: pass data.dir=DATA_DIR (vsr-prepare makes one), "
                         "or use ./run.sh, which prepares the built-in demo")
    if data_dir and not Path(data_dir).is_dir():
        raise UsageError(f"{data_dir}: no such data directory")
    run_dir = run_dir_for(cfg)
    if a.resume is None and (run_dir / "checkpoints" / "last.pth").exists():
        raise UsageError(f"{run_dir}: holds a run already; pass --resume to continue it, "
                         f"or experiment.name=NEW for a new run")
    resume: bool | Path = True if a.resume == "auto" else Path(a.resume) if a.resume else False
    if isinstance(resume, Path) and not resume.is_file():
        raise UsageError(f"{resume}: no such checkpoint file")
    return cfg, run_dir, resume


_PEER_SIGNS = ("Connection closed by peer", "Connection reset by peer", "Broken pipe", "is killed by signal",
               "NCCL communicator was aborted", "Socket Timeout")


def peer_lost(exc: BaseException) -> bool:
    """Whether a training error is the fallout of another process of a DDP run dying (a collective
    that lost its peer; DataLoader workers the launcher stopped while tearing the run down)."""
    import torch.distributed as dist

    if isinstance(exc, getattr(dist, "DistError", ())):
        return True
    return isinstance(exc, RuntimeError) and any(s in str(exc) for s in _PEER_SIGNS)


def _first_line(exc: BaseException) -> str:
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    return (lines[0] if lines else type(exc).__name__)[:200]


def main(argv: Sequence[str] | None = None) -> int:
    ap = ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("config", help="vsrnet | edvr | rife | ifrnet | path/to/config.yaml")
    ap.add_argument("overrides", nargs="*", help="key=value, e.g. train.steps=100")
    ap.add_argument("--resume", nargs="?", const="auto", default=None,
                    help="continue from experiments/<name>/checkpoints/last.pth, or from the given checkpoint")
    ap.add_argument("--check", action="store_true",
                    help="only check the config, the overrides and data.dir (when given), then exit")
    a = ap.parse_intermixed_args(argv)  # overrides may come after --resume (./run.sh adds its own)
    if a.resume and "=" in a.resume and not Path(a.resume).exists():  # `--resume key=value`: an override
        a.overrides.append(a.resume)
        a.resume = "auto"
    cfg, run_dir, resume = checked_args(a)
    if a.check:
        return 0

    import torch.distributed as dist  # the heavy imports, once the arguments are known to be good

    from vsrvfi.trainers.distributed import setup_distributed
    from vsrvfi.trainers.engine import Trainer
    from vsrvfi.trainers.tasks import make_task

    dist_info = setup_distributed(cfg.train.device)
    trainer = Trainer(cfg, make_task(cfg), run_dir, dist_info)
    try:
        state = trainer.fit(resume=resume)
    except Exception as exc:
        if dist_info.world > 1 and peer_lost(exc):  # the launcher names the process that failed first
            raise UsageError(f"rank {dist_info.rank}: stopped because another process of the run stopped "
                             f"({_first_line(exc)}); --resume continues from the last checkpoint") from None
        raise
    finally:
        trainer.close()
        if dist.is_initialized():
            dist.destroy_process_group()
    if trainer.stop_signal is not None:
        if not dist_info.is_main:  # rank 0 says it, once
            return 128 + trainer.stop_signal
        raise Interrupted(trainer.stop_signal, f"stopped at step {state.step} of {trainer.total_steps}; "
                                               f"checkpoint saved to {trainer.ckpt_dir / 'last.pth'}; "
                                               f"--resume continues from it")
    if dist_info.is_main:
        best = f"best.pth at {state.best_line}" if state.best_line else "no validation ran"
        per_clip = trainer.validator.per_clip if trainer.validator else cfg.train.val_frames
        seqs = getattr(trainer.validator, "sequences", 0)  # a packed data set: that many val sequences
        again = (f"{cfg.data.dir} --res {cfg.data.res}{f' --sequences {seqs}' if seqs else ''} --frames {per_clip}"
                 if not cfg.train.val_benchmark else
                 "--benchmark {} {} --subset {}".format(*cfg.train.val_benchmark.split(":", 1), per_clip))
        print(f"done: step {state.step}; {best}\n"
              f"run in {run_dir} (tensorboard --logdir {run_dir / 'tb'}); score it again with "
              f"vsr-evaluate -c {run_dir / 'checkpoints' / 'best.pth'} {again}")
    return 0


# A signal outside the training loop (while loading data, building the model, ...) stops at once.
cli = entry_point(main, interrupted="training stopped; --resume continues from the last checkpoint saved, if any")

if __name__ == "__main__":
    raise SystemExit(cli())
