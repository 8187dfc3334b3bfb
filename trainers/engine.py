"""The training engine shared by all four models: loop, AMP, DDP, EMA, checkpoints, guard, logging.

Model-specific work (building the model, its loss, prediction, baseline) lives in a task
(trainers/tasks.py); this module only knows the Task interface and the batch contract. Resuming is
exact: each epoch's loader is seeded by (seed, epoch), and a resumed run rebuilds the epoch's loader
and skips the batches the interrupted run had already consumed, with every RNG state restored.
"""
from __future__ import annotations

import collections
import math
import os
import random
import signal
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from tqdm import tqdm

from vsrvfi.core.cli import Interrupted
from vsrvfi.models.checkpoint import load_checkpoint, save_checkpoint
from vsrvfi.models.metrics import psnr, ssim
from vsrvfi.trainers.config import get, save_config
from vsrvfi.trainers.schedules import build_scheduler


# ------------------------------------------------------------------------------------------ devices

@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def setup_distributed(device: str = "auto") -> DistInfo:
    """Join the torchrun process group if there is one (NCCL on GPUs, gloo on CPU)."""
    use_cuda = torch.cuda.is_available() and device in ("auto", "cuda")
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    dev = torch.device(f"cuda:{local}") if use_cuda else torch.device("cpu")
    if use_cuda:
        torch.cuda.set_device(dev)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if use_cuda else "gloo")
    return DistInfo(rank, world, local, dev)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def rng_state() -> dict:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def unwrap(model: nn.Module) -> nn.Module:
    return model.module if isinstance(model, DistributedDataParallel) else getattr(model, "_orig_mod", model)


# ------------------------------------------------------------------------------------------- guard

@dataclass
class DivergenceGuard:
    """Skips steps with a non-finite loss (or a model-reported divergence); after `patience` skips in a
    row, asks for a rollback to the last good checkpoint with the learning rate scaled by `lr_factor`."""

    patience: int = 3
    lr_factor: float = 0.5
    skipped_in_row: int = 0
    skipped_total: int = 0
    rollbacks: int = 0

    def check(self, ok: bool) -> str:
        """'ok', 'skip' or 'rollback', given whether this step's loss is finite and the model sane."""
        if ok:
            self.skipped_in_row = 0
            return "ok"
        self.skipped_in_row += 1
        self.skipped_total += 1
        if self.skipped_in_row >= self.patience:
            self.skipped_in_row = 0
            self.rollbacks += 1
            return "rollback"
        return "skip"


# ------------------------------------------------------------------------------------------ trainer

@dataclass
class TrainState:
    step: int = 0
    epoch: int = 0
    iter_in_epoch: int = 0
    best_psnr: float = -math.inf
    lr_scale: float = 1.0
    history: list = field(default_factory=list)  # (step, loss) of every logged step, for tests and plots


class StopRequested(Exception):
    """Raised inside the training loop after a signal; `fit` saves and returns (see `Trainer.stop_signal`)."""


