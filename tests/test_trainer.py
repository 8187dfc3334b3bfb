"""The trainer: loss goes down, exact resume, SIGTERM checkpoint, divergence guard, DDP on gloo."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from vsrvfi.models.checkpoint import load_checkpoint, save_checkpoint
from vsrvfi.trainers.config import load_config, to_dict
from vsrvfi.trainers.engine import HISTORY_LEN, Trainer
from vsrvfi.trainers.tasks import make_task

ROOT = Path(__file__).resolve().parent.parent

# Small, fast settings for each model on 2 CPU cores.
MODELS = {
    "vsrnet": ["model.kwargs.flow=tiny", "model.kwargs.residual=true", "data.crop=32"],
    "edvr": ["data.crop=32", "model.kwargs.num_frame=3", "task.tsa_iter=0"],
    "rife": ["data.crop=64"],
    "ifrnet": ["model.size=small", "data.crop=64"],
}


def config(model: str, data_dir: Path, tmp: Path, *extra: str) -> dict:
    return load_config(model, [f"data.dir={data_dir}", "data.res=144p", "data.loader=png", "data.workers=1",
                               "data.batch_size=2", "train.val_frames=4",
                               f"experiment.root={tmp}", "train.log_every=1", *MODELS[model], *extra])


@pytest.mark.parametrize("model", list(MODELS))
def test_loss_decreases_on_a_fixed_batch(model, tiny_data_dir, tmp_path):
    """The training path can learn: the loss falls and every trainable parameter receives a finite,
    non-zero gradient at least once (a module cut off from the loss, or a frozen one, fails)."""
    # The residual VSRNet starts at the bicubic baseline: at 1e-3, Adam's first steps overshoot its small correction.
    lr = "1e-4" if model == "vsrnet" else "1e-3"
    cfg = config(model, tiny_data_dir, tmp_path, f"optim.lr={lr}", "data.augment.hflip=0", "data.augment.vflip=0",
                 "data.augment.rot90=0", "data.augment.reverse=0")
    torch.manual_seed(0)
    task = make_task(cfg)
    batch = next(iter(task.train_loader(epoch=0, seed=0)))
    net = task.build_model()
    opt = task.build_optimizer(net)
    trainable = {n: p for n, p in net.named_parameters() if p.requires_grad}
    reached: set[str] = set()
    losses = []
    for step in range(8):
        loss, _ = task.training_loss(net, batch, step)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        for name, p in trainable.items():
            if p.grad is not None:
                assert torch.isfinite(p.grad).all(), f"{model}: non-finite gradient in {name} at step {step}"
                if p.grad.abs().max() > 0:
                    reached.add(name)
        opt.step()
        losses.append(loss.item())
    assert all(map(torch.isfinite, map(torch.tensor, losses)))
    assert min(losses[-2:]) < losses[0], losses
    missing = sorted(set(trainable) - reached)
    assert not missing, f"{model}: {len(missing)} of {len(trainable)} trainable parameters never got a gradient: {missing[:5]}"


class _Planted:
    """Wraps a task: sends SIGTERM to this process in step `term_at`, or plants a NaN loss the first
    time each of `nan_steps` runs (a rollback replays those steps, then they are fine)."""

    def __init__(self, task, term_at: int | None = None, nan_steps: tuple[int, ...] = ()):
        self._task, self.term_at, self.nan_steps = task, term_at, set(nan_steps)

    def __getattr__(self, name):
        return getattr(self._task, name)

    def training_loss(self, model, batch, step):
        loss, parts = self._task.training_loss(model, batch, step)
        if step == self.term_at:
            os.kill(os.getpid(), signal.SIGTERM)
        if step in self.nan_steps:
            self.nan_steps.discard(step)
            loss = loss * float("nan")
        return loss, parts


def test_resume_reproduces_uninterrupted_run_and_sigterm_checkpoints(tiny_data_dir, tmp_path):
    steps = ["train.steps=6", "train.val_every=0", "train.checkpoint_every=0"]
    full = Trainer(config("vsrnet", tiny_data_dir, tmp_path, *steps), make_task(config("vsrnet", tiny_data_dir, tmp_path)),
                   tmp_path / "full")
    reference = [loss for _, loss in full.fit().history]
    full.close()

    cfg = config("vsrnet", tiny_data_dir, tmp_path, *steps)
    first = Trainer(cfg, _Planted(make_task(cfg), term_at=2), tmp_path / "cut")
    state = first.fit()
    first.close()
    assert state.step == 3  # stopped cleanly after the step in which SIGTERM arrived
    ckpt = load_checkpoint(tmp_path / "cut" / "checkpoints" / "last.pth")
    assert ckpt["state"]["step"] == 3 and ckpt["model_name"] == "vsrnet"

    second = Trainer(cfg, make_task(cfg), tmp_path / "cut")
    resumed = [loss for _, loss in second.fit(resume=True).history]
    second.close()
    assert len(resumed) == 6
    assert resumed == pytest.approx(reference, rel=1e-5, abs=1e-7)


def test_planted_nan_skips_then_rolls_back_with_lower_lr(tiny_data_dir, tmp_path):
    cfg = config("vsrnet", tiny_data_dir, tmp_path, "train.steps=8", "train.val_every=0", "train.checkpoint_every=2",
                 "train.guard_patience=3", "train.guard_lr_factor=0.5", "train.schedule.name=constant")
    trainer = Trainer(cfg, _Planted(make_task(cfg), nan_steps=(3, 4, 5)), tmp_path / "nan")
    lr0 = trainer.optimizer.param_groups[0]["lr"]
    state = trainer.fit()
    trainer.close()
    assert trainer.guard.skipped_total == 3 and trainer.guard.rollbacks == 1
    assert state.lr_scale == 0.5
    assert trainer.optimizer.param_groups[0]["lr"] == pytest.approx(lr0 * 0.5)
    assert all(torch.isfinite(torch.tensor(l)) for _, l in state.history)
    assert all(torch.isfinite(p).all() for p in trainer.model.parameters())


def test_resumes_a_checkpoint_of_the_earlier_format(tiny_data_dir, tmp_path):
    """Checkpoints written before the typed config (builder kwargs under `model_kwargs`, a history of
    every step) still load and resume; new ones say `kwargs`, as converted checkpoints do, and keep
    the resolved configuration, as config.yaml does."""
    import yaml

    from vsrvfi.models.load import load_model

    steps = ["train.val_every=0", "train.checkpoint_every=0"]
    cfg = config("vsrnet", tiny_data_dir, tmp_path, "train.steps=2", *steps)
    first = Trainer(cfg, make_task(cfg), tmp_path / "run")
    first.fit()
    first.close()
    path = tmp_path / "run" / "checkpoints" / "last.pth"
    ckpt = load_checkpoint(path)
    assert ckpt["kwargs"] == {"flow": "tiny", "residual": True, "scale": 4} and "model_kwargs" not in ckpt
    assert ckpt["config"] == to_dict(cfg) == yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())

    meta = load_model(path)[1]
    assert (meta.model, meta.task, meta.step, meta.kwargs["flow"], meta.config) == ("vsrnet", "sr", 2, "tiny", to_dict(cfg))
    assert meta.res == cfg.data.res and meta.metric == {"y_channel": True, "crop_border": 4}

    ckpt["model_kwargs"] = ckpt.pop("kwargs")
    for key in ("task", "step"):  # older checkpoints: the registry gives the task, the training state the step
        del ckpt[key]
    ckpt["state"]["history"] = [(i, 1.0) for i in range(HISTORY_LEN + 10)]
    save_checkpoint(ckpt, path)
    assert load_model(path)[1] == meta
    cfg = config("vsrnet", tiny_data_dir, tmp_path, "train.steps=3", *steps)
    second = Trainer(cfg, make_task(cfg), tmp_path / "run")
    state = second.fit(resume=True)
    second.close()
    assert state.step == 3 and len(state.history) == HISTORY_LEN and state.history[-1][0] == 3


def test_two_process_gloo_ddp_shards_and_trains(tiny_data_dir, tmp_path):
    out = tmp_path / "shards"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           str(ROOT / "tests" / "ddp_probe.py"), str(tiny_data_dir), str(tmp_path), str(out)]
    res = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=300,
                         env={**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'tests'}"})
    assert res.returncode == 0, res.stderr[-3000:]
    seen = [json.loads((out / f"rank{r}.json").read_text()) for r in range(2)]
    a, b = (set(map(tuple, s["samples"])) for s in seen)
    assert a and b and not a & b  # each rank reads its own shard
    assert seen[0]["params"] == pytest.approx(seen[1]["params"])  # DDP kept the replicas identical
    ckpt = load_checkpoint(tmp_path / "ddp" / "checkpoints" / "last.pth")
    assert ckpt["state"]["step"] == 2


def test_evaluate_scores_a_training_checkpoint(tiny_data_dir, tmp_path, capsys):
    """The evaluate command reads a training run's checkpoint (its config gives res and metric) and prints a table."""
    from vsrvfi.tools import evaluate

    cfg = config("vsrnet", tiny_data_dir, tmp_path, "train.steps=2", "task.scale=2", "data.crop=32")
    trainer = Trainer(cfg, make_task(cfg), tmp_path / "run")
    trainer.fit()
    trainer.close()
    out = tmp_path / "eval"
    assert evaluate.cli(["-c", str(tmp_path / "run" / "checkpoints" / "best.pth"), str(tiny_data_dir),
                         "--frames", "3", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "Y (BT.601), border 4 px" in text  # the run's own metric convention (configs/vsrnet.yaml)
    result = json.loads((out / "scores.json").read_text())
    clip = result["clips"][0]
    assert result["model"] == "vsrnet" and clip["clip"] == "tiny-s0003" and clip["frames"] == 3
    assert "/144p/" in result["inputs"][0]  # the resolution the run trained on
    assert 10 < clip["base_psnr"] < 60 and 0 < clip["psnr"] < 60


def test_validation_sample_spans_every_val_clip_and_whole_clips(tiny_data_dir):
    from vsrvfi.inference.evaluate import Convention
    from vsrvfi.trainers.validation import Validator

    v = Validator.of_data_dir(tiny_data_dir, "144p", "sr", Convention(True, 4), frames=6, window=3)
    assert [c.name for c in v.clips] == ["tiny-s0003", "tiny-s0004"] and v.per_clip == 3
    for c in v.clips:  # 3 frames spread over 28 / 24 frames, not the first few
        assert len(c.picks) == 3 and max(c.picks) >= c.total * 2 // 3 and min(c.picks) < c.total // 3
    again = Validator.of_data_dir(tiny_data_dir, "144p", "sr", Convention(True, 4), frames=6, window=3)
    assert [c.picks for c in again.clips] == [c.picks for c in v.clips]  # fixed from one validation to the next


def test_trainer_validation_equals_the_evaluator(tiny_data_dir, tmp_path, capsys):
    """Same frames, same weights: the trainer's logged dB is the one vsr-evaluate reports for best.pth."""
    from vsrvfi.tools import evaluate

    cfg = config("vsrnet", tiny_data_dir, tmp_path, "train.steps=2", "train.val_frames=4",
                 "model.kwargs.residual=true")
    trainer = Trainer(cfg, make_task(cfg), tmp_path / "run")
    trainer.fit()
    result = trainer.validate()
    trainer.close()
    line = result.line()
    assert "on 4 frames of 2 clip(s), full frames, Y (BT.601), border 4 px" in line and "vs bicubic" in line
    assert trainer.state.best_line.startswith("step 2: " + line.split(" [")[0])  # same score, logged at step 2
    out = tmp_path / "eval"
    assert evaluate.cli(["-c", str(tmp_path / "run" / "checkpoints" / "best.pth"), str(tiny_data_dir),
                         "--frames", str(trainer.validator.per_clip), "--out", str(out)]) == 0
    scores = json.loads((out / "scores.json").read_text())
    assert sum(c["frames"] for c in scores["clips"]) == result.frames == 4
    assert scores["mean"]["psnr"] == pytest.approx(result.psnr, abs=1e-9)
    assert scores["mean"]["base_psnr"] == pytest.approx(result.base_psnr, abs=1e-9)


def test_train_speed_benchmark_smoke(tiny_data_dir, tmp_path, capsys):
    from benchmarks import train_speed

    out = tmp_path / "speed"
    assert train_speed.main(["--data", str(tiny_data_dir), "--models", "vsrnet", "--steps", "2", "--warmup", "1",
                             "--out", str(out), "data.res=144p", "data.crop=32", "data.workers=1",
                             "data.batch_size=2", "model.kwargs.flow=tiny", "data.device=cpu"]) == 0
    rows = json.loads(out.with_suffix(".json").read_text())["rows"]
    assert [(r["model"], r["loader"], r["steps"]) for r in rows] == [("vsrnet", "dali", 2), ("vsrnet", "png", 2)]
    assert all(0 <= r["data_share"] <= 1 and r["steps_per_s"] > 0 for r in rows)
    assert out.with_suffix(".png").stat().st_size > 0 and "data share" in capsys.readouterr().out


def test_quality_benchmark_smoke(tiny_data_dir, tmp_path, capsys):
    from benchmarks import quality

    out = tmp_path / "quality"
    assert quality.cli(["--data", str(tiny_data_dir), "--models", "vsrnet", "--steps", "2", "--val-every", "1",
                        "--val-frames", "2", "--set", "data.res=144p", "--set", "data.loader=png",
                        "--set", "data.crop=32", "--set", "data.workers=1", "--out", str(out)]) == 0
    result = json.loads(out.with_suffix(".json").read_text())
    row = result["rows"][0]
    assert [c["step"] for c in row["curve"]] == [0, 1, 2] and row["baseline"] == "bicubic"
    assert row["curve"][0]["psnr"] == pytest.approx(row["curve"][0]["baseline_psnr"], abs=0.01)  # residual: starts at bicubic
    assert "met" in capsys.readouterr().out and out.with_suffix(".png").stat().st_size > 0
