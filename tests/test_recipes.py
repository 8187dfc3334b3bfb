"""Training recipes as published: every schedule at its boundary steps (values from the official
formulas, written out here), EDVR's TSA warm start at tsa_iter, BasicSR's EMA after one step."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from vsrvfi.trainers.config import load_config
from vsrvfi.trainers.ema import make_ema
from vsrvfi.trainers.recipes import EDVRRecipe, make_recipe
from vsrvfi.trainers.schedules import build_scheduler, lr_function


def lrs_seen(schedule: dict, base: float, total: int, steps: list[int], world: int = 1, per_epoch=None) -> dict:
    """The lr the optimizer holds when it takes each of `steps` (0-based), through the trainer's LambdaLR."""
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=base)
    sched = build_scheduler(opt, schedule, total, world_size=world, steps_per_epoch=per_epoch)
    seen = {}
    for s in range(max(steps) + 1):
        if s in steps:
            seen[s] = opt.param_groups[0]["lr"]
        opt.step()
        sched.step()
    return seen


def close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-20)


def test_rife_warmup_starts_at_zero_and_cosine_ends_at_eta_min():
    # ECCV2022-RIFE train.py: lr(step) = 3e-4 * step / 2000 below 2000, then a cosine to 3e-6 at the last step
    cfg = load_config("rife").train.schedule
    total = 4000
    seen = lrs_seen(cfg, 3e-4, total, [0, 1, 1999, 2000, 3000], world=4)  # the official 4 GPUs
    assert seen[0] == 0.0
    assert close(seen[1], 3e-4 / 2000) and close(seen[1999], 3e-4 * 1999 / 2000) and close(seen[2000], 3e-4)
    assert close(seen[3000], (3e-4 - 3e-6) * 0.5 + 3e-6)  # halfway through the cosine
    assert close(lr_function(cfg, 3e-4, total)(total), 3e-6)
    # lr * world_size / 4: 8 processes train at twice the lr, 1 at a quarter
    assert close(lrs_seen(cfg, 3e-4, total, [2000], world=8)[2000], 6e-4)
    assert close(lrs_seen(cfg, 3e-4, total, [2000], world=1)[2000], 3e-4 / 4) and cfg.world_ref == 4


def test_ifrnet_cosine_from_1e4_to_1e5():
    # IFRNet train_vimeo90k.py: lr = (1e-4 - 1e-5) * 0.5 * (1 + cos(pi * iters / total)) + 1e-5
    cfg = load_config("ifrnet").train.schedule
    total = 1000
    seen = lrs_seen(cfg, 1e-4, total, [0, 1, 500, 999])
    assert close(seen[0], 1e-4) and close(seen[500], 5.5e-5)
    assert close(seen[1], 9e-5 * 0.5 * (1 + math.cos(math.pi / total)) + 1e-5)
    assert close(lr_function(cfg, 1e-4, total)(total), 1e-5)


def basicsr_lr(s: int, periods, weights, base=4e-4, eta=1e-7) -> float:
    """CosineAnnealingRestartLR's lr at last_epoch s (BasicSR's iteration s + 1): the period holding s is
    the first whose cumulative end is >= s."""
    end = 0
    for p, w in zip(periods, weights):
        if s <= end + p:
            return eta + w * 0.5 * (base - eta) * (1 + math.cos(math.pi * (s - end) / p))
        end += p
    raise AssertionError


@pytest.mark.parametrize("config,weights", [("edvr-m-wotsa", [1, 1, 1, 1]), ("edvr-m", [1, 1, 1, 1, 1]),
                                            ("edvr-l", [1, 0.5, 0.5, 0.5, 0.5])])
