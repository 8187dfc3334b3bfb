"""The overfit check's pieces: EDVR's divergence guard leaves a fresh model alone on the default crop,
the per-step EDVR diagnostics name every parameter's module, and `benchmarks.quality --overfit` trains
and scores on one clip. (That every model's loss falls and every trainable parameter gets a gradient:
tests/test_trainer.py::test_loss_decreases_on_a_fixed_batch.)"""
from __future__ import annotations

import json

import pytest

from vsrvfi.models.registry import build_model
from vsrvfi.trainers.config import load_config
from vsrvfi.trainers.engine import Trainer
from vsrvfi.trainers.tasks import make_task


@pytest.mark.slow
def test_edvr_guard_does_not_skip_at_init_on_the_default_crop(tiny_data_dir, tmp_path):
    """The DCN offset guard must not refuse the first steps of a fresh EDVR-M (5 frames, TSA): refused steps
    at init would hold the model at its bilinear base. The config's crop is BasicSR's 256 px; the tiny
    clips are 144 px high, so the steps run on 128 px crops, the largest they hold."""
    overrides = [f"data.dir={tiny_data_dir}", "data.res=144p", "data.loader=png", "data.workers=1",
                 "data.batch_size=1", "train.steps=3", "train.val_every=0", "train.checkpoint_every=0",
                 f"experiment.root={tmp_path}"]
    default = load_config("edvr", overrides)
    assert default.data.crop == 256 and "num_frame" not in default.model.kwargs  # the recipe this test is about
    cfg = load_config("edvr", overrides + ["data.crop=128"])
    trainer = Trainer(cfg, make_task(cfg), tmp_path / "run")
    try:
        batches = trainer._batches()
        verdicts = [trainer.train_step(next(batches)).verdict for _ in range(3)]
        batches.close()
    finally:
        trainer.close()
    assert verdicts == ["ok"] * 3 and trainer.guard.skipped_total == 0
    assert 0 <= trainer.model.offset_absmean < trainer.model.offset_warn_threshold


def test_edvr_diagnostics_group_every_parameter():
    from benchmarks.edvr_diagnostics import GROUPS, module_group

    net = build_model("edvr", "m", num_frame=3, with_predeblur=True)
    groups = {name: module_group(name) for name, _ in net.named_parameters()}
    assert "other" not in groups.values() and set(groups.values()) == {g for g, _ in GROUPS}
    assert module_group("fusion.weight") == "tsa"  # the 1x1 fusion conv of models without TSA


def test_quality_overfit_trains_and_scores_on_one_clip(tiny_data_dir, tmp_path, capsys):
    from benchmarks import quality

    out = tmp_path / "overfit"
    assert quality.cli(["--data", str(tiny_data_dir), "--overfit", "tiny-s0001", "--models", "vsrnet", "--steps", "2",
                        "--val-every", "1", "--val-frames", "2", "--set", "data.res=144p", "--set", "data.loader=png",
                        "--set", "data.crop=32", "--set", "data.workers=1", "--out", str(out)]) == 0
    result = json.loads(out.with_suffix(".json").read_text())
    row = result["rows"][0]
    assert result["meta"]["overfit_clip"] == "tiny-s0001"
    assert [c["step"] for c in row["curve"]] == [0, 1, 2] and row["clips"] == 1  # scored on the training clip only
    assert "beats_baseline_at" in row and "training clip itself" in capsys.readouterr().out
    assert quality.cli(["--data", str(tiny_data_dir), "--overfit", "no-such-clip", "--models", "vsrnet"]) != 0
    assert "no clip named 'no-such-clip'" in capsys.readouterr().err


def test_quality_scales_rife_warmup_to_the_run():
    """RIFE's config warms up over 2000 steps (the official schedule for 228,300): a quality or overfit run of a
    few hundred steps must warm up over a part of its own steps, or it trains at a fraction of the lr throughout."""
    from benchmarks.quality import model_overrides

    cfg = load_config("rife", model_overrides("rife", "DATA", 240, 40, 2, [], "ROOT", cpu_defaults=True))
    assert cfg.train.schedule.warmup_steps == 12 and cfg.train.steps == 240
    explicit = model_overrides("rife", "DATA", 240, 40, 2, ["train.schedule.warmup_steps=10"], "ROOT", True)
    assert load_config("rife", explicit).train.schedule.warmup_steps == 10  # --set wins
    assert load_config("rife", model_overrides("rife", "DATA", 240, 40, 2, [], "ROOT", False)).train.schedule.warmup_steps == 2000


def test_rife_parts_splits_the_output_into_merged_warps_and_residual(seeded_single_thread):
    """benchmarks.rife_parts: identical frames make blending exact; a fresh RIFE's output differs from its
    merged warps by exactly the residual it reports (the evidence the overfit notes rely on)."""
    import torch

    from benchmarks.rife_parts import rife_parts

    net = build_model("rife", "base").eval()
    img = torch.rand(1, 3, 64, 64)
    parts = rife_parts(net, img, img, img)
    assert parts["blend_db"] > 90  # (img + img) / 2 == img: only the 1e-12 floor of the MSE
    assert parts["residual_levels"] > 0.1 and parts["flow_px"] >= 0 and 0 < parts["mask_mean"] < 1
    assert parts["pred_db"] < parts["blend_db"]


def test_vfi_headroom_oracle_warp_beats_blend_on_a_translation():
    """benchmarks.vfi_headroom: on a textured image shifted 3 px a frame the blend is poor and the oracle warp
    (DIS flow from the true middle frame) is far better; the measured motion is the 6 px between the outer frames."""
    import torch

    from benchmarks.vfi_headroom import headroom

    g = torch.Generator().manual_seed(0)
    base = torch.nn.functional.avg_pool2d(torch.rand(1, 3, 140, 180, generator=g), 5, 1)  # smooth texture
    frames = [base[..., 10:106, 3 * k + 10:3 * k + 138] for k in range(3)]
    r = headroom(*frames)
    assert 5.0 < r["motion_mean_px"] < 7.0
    assert r["oracle_warp_db"] > r["blend_db"] + 5
