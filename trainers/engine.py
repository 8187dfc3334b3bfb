"""The training engine shared by all four models: loop, AMP, DDP, EMA, checkpoints, guard, logging.

Task-specific work (building the model, its loss, prediction, baseline) lives in a task
(trainers/tasks.py) and the model's recipe (trainers/recipes.py); this module only knows the Task
interface and the batch contract, and names no model. `fit` repeats `train_step` (one guarded
optimizer step) and `periodic` (history, logging, validation, checkpoints). Resuming is
exact: each epoch's loader is seeded by (seed, epoch), and a resumed run rebuilds the epoch's loader
and skips the batches the interrupted run had already consumed, with every RNG state restored.
"""
from __future__ import annotations

import collections
import math
import os
import signal
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping

import numpy as np
import torch
import torch.distributed as dist
from omegaconf import DictConfig
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from tqdm import tqdm

from vsrvfi.core.cli import Interrupted
from vsrvfi.core.lock import FolderLock
from vsrvfi.pipelines.bad_clips import BadClip
from vsrvfi.models.checkpoint import CheckpointMeta, load_checkpoint, save_checkpoint
from vsrvfi.inference.evaluate import Convention
from vsrvfi.trainers.config import save_config, to_config, to_dict
from vsrvfi.trainers.distributed import DistInfo, rng_state, seed_everything, set_rng_state, setup_distributed, unwrap
from vsrvfi.trainers.schedules import build_scheduler
from vsrvfi.trainers.step_timer import StepTimer
from vsrvfi.trainers.validation import ValidationResult, Validator

HISTORY_LEN = 1000  # (step, loss) pairs kept in TrainState.history (and checkpoints); the full curve is in tb/


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
    best_line: str = ""            # what the best validation scored, as logged (trainers.validation)
    lr_scale: float = 1.0          # learning-rate factor left by divergence rollbacks
    history: list = field(default_factory=list)  # (step, loss) of the last HISTORY_LEN good steps
    bad_clips: list = field(default_factory=list)  # training clips left out as unreadable (data.on_bad_clip=skip)

    def __post_init__(self) -> None:
        del self.history[:-HISTORY_LEN]  # checkpoints of older versions kept every step

    def record(self, step: int, loss: float) -> None:
        self.history.append((step, loss))
        del self.history[:-HISTORY_LEN]


@dataclass
class StepResult:
    """What one training step did: 'ok', 'skip' (non-finite loss) or 'rollback'; its loss and loss parts."""
    verdict: str
    loss: torch.Tensor
    parts: dict
    data_time: float = 0.0         # seconds from the end of the previous step to the batch being on the device
    step_time: float = 0.0         # seconds from the end of the previous step to the end of this one
    # (both on the training stream's clock with CUDA events: trainers.step_timer)


class StopRequested(Exception):
    """Raised inside the training loop after a signal; `fit` saves and returns (see `Trainer.stop_signal`)."""