def test_edvr_cosine_restarts_restart_one_step_after_each_period(config, weights):
    cfg = load_config(config)
    sch = cfg.train.schedule
    periods = list(sch.periods)
    assert list(sch.restart_weights or [1] * len(periods)) == weights and sum(periods) == cfg.train.steps == 600000
    ends = [sum(periods[:i + 1]) for i in range(len(periods))]
    steps = [0, 1] + [e + d for e in ends[:-1] for d in (-1, 0, 1)]
    fn = lr_function(sch, 4e-4, cfg.train.steps)
    for s in steps:
        assert close(fn(s), basicsr_lr(s, periods, weights)), s
    for e in ends[:-1]:  # at a period's end the lr is still the minimum; the restart comes one step later
        assert close(fn(e), 1e-7)
        i = ends.index(e) + 1
        assert close(fn(e + 1), 1e-7 + weights[i] * 0.5 * (4e-4 - 1e-7) * (1 + math.cos(math.pi / periods[i])))
    assert close(fn(0), 4e-4)
    seen = lrs_seen({"name": "cosine_restarts", "periods": [3, 5], "restart_weights": [1, 0.5], "eta_min": 1e-7},
                    4e-4, 8, [0, 3, 4])
    assert close(seen[3], 1e-7) and close(seen[4], 1e-7 + 0.25 * (4e-4 - 1e-7) * (1 + math.cos(math.pi / 5)))


def test_vsrnet_cyclic_is_the_dali_triangle_of_two_epochs():
    # DALI video_superres: lr = min + (max - min) * max(0, 1 - |it/ss - 2 floor(1 + it/(2 ss)) + 1|), ss = 2 epochs
    cfg = load_config("vsrnet").train.schedule
    assert (cfg.min_lr, cfg.max_lr, cfg.step_size, cfg.step_size_epochs) == (1e-6, 1e-5, None, 2)
    seen = lrs_seen(cfg, 1e-5, 100, [0, 5, 10, 15, 20, 30], per_epoch=lambda: 5)  # ss = 10 steps
    assert close(seen[0], 1e-6) and close(seen[10], 1e-5) and close(seen[20], 1e-6) and close(seen[30], 1e-5)
    assert close(seen[5], 5.5e-6) and close(seen[15], 5.5e-6)


def test_edvr_tsa_unfreezes_exactly_at_tsa_iter():
    cfg = load_config("edvr-m", ["model.pretrained=null", "model.kwargs.num_frame=3"])
    tsa_iter = int(cfg.task.tsa_iter)
    assert tsa_iter == 50000
    # BasicSR iteration i = step + 1: iterations 1 .. tsa_iter-1 fusion only, iteration tsa_iter everything
    assert EDVRRecipe.fusion_only(0, tsa_iter) and EDVRRecipe.fusion_only(tsa_iter - 2, tsa_iter)
    assert not EDVRRecipe.fusion_only(tsa_iter - 1, tsa_iter)
    recipe = make_recipe(cfg)
    from vsrvfi.models.registry import build_model

    model = build_model("edvr", "m", **recipe.model_kwargs())
    recipe.before_step(model, tsa_iter - 2)  # iteration tsa_iter - 1
    assert {n.split(".")[0] for n, p in model.named_parameters() if p.requires_grad} == {"fusion"}
    recipe.before_step(model, tsa_iter - 1)  # iteration tsa_iter
    assert all(p.requires_grad for p in model.parameters())


def test_ema_first_update_blends_as_basicsr():
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 2)
    w0 = model.weight.detach().clone()
    ema = make_ema(model, 0.999)
    with torch.no_grad():
        model.weight.add_(1.0)
    ema.update_parameters(model)
    # BasicSR: net_g_ema starts as a copy, then ema = 0.999 ema + 0.001 w after every step (torch's AveragedModel
    # would copy w at its first update)
    assert torch.allclose(ema.module.weight, 0.999 * w0 + 0.001 * (w0 + 1.0), atol=1e-7)
    assert not torch.allclose(ema.module.weight, model.weight)
    assert load_config("edvr").train.ema == 0.999 and load_config("edvr-m-wotsa").train.ema == 0.999


# ------------------------------------------------------------------------------- IFRNet pseudo flow