class Trainer:
    """Trains `task.build_model()` on `task`'s loaders as `cfg` says; see configs/*.yaml for the keys."""

    def __init__(self, cfg: dict, task: Any, run_dir: str | os.PathLike, dist_info: DistInfo | None = None):
        self.cfg, self.task = cfg, task
        self.dist = dist_info or setup_distributed(get(cfg, "train.device", "auto"))
        self.device = self.dist.device
        self.run_dir = Path(run_dir)
        self.ckpt_dir = self.run_dir / "checkpoints"
        self.seed = int(get(cfg, "train.seed", 0))
        seed_everything(self.seed + self.dist.rank)

        model = task.build_model().to(self.device)
        if get(cfg, "train.channels_last", False):
            model = model.to(memory_format=torch.channels_last)
        self.model = model
        self.ema = None
        if get(cfg, "train.ema", 0):
            self.ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(float(get(cfg, "train.ema"))))
        self.optimizer = task.build_optimizer(model)
        self.total_steps = int(get(cfg, "train.steps", 1000))
        self.scheduler = build_scheduler(self.optimizer, get(cfg, "train.schedule", {}), self.total_steps)
        self.base_lrs = [g["lr"] for g in self.optimizer.param_groups]

        amp = str(get(cfg, "train.amp", "off")).lower()
        self.amp_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(amp)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.amp_dtype is torch.float16)
        self.clip_grad = float(get(cfg, "train.clip_grad", 0) or 0)
        # (data, step) seconds of the last steps this run, for benchmarks; bounded for long runs
        self.timings: collections.deque[tuple[float, float]] = collections.deque(maxlen=100_000)
        self.guard = DivergenceGuard(int(get(cfg, "train.guard_patience", 3)), float(get(cfg, "train.guard_lr_factor", 0.5)))
        self.state = TrainState()

        self.train_model: nn.Module = model
        if self.dist.world > 1:
            self.train_model = DistributedDataParallel(
                model, device_ids=[self.device.index] if self.device.type == "cuda" else None,
                find_unused_parameters=bool(get(cfg, "train.find_unused_parameters", False)))
        if get(cfg, "train.compile", False):
            self.train_model = torch.compile(self.train_model)

        self.writer = None
        if self.dist.is_main:
            from tensorboardX import SummaryWriter

            self.run_dir.mkdir(parents=True, exist_ok=True)
            save_config(cfg, self.run_dir / "config.yaml")
            self.writer = SummaryWriter(str(self.run_dir / "tb"))
        self._stop_signal: int | None = None  # set by SIGINT/SIGTERM during fit()
        self._stop_agreed: int | None = None  # the largest signal any DDP rank got, as of this step's all-reduce

    @property
    def stop_signal(self) -> int | None:
        """The signal that stopped the last `fit` early (it saved checkpoints/last.pth first), else None."""
        return self._stop_signal

    # ---------------------------------------------------------------------------------- checkpoints

    def checkpoint_state(self) -> dict:
        return {
            "model": unwrap(self.model).state_dict(),
            "ema": self.ema.module.state_dict() if self.ema is not None else None,
            "ema_n": self.ema.n_averaged if self.ema is not None else None,
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "state": vars(self.state).copy(),
            "guard": vars(self.guard).copy(),
            "rng": rng_state(),
            "model_name": get(self.cfg, "model.name"),
            "size": get(self.cfg, "model.size"),
            "model_kwargs": self.task.model_kwargs(),
            "config": self.cfg,
        }

    def save(self, tag: str = "last") -> Path | None:
        """Write checkpoints/<tag>.pth atomically (main process only)."""
        if not self.dist.is_main:
            return None
        return save_checkpoint(self.checkpoint_state(), self.ckpt_dir / f"{tag}.pth")

    def load(self, path: str | os.PathLike) -> None:
        ckpt = load_checkpoint(path, map_location=self.device)
        unwrap(self.model).load_state_dict(ckpt["model"])
        if self.ema is not None and ckpt.get("ema") is not None:
            self.ema.module.load_state_dict(ckpt["ema"])
            self.ema.n_averaged.copy_(ckpt["ema_n"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.scheduler.load_state_dict(ckpt["scheduler"])
        self.scaler.load_state_dict(ckpt["scaler"])
        self.state = TrainState(**ckpt["state"])
        self.guard = DivergenceGuard(**ckpt["guard"])
        set_rng_state(ckpt["rng"])

    def latest_checkpoint(self) -> Path | None:
        last = self.ckpt_dir / "last.pth"
        return last if last.exists() else None

    # ------------------------------------------------------------------------------------- training

    def _batches(self) -> Iterator[dict]:
        """Batches from the current position (epoch, iter_in_epoch) on, across epochs, forever."""
        while True:
            loader = self.task.train_loader(epoch=self.state.epoch, seed=self.seed, dist_info=self.dist)
            it = iter(loader)
            for _ in range(self.state.iter_in_epoch):  # exact resume: skip what was already consumed
                next(it)
            for batch in it:
                yield batch
            self.state.epoch += 1
            self.state.iter_in_epoch = 0

    def _autocast(self):
        if self.amp_dtype is None:
            return nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def _install_signals(self) -> dict:
        """SIGINT/SIGTERM: finish the step, save and stop; a second one stops at once. Returns the previous handlers."""
        def handler(signum, frame):
            if self._stop_signal is not None:
                raise Interrupted(signum, "a second signal stopped training at once; --resume continues from "
                                          "the last checkpoint saved, if any")
            self._stop_signal = signum

        previous = {}
        for s in (signal.SIGINT, signal.SIGTERM):
            try:
                previous[s] = signal.signal(s, handler)
            except ValueError:  # not in the main thread (e.g. under some test runners)
                pass
        return previous

    def _rollback(self) -> None:
        """Reload the last good checkpoint and lower the learning rate for the rest of the run."""
        factor = self.guard.lr_factor
        lr_scale = self.state.lr_scale * factor
        guard = vars(self.guard).copy()
        last = self.latest_checkpoint()
        if last is not None:
            self.load(last)
        self.guard = DivergenceGuard(**guard)
        self.state.lr_scale = lr_scale
        # Scale what the scheduler computes from, so the schedule's shape is kept at the lower level.
        for attr in ("base_lrs", "max_lrs"):
            if hasattr(self.scheduler, attr):
                setattr(self.scheduler, attr, [v * factor for v in getattr(self.scheduler, attr)])
        for g in self.optimizer.param_groups:
            g["lr"] *= factor
            if "initial_lr" in g:
                g["initial_lr"] *= factor
        self._log_text(f"divergence: rolled back to {last or 'the current weights'}, lr x{lr_scale:g}")

    def _all_ranks_ok(self, ok: bool) -> bool:
        """DDP ranks must agree to skip a step together, or the gradient all-reduce would hang; and to stop
        after the same step when a signal reached some of them (the same all-reduce carries it)."""
        if self.dist.world == 1:
            return ok
        flag = torch.tensor([1.0 if ok else 0.0, -float(self._stop_signal or 0)], device=self.device)
        dist.all_reduce(flag, op=dist.ReduceOp.MIN)
        self._stop_agreed = int(-flag[1].item()) or None
        return bool(flag[0].item())

    def _log_text(self, text: str) -> None:
        if self.dist.is_main:
            tqdm.write(text)
            if self.writer is not None:
                self.writer.add_text("events", text, self.state.step)

    def fit(self, resume: bool | str | os.PathLike = False) -> TrainState:
        """Train until `train.steps`; returns the final state. SIGINT/SIGTERM save and stop cleanly."""
        if resume:
            path = self.latest_checkpoint() if resume is True else Path(resume)
            if path is not None:
                self.load(path)
                self._log_text(f"resumed from {path} at step {self.state.step}")
        log_every = int(get(self.cfg, "train.log_every", 10))
        val_every = int(get(self.cfg, "train.val_every", 500))
        ckpt_every = int(get(self.cfg, "train.checkpoint_every", 500))
        self._stop_signal = self._stop_agreed = None
        previous_handlers = self._install_signals()
        batches = self._batches()
        bar = tqdm(total=self.total_steps, initial=self.state.step, desc=f"train {get(self.cfg, 'model.name')}",
                   unit="step", disable=not self.dist.is_main, dynamic_ncols=True)
        t_prev = time.perf_counter()
        try:
            while self.state.step < self.total_steps:
                batch = next(batches)
                t_data = time.perf_counter()
                batch = self.task.to_device(batch, self.device)
                self.state.iter_in_epoch += 1
                self.train_model.train()
                with self._autocast():
                    loss, parts = self.task.training_loss(self.train_model, batch, self.state.step)
                ok = bool(torch.isfinite(loss.detach()).all()) and not self.task.diverged(unwrap(self.model))
                verdict = self.guard.check(self._all_ranks_ok(ok))
                self.optimizer.zero_grad(set_to_none=True)
                if verdict == "ok":
                    self.scaler.scale(loss).backward()
                    if self.clip_grad:
                        self.scaler.unscale_(self.optimizer)
                        torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.clip_grad)
                    self.scaler.step(self.optimizer)
                    self.scaler.update()
                    if self.ema is not None:
                        self.ema.update_parameters(unwrap(self.model))
                elif verdict == "rollback":
                    self._rollback()
                    bar.n = self.state.step
                    bar.refresh()
                    continue
                else:
                    self._log_text(f"step {self.state.step}: skipped (loss {loss.item():.4g}, "
                                   f"{self.guard.skipped_in_row} in a row)")
                self.scheduler.step()
                self.state.step += 1
                if self.device.type == "cuda":
                    torch.cuda.synchronize(self.device)
                t_end = time.perf_counter()
                data_time, step_time = t_data - t_prev, t_end - t_prev
                t_prev = t_end
                self.timings.append((data_time, step_time))
                if verdict == "ok":
                    self.state.history.append((self.state.step, float(loss.item())))
                if self.dist.is_main:
                    bar.update(1)
                    bar.set_postfix(loss=f"{loss.item():.4f}", data=f"{data_time * 1e3:.0f}ms",
                                    lr=f"{self.optimizer.param_groups[0]['lr']:.2e}")
                    if verdict == "ok" and (self.state.step % log_every == 0 or self.state.step == 1):
                        self._log_scalars(loss, parts, data_time, step_time, batch)
                if val_every and self.state.step % val_every == 0:
                    self.validate_and_save()
                elif ckpt_every and self.state.step % ckpt_every == 0:
                    self.save("last")
                stop = self._stop_signal if self.dist.world == 1 else self._stop_agreed
                if stop is not None:
                    self._stop_signal = stop
                    raise StopRequested
        except StopRequested:
            self.save("last")
            if self.writer is not None:  # the entry point prints the one line about it (trainers/train.py)
                self.writer.add_text("events", f"stopped by signal {self._stop_signal} at step {self.state.step}; "
                                               f"checkpoint {self.ckpt_dir / 'last.pth'}", self.state.step)
            return self.state
        finally:
            bar.close()
            for s, h in previous_handlers.items():
                signal.signal(s, h)
        if not val_every or self.state.step % val_every:
            self.validate_and_save()
        return self.state

    def _log_scalars(self, loss: torch.Tensor, parts: dict, data_time: float, step_time: float, batch: dict) -> None:
        w, s = self.writer, self.state.step
        if w is None:
            return
        w.add_scalar("train/loss", float(loss.item()), s)
        for k, v in parts.items():
            w.add_scalar(f"train/{k}", float(v), s)
        w.add_scalar("train/lr", self.optimizer.param_groups[0]["lr"], s)
        w.add_scalar("time/data_ms", data_time * 1e3, s)
        w.add_scalar("time/step_ms", step_time * 1e3, s)
        w.add_scalar("time/data_share", data_time / max(step_time, 1e-9), s)
        w.add_scalar("time/frames_per_s", self.task.frames_in(batch) * self.dist.world / max(step_time, 1e-9), s)
        if self.device.type == "cuda":
            w.add_scalar("memory/gpu_max_gb", torch.cuda.max_memory_allocated(self.device) / 2**30, s)

    # ----------------------------------------------------------------------------------- validation

    @torch.no_grad()
    def validate(self, max_batches: int | None = None) -> dict:
        """PSNR/SSIM of the model (EMA weights if kept) and of the naive baseline on the val split."""
        model = self.ema.module if self.ema is not None else unwrap(self.model)
        model.eval()
        scores = {"psnr": [], "ssim": [], "baseline_psnr": [], "baseline_ssim": []}
        first = None
        metric_kw = self.task.metric_kwargs()
        for i, batch in enumerate(self.task.val_loader(dist_info=self.dist)):
            if max_batches is not None and i >= max_batches:
                break
            batch = self.task.to_device(batch, self.device)
            with self._autocast():
                pred = self.task.predict(model, batch)
            pred = pred.float().clamp(0, 1)
            target = self.task.target(batch).float()
            base = self.task.baseline(batch).float().clamp(0, 1)
            scores["psnr"].append(psnr(pred, target, **metric_kw))
            scores["ssim"].append(ssim(pred, target, **metric_kw))
            scores["baseline_psnr"].append(psnr(base, target, **metric_kw))
            scores["baseline_ssim"].append(ssim(base, target, **metric_kw))
            if first is None:
                first = (batch, pred)
        result = {}
        for k, v in scores.items():
            t = torch.cat(v) if v else torch.zeros(0)
            if self.dist.world > 1:  # average over all ranks' images
                both = torch.stack([t.sum(), torch.tensor(float(t.numel()))]).to(self.device)
                dist.all_reduce(both)
                result[k] = float(both[0] / both[1].clamp_min(1))
            else:
                result[k] = float(t.mean()) if t.numel() else float("nan")
        if self.writer is not None:
            for k, v in result.items():
                self.writer.add_scalar(f"val/{k}", v, self.state.step)
            if first is not None:
                for name, img in self.task.sample_images(*first).items():
                    self.writer.add_image(f"val/{name}", img.clamp(0, 1), self.state.step)
        return result

    def validate_and_save(self) -> dict:
        result = self.validate(get(self.cfg, "train.val_batches"))
        self._log_text(f"step {self.state.step}: val PSNR {result['psnr']:.2f} dB (baseline "
                       f"{result['baseline_psnr']:.2f}), SSIM {result['ssim']:.4f} "
                       f"(baseline {result['baseline_ssim']:.4f}) [{self.task.metric_convention()}]")
        if result["psnr"] > self.state.best_psnr:
            self.state.best_psnr = result["psnr"]
            self.save("best")
        self.save("last")
        return result

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