class Trainer:
    """Trains `task.build_model()` on `task`'s loaders as `cfg` says (trainers/schema.py has the keys)."""

    def __init__(self, cfg: DictConfig | Mapping, task: Any, run_dir: str | os.PathLike,
                 dist_info: DistInfo | None = None):
        self.cfg = cfg = to_config(cfg)
        self.task = task
        t = cfg.train
        self.dist = dist_info or setup_distributed(t.device)
        self.device = self.dist.device
        self.run_dir = Path(run_dir)
        self.ckpt_dir = self.run_dir / "checkpoints"
        self.seed = int(t.seed)
        seed_everything(self.seed + self.dist.rank)

        model = task.build_model().to(self.device)
        if t.channels_last:
            model = model.to(memory_format=torch.channels_last)
        self.model = model
        self.ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(float(t.ema))) if t.ema else None
        self.optimizer = task.build_optimizer(model)
        self.total_steps = int(t.steps)
        self.scheduler = build_scheduler(self.optimizer, t.schedule, self.total_steps)

        self.amp_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(t.amp)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.amp_dtype is torch.float16)
        self.clip_grad = float(t.clip_grad)
        # (data, step) seconds of the last steps this run, for benchmarks; bounded for long runs
        self.timings: collections.deque[tuple[float, float]] = collections.deque(maxlen=100_000)
        self.guard = DivergenceGuard(int(t.guard_patience), float(t.guard_lr_factor))
        self.state = TrainState()

        self.train_model: nn.Module = model
        if self.dist.world > 1:
            self.train_model = DistributedDataParallel(
                model, device_ids=[self.device.index] if self.device.type == "cuda" else None,
                find_unused_parameters=t.find_unused_parameters)
        if t.compile:
            self.train_model = torch.compile(self.train_model)

        self.writer = None
        self.lock: FolderLock | None = None
        if self.dist.is_main:
            from tensorboardX import SummaryWriter

            # One training per run folder: a second is refused in one line (the kernel frees the lock
            # when this process dies, however it dies). Only the main process writes, so only it locks.
            self.lock = FolderLock(self.run_dir, "the run folder").acquire()
            save_config(cfg, self.run_dir / "config.yaml")
            self.writer = SummaryWriter(str(self.run_dir / "tb"))
        self._stop_signal: int | None = None  # set by SIGINT/SIGTERM during fit()
        self._stop_agreed: int | None = None  # the largest signal any DDP rank got, as of this step's all-reduce
        self._bar: tqdm | None = None
        self.validator: Validator | None = None  # built at the first validation
        self.val_history: list[dict] = []  # this process's validations: step + ValidationResult.as_dict()

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
            **CheckpointMeta(model=self.cfg.model.name, size=self.cfg.model.size, kwargs=self.task.model_kwargs(),
                             task=self.task.kind, step=self.state.step, config=to_dict(self.cfg)).entries(),
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
        """Batches from the current position (epoch, iter_in_epoch) on, across epochs, forever.

        A clip that cannot be read stops training (BadClip, after `fit` saved a checkpoint) or, with
        data.on_bad_clip=skip, is left out from then on: the epoch's loader is rebuilt without it and
        continues at the same batch position, so a resumed run makes the same choice."""
        while True:
            it = self._open_epoch()
            while it is not None:
                try:
                    batch = next(it)
                except StopIteration:
                    break
                except BadClip as exc:
                    self._on_bad_clip(exc)
                    it = self._open_epoch()
                    continue
                try:
                    yield batch
                except GeneratorExit:  # fit is done with the batches: stop the loader's workers now
                    getattr(it, "close", lambda: None)()
                    raise
            self.state.epoch += 1
            self.state.iter_in_epoch = 0

    def _open_epoch(self) -> Iterator[dict] | None:
        """The current epoch's batches after the `iter_in_epoch` already consumed (exact resume), or
        None when the epoch has no more (after a clip was left out)."""
        while True:
            try:
                loader = self.task.train_loader(epoch=self.state.epoch, seed=self.seed,
                                                exclude=tuple(self.state.bad_clips))
                it = iter(loader)
                for _ in range(self.state.iter_in_epoch):
                    next(it)
                return it
            except StopIteration:
                return None
            except BadClip as exc:
                self._on_bad_clip(exc)

    def _on_bad_clip(self, bad: BadClip) -> None:
        """A loader named a clip it cannot read: raise it (data.on_bad_clip=stop; `fit` saves and says so),
        or record it, so the loaders leave it out from now on (skip)."""
        if bad.clip in self.state.bad_clips or self.cfg.data.get("on_bad_clip", "stop") != "skip":
            raise bad
        self.state.bad_clips.append(bad.clip)
        self._log_text(f"step {self.state.step}: skipped clip {bad.clip} from now on: {bad} "
                       f"({len(self.state.bad_clips)} clip(s) skipped)")
        if self.writer is not None:
            self.writer.add_scalar("data/bad_clips", len(self.state.bad_clips), self.state.step)

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
        if self._bar is not None:
            self._bar.n = self.state.step
            self._bar.refresh()
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
        batches = self._batches()
        self._stop_signal = self._stop_agreed = None
        previous_handlers = self._install_signals()
        self._bar = None  # made once the first batch is there: a data set that fails is one clean line
        timer = StepTimer(self.device)  # on the training stream: DALI's own streams are not waited for
        timer.start()
        try:
            while self.state.step < self.total_steps:
                batch = next(batches)
                if self._bar is None:
                    self._bar = tqdm(total=self.total_steps, initial=self.state.step, unit="step",
                                     desc=f"train {self.cfg.model.name}", disable=not self.dist.is_main,
                                     dynamic_ncols=True)
                batch = self.task.to_device(batch, self.device)  # the copy is data time
                timer.batch_ready()
                result = self.train_step(batch)
                if result.verdict == "rollback":
                    timer.start()
                    continue
                result.data_time, result.step_time = timer.step_done()
                self.periodic(result, batch)
                stop = self._stop_signal if self.dist.world == 1 else self._stop_agreed
                if stop is not None:
                    self._stop_signal = stop
                    raise StopRequested
        except BadClip as exc:  # data.on_bad_clip=stop: keep what was trained, say which clip in one line
            saved = self.save("last")
            where = f"checkpoint saved to {saved}" if saved else "checkpoint saved by rank 0"
            raise BadClip(exc.clip, exc.path, f"{exc.problem}; training stopped at step {self.state.step}, "
                                              f"{where}; replace or remove the clip (or set data.on_bad_clip=skip) "
                                              f"and --resume") from None
        except StopRequested:
            self.save("last")
            if self.writer is not None:  # the entry point prints the one line about it (trainers/train.py)
                self.writer.add_text("events", f"stopped by signal {self._stop_signal} at step {self.state.step}; "
                                               f"checkpoint {self.ckpt_dir / 'last.pth'}", self.state.step)
            return self.state
        finally:
            batches.close()  # shuts the loader's workers down now, whatever ended the loop
            if self._bar is not None:
                self._bar.close()
            for s, h in previous_handlers.items():
                signal.signal(s, h)
        val_every = self.cfg.train.val_every
        if not val_every or self.state.step % val_every:
            self.validate_and_save()
        return self.state

    def train_step(self, batch: dict) -> StepResult:
        """One optimizer step on `batch` (moved to the device here), guarded against divergence: a
        non-finite loss (or a recipe's divergence sign) skips the step; repeated ones roll back."""
        batch = self.task.to_device(batch, self.device)
        self.state.iter_in_epoch += 1
        self.train_model.train()
        # The forward pass updates buffers (BatchNorm running statistics) before the loss is checked:
        # a step the guard refuses must not leave them poisoned by its NaN input or exploding values.
        buffers = [b for b in unwrap(self.model).buffers() if b.numel()]
        before = [b.detach().clone() for b in buffers]
        with self._autocast():
            loss, parts = self.task.training_loss(self.train_model, batch, self.state.step)
        ok = bool(torch.isfinite(loss.detach()).all()) and not self.task.diverged(unwrap(self.model))
        ok = ok and all(bool(torch.isfinite(b).all()) for b in buffers if b.is_floating_point())
        verdict = self.guard.check(self._all_ranks_ok(ok))
        self.optimizer.zero_grad(set_to_none=True)
        if verdict != "ok":
            with torch.no_grad():
                for b, saved in zip(buffers, before):
                    b.copy_(saved)
        if verdict == "rollback":
            self._rollback()
            return StepResult(verdict, loss, parts)
        if verdict == "ok":
            self.scaler.scale(loss).backward()
            if self.clip_grad:
                self.scaler.unscale_(self.optimizer)
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.clip_grad)
            self.scaler.step(self.optimizer)
            self.scaler.update()
            if self.ema is not None:
                self.ema.update_parameters(unwrap(self.model))
        else:
            self._log_text(f"step {self.state.step}: skipped (loss {loss.item():.4g}, "
                           f"{self.guard.skipped_in_row} in a row)")
        self.scheduler.step()
        self.state.step += 1
        return StepResult(verdict, loss, parts)

    def periodic(self, result: StepResult, batch: dict) -> None:
        """After a step: timings, loss history, progress bar, logging, validation and checkpoints."""
        t, step = self.cfg.train, self.state.step
        self.timings.append((result.data_time, result.step_time))
        if result.verdict == "ok":
            self.state.record(step, float(result.loss.item()))
        if self.dist.is_main:
            self._bar.update(1)
            self._bar.set_postfix(loss=f"{result.loss.item():.4f}", data=f"{result.data_time * 1e3:.0f}ms",
                                  lr=f"{self.optimizer.param_groups[0]['lr']:.2e}")
            if result.verdict == "ok" and (step % t.log_every == 0 or step == 1):
                self._log_scalars(result, batch)
        if t.val_every and step % t.val_every == 0:
            self.validate_and_save()
        elif t.checkpoint_every and step % t.checkpoint_every == 0:
            self.save("last")

    def _log_scalars(self, result: StepResult, batch: dict) -> None:
        w, s = self.writer, self.state.step
        if w is None:
            return
        data_time, step_time = result.data_time, result.step_time
        w.add_scalar("train/loss", float(result.loss.item()), s)
        for k, v in result.parts.items():
            w.add_scalar(f"train/{k}", float(v), s)
        w.add_scalar("train/lr", self.optimizer.param_groups[0]["lr"], s)
        w.add_scalar("time/data_ms", data_time * 1e3, s)
        w.add_scalar("time/step_ms", step_time * 1e3, s)
        w.add_scalar("time/data_share", data_time / max(step_time, 1e-9), s)
        w.add_scalar("time/frames_per_s", self.task.frames_in(batch) * self.dist.world / max(step_time, 1e-9), s)
        if self.device.type == "cuda":
            w.add_scalar("memory/gpu_max_gb", torch.cuda.max_memory_allocated(self.device) / 2**30, s)

    # ----------------------------------------------------------------------------------- validation

    def _validator(self) -> Validator:
        if self.validator is None:
            t = self.cfg.train
            precision = {"bf16": "bf16", "fp16": "fp16"}.get(t.amp, "fp32") if self.device.type == "cuda" else "fp32"
            self.validator = Validator.of_data_dir(
                self.cfg.data.dir, self.cfg.data.res, self.task.kind, Convention(**self.task.metric_kwargs()),
                frames=int(t.val_frames), window=int(getattr(self.task, "frames", 1)), tile=int(t.val_tile),
                precision=precision, cache_mb=int(t.val_cache_mb))
        return self.validator

    def validate(self) -> ValidationResult | None:
        """Score the model (EMA weights if kept) and the naive baseline on full val frames, as
        `vsr-evaluate` does (trainers.validation). The main process scores; the others wait."""
        result = None
        if self.dist.is_main:
            model = self.ema.module if self.ema is not None else unwrap(self.model)
            try:
                result = self._validator()(model, self.device)
            finally:
                model.train()
            if self.writer is not None:
                for k, v in result.as_dict().items():
                    self.writer.add_scalar(f"val/{k}", v, self.state.step)
                ex = result.example
                if ex is not None:
                    side = torch.from_numpy(np.concatenate([ex.baseline, ex.prediction, ex.target], 1))
                    self.writer.add_image("val/baseline|model|target", side.permute(2, 0, 1), self.state.step)
        if self.dist.world > 1:
            dist.barrier()
        return result

    def validate_and_save(self) -> ValidationResult | None:
        result = self.validate()
        if result is not None:
            self.val_history.append({"step": self.state.step, **result.as_dict()})
            self._log_text(f"step {self.state.step}: {result.line()}")
            if result.psnr > self.state.best_psnr:
                self.state.best_psnr = result.psnr
                self.state.best_line = f"step {self.state.step}: {result.line()}"
                self.save("best")
        self.save("last")
        return result

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None
        if self.lock is not None:
            self.lock.release()