def _smooth(shape, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(shape[:-2] + (shape[-2] // 4, shape[-1] // 4), generator=g)
    return torch.nn.functional.interpolate(x, size=shape[-2:], mode="bilinear", align_corners=True)


@pytest.mark.parametrize("flags", [(0, 0, 0, 0, 0), (1, 0, 0, 0, 0), (0, 1, 0, 0, 0), (0, 0, 1, 0, 0),
                                   (0, 0, 0, 1, 0), (1, 1, 1, 1, 1)])
def test_file_flow_follows_the_frames_augmentations(flags):
    from vsrvfi.models.warp import backward_warp
    from vsrvfi.pipelines.augment import apply_flags
    from vsrvfi.trainers.pseudo_flow import augment_flow

    img0, img1 = _smooth((1, 3, 24, 24), 1), _smooth((1, 3, 24, 24), 2)
    flow = (_smooth((1, 4, 24, 24), 3) - 0.5) * 6  # t->0 | t->1, pixels
    # a middle frame each flow explains exactly: imgt = warp(img0, f_t0); the second target: warp(img1, f_t1)
    gt0, gt1 = backward_warp(img0, flow[:, :2]), backward_warp(img1, flow[:, 2:])
    sample = {"frames": torch.cat([img0, img1]), "target": torch.cat([gt0, gt1]), "timesteps": torch.tensor([0.5, 0.5])}
    aug = apply_flags(sample, flags, "vfi")
    f = augment_flow(flow[0], flags)[None]
    a0, a1 = aug["frames"][0:1], aug["frames"][1:2]
    want0, want1 = (aug["target"][1:2], aug["target"][0:1]) if flags[3] else (aug["target"][0:1], aug["target"][1:2])
    assert torch.allclose(backward_warp(a0, f[:, :2]), want0, atol=1e-5)
    assert torch.allclose(backward_warp(a1, f[:, 2:]), want1, atol=1e-5)


def test_flo_files_round_trip_and_bad_files_are_one_line(tmp_path):
    from vsrvfi.core.errors import DataError
    from vsrvfi.trainers.pseudo_flow import read_flo, write_flo

    flow = np.random.default_rng(0).normal(size=(5, 7, 2)).astype(np.float32)
    write_flo(tmp_path / "a.flo", flow)
    raw = (tmp_path / "a.flo").read_bytes()
    assert raw[:4] == b"PIEH" and np.frombuffer(raw, np.int32, 2, 4).tolist() == [7, 5]  # width, height
    assert np.array_equal(read_flo(tmp_path / "a.flo"), flow)
    (tmp_path / "b.flo").write_bytes(raw[:30])
    with pytest.raises(DataError, match="b.flo: truncated"):
        read_flo(tmp_path / "b.flo")


def test_ifrnet_distils_by_default_and_from_files(tmp_path):
    from vsrvfi.models.registry import build_model
    from vsrvfi.trainers.pseudo_flow import flow_dir, write_flo

    dis = make_recipe(load_config("ifrnet", ["model.size=small"]))
    assert dis.labeler is not None and "DIS" in dis.notes()[0]  # the fallback, said at start
    torch.manual_seed(0)
    model = build_model("ifrnet", "small")
    img0, img1, gt = torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32)
    out = model(img0, img1, torch.full((2,), 0.5), gt=gt)
    _, parts = dis.loss(out, img0, img1, gt)
    assert set(parts) == {"rec", "geo", "distill"} and parts["distill"] > 0

    rng = np.random.default_rng(1)
    full = {("a-s0000", 4): rng.normal(size=(40, 48, 4)).astype(np.float32),
            ("b-s0001", 0): rng.normal(size=(40, 48, 4)).astype(np.float32)}
    for (clip, start), f in full.items():
        write_flo(flow_dir(tmp_path, clip, start) / "flow_t0.flo", f[..., :2])
        write_flo(flow_dir(tmp_path, clip, start) / "flow_t1.flo", f[..., 2:])
    files = make_recipe(load_config("ifrnet", ["model.size=small", f"task.pseudo_flow=files:{tmp_path}"]))
    assert files.labeler is None and "2 groups" in files.notes()[0]
    batch = {"frames": torch.stack([img0, img1], 1), "target": gt[:, None], "clip": torch.tensor([1, 0]),
             "start": torch.tensor([0, 4]), "crop": torch.tensor([[3, 5], [8, 16]]),
             "aug": torch.tensor([[0, 0, 0, 0, 0], [0, 0, 0, 1, 0]])}
    files.start_batch(batch, ["a-s0000", "b-s0001"])
    want = torch.stack([torch.from_numpy(full["b-s0001", 0][3:35, 5:37]).permute(2, 0, 1),
                        torch.from_numpy(full["a-s0000", 4][8:40, 16:48][..., [2, 3, 0, 1]]).permute(2, 0, 1)])
    total, parts = files.loss(out, img0, img1, gt)
    ref_total, ref_parts = files.criterion(out, gt, want)
    assert torch.equal(parts["distill"], ref_parts["distill"]) and parts["distill"] > 0
    with pytest.raises(Exception, match="no flow/ folder"):
        make_recipe(load_config("ifrnet", [f"task.pseudo_flow=files:{tmp_path / 'none'}"]))


@pytest.mark.slow  # 2.6 million steps in Python: about 8 s of CPU
def test_every_step_of_each_paper_schedule_equals_the_official_formula():
    """The whole run of each config's schedule against the official formula, vectorised (numpy)."""
    def ours(config: str, base: float, world: int = 1) -> tuple[np.ndarray, np.ndarray]:
        cfg = load_config(config)
        fn = lr_function(cfg.train.schedule, base, cfg.train.steps, steps_per_epoch=lambda: 1000)
        scale = world / cfg.train.schedule.world_ref if cfg.train.schedule.world_ref else 1.0
        s = np.arange(cfg.train.steps)
        return s, np.array([fn(int(i)) * scale for i in s])

    s, lr = ours("rife", 3e-4, world=4)  # train.py: get_learning_rate(step) * world_size / 4
    total = len(s)
    want = np.where(s < 2000, 3e-4 * s / 2000.0,
                    (3e-4 - 3e-6) * (np.cos((s - 2000) / (total - 2000.0) * np.pi) * 0.5 + 0.5) + 3e-6)
    assert np.allclose(lr, want, rtol=1e-12, atol=0)
    s, lr = ours("ifrnet", 1e-4)  # train_vimeo90k.py get_lr(args, iters)
    want = (1e-4 - 1e-5) * 0.5 * (1.0 + np.cos(s / len(s) * np.pi)) + 1e-5
    assert np.allclose(lr, want, rtol=1e-12, atol=0)
    for config in ("edvr-m-wotsa", "edvr-m", "edvr-l"):
        cfg = load_config(config).train.schedule
        ends = np.cumsum(cfg.periods)
        s, lr = ours(config, 4e-4)
        i = np.searchsorted(ends, s, side="left")  # BasicSR get_position_from_periods: first end >= s
        start = np.where(i > 0, ends[np.maximum(i - 1, 0)], 0)
        w = np.array(cfg.restart_weights or [1] * len(ends))[i]
        want = 1e-7 + w * 0.5 * (4e-4 - 1e-7) * (1 + np.cos(np.pi * (s - start) / np.array(cfg.periods)[i]))
        assert np.allclose(lr, want, rtol=1e-12, atol=0), config
    s, lr = ours("vsrnet", 1e-5)  # DALI clr.py with stepsize = 2 epochs of 1000 batches
    ss = 2000
    want = 1e-6 + (1e-5 - 1e-6) * np.maximum(0, 1 - np.abs(s / ss - 2 * np.floor(1 + s / (2 * ss)) + 1))
    assert np.allclose(lr, want, rtol=1e-12, atol=0)


@pytest.mark.slow  # trains EDVR stage 1 for two steps on the CPU
def test_edvr_stage_two_starts_from_stage_one_weights_and_its_ema(tiny_data_dir, tmp_path):
    """edvr-m.yaml from edvr-m-wotsa's last.pth: the network from its trained weights (BasicSR's params),
    the EMA from its EMA (params_ema); the TSA fusion is new (strict: false)."""
    from vsrvfi.models.checkpoint import load_checkpoint
    from vsrvfi.trainers.engine import Trainer
    from vsrvfi.trainers.tasks import make_task

    small = [f"data.dir={tiny_data_dir}", "data.res=144p", "data.loader=png", "data.workers=1", "data.batch_size=2",
             "data.crop=32", "model.kwargs.num_frame=3", "train.val_frames=1", "train.val_every=0",
             "train.checkpoint_every=0", f"experiment.root={tmp_path}", "train.device=cpu", "train.steps=2",
             "optim.lr=1e-2"]
    cfg1 = load_config("edvr-m-wotsa", small)
    first = Trainer(cfg1, make_task(cfg1), tmp_path / "edvr-m-wotsa")
    first.fit()
    first.close()
    ckpt = load_checkpoint(tmp_path / "edvr-m-wotsa" / "checkpoints" / "last.pth")
    cfg2 = load_config("edvr-m", small + [f"model.pretrained={tmp_path}/edvr-m-wotsa/checkpoints/last.pth"])
    second = Trainer(cfg2, make_task(cfg2), tmp_path / "edvr-m")
    model, ema = second.model.state_dict(), second.ema.module.state_dict()
    second.close()
    shared = [k for k in ckpt["model"] if not k.startswith("fusion.") and k in model]
    assert shared and any(k.startswith("fusion.temporal") for k in model)  # TSA in stage 2 only
    assert all(torch.equal(model[k], ckpt["model"][k]) for k in shared)
    assert all(torch.equal(ema[k], ckpt["ema"][k]) for k in shared)
    assert any(not torch.equal(ckpt["model"][k], ckpt["ema"][k]) for k in shared)  # the two differ


def test_vsrnet_loss_is_the_dali_examples_mse_on_y():
    # DALI video_superres model/model.py: mse_loss(prediction, target), both the Y of rgb2ycbcr / 255
    recipe = make_recipe(load_config("vsrnet"))
    gen = torch.Generator().manual_seed(0)
    pred, hr = torch.rand(2, 3, 8, 8, generator=gen), torch.rand(2, 3, 8, 8, generator=gen)
    loss, _ = recipe.loss(pred, hr)

    def y(x):
        return 0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2]
    assert torch.allclose(loss, ((y(pred) - y(hr)) ** 2).mean(), rtol=1e-6, atol=0)
    # a change of the prediction's chroma only leaves the loss as it is (an RGB MSE would change)
    chroma = torch.tensor([0.587, -0.299, 0.0]).view(1, 3, 1, 1) * 0.05
    assert torch.allclose(recipe.loss(pred + chroma, hr)[0], loss, rtol=1e-6, atol=0)
    assert not torch.allclose(torch.nn.functional.mse_loss(pred + chroma, hr), torch.nn.functional.mse_loss(pred, hr))


def test_parity_harness_reads_the_official_functions_and_defaults(tmp_path):
    """benchmarks/recipe_parity.py takes the official lr functions and argparse defaults out of the
    scripts without running them (they need a GPU, data and packages this project lacks)."""
    from benchmarks.recipe_parity import argparse_defaults, check_dir, official_function
    from vsrvfi.core.errors import UsageError

    script = tmp_path / "train.py"
    script.write_text("import cuda_only_package\nparser.add_argument('--max_lr', type=float, default=0.00001)\n"
                      "parser.add_argument('--crop_size', type=int, nargs='+', default=[256, 256])\n"
                      "def get_learning_rate(step):\n    return 3e-4 * step / args.total\n")
    fn = official_function(script, "get_learning_rate", {"args": type("A", (), {"total": 10})})
    assert fn(5) == 3e-4 * 5 / 10
    assert argparse_defaults(script) == {"max_lr": 1e-5, "crop_size": [256, 256]}
    with pytest.raises(UsageError, match="no function get_lr"):
        official_function(script, "get_lr", {})
    with pytest.raises(UsageError, match="not a checkout of BasicSR"):
        check_dir(tmp_path, "basicsr/models/edvr_model.py", "BasicSR")
