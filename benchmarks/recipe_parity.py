"""The issue-21 comparison: this project's training recipes against the official training code itself.

    python -m benchmarks.recipe_parity --rife RIFE_DIR --ifrnet IFRNET_DIR --basicsr BASICSR_DIR \\
        --dali DALI_VSR_DIR [--steps 5] [--json out.json]

Each *_DIR is a checkout of the official code (hzwer/ECCV2022-RIFE, ltkong218/IFRNet, XPixelGroup/BasicSR,
and NVIDIA/DALI's docs/examples/use_cases/video_superres); nothing of it is copied here: it is imported
from the checkout at run time (a model left out when its directory is not given). Three parts:

(a) schedules: the official learning rate at every step of each paper's run (RIFE `get_learning_rate`
    from train.py, IFRNet `get_lr` from train_vimeo90k.py, both read out of the file; BasicSR's
    `CosineAnnealingRestartLR` stepped as its `update_learning_rate` does, EDVR-M stage 1 and stage 2;
    DALI's `cyclic_learning_rate` in a LambdaLR as main.py builds it) against the lr this project's
    optimizer holds at the same step (its scheduler stepped as the trainer steps it).
(b) steps: the same initial weights (the official model's, loaded through `model.pretrained` as a user
    would) and the same batches, `--steps` optimizer steps of the official update (RIFE `Model.update`,
    IFRNet `Model.forward` losses + AdamW + `get_lr`, BasicSR `EDVRModel` feed_data /
    optimize_parameters / update_learning_rate with its EMA and TSA freeze) against this project's
    `Trainer.train_step`: the loss and the largest |parameter difference| (and |EMA difference|) after
    each step. Each run starts at a step chosen to cross the recipe's boundary: RIFE's end of warm-up
    (1998), EDVR-M stage 1's first restart (BasicSR iteration 149999..), stage 2's TSA unfreeze and
    first restart (iteration 49998..); IFRNet at 0.
(c) VSRNet: the DALI example's recipe (main.py's argparse defaults, optimizer, schedule, loss) beside
    this project's configs/vsrnet.yaml.

CPU only and small: batches of 2 random smooth frames (RIFE/IFRNet 64x64, EDVR 5 x 32x32 LR -> 128x128).
The official code's `.cuda()` / `device` globals pick the CPU themselves when CUDA is absent; the
harness patches nothing in their files.
"""
from __future__ import annotations

import ast
import importlib.util
import json
import math
import sys
import tempfile
import types
import warnings
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch
import torch.nn.functional as F

from vsrvfi.core.cli import ArgumentParser, entry_point
from vsrvfi.core.errors import UsageError
from vsrvfi.trainers.config import load_config
from vsrvfi.trainers.schedules import build_scheduler

RIFE_TOTAL = 300 * 761        # ECCV2022-RIFE: --epoch 300 x step_per_epoch (Vimeo90K on 4 GPUs x 16)
IFRNET_TOTAL = 300 * 2138     # IFRNet: --epochs 300 x iters_per_epoch (Vimeo90K on 4 GPUs x 6)
EDVR_TOTAL = 600000           # BasicSR total_iter
VSRNET_BATCHES = 100          # DALI: train_batches (any value; stepsize = 2 x train_batches)


# ------------------------------------------------------------------------------ official code access

def official_function(path: Path, name: str, namespace: dict) -> Callable:
    """Function `name` defined at the top level of the official file `path`, executed in `namespace`
    (module-level globals it reads, e.g. RIFE's `args`), without importing the rest of the script."""
    tree = ast.parse(path.read_text(), str(path))
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name == name:
            code = compile(ast.Module(body=[node], type_ignores=[]), str(path), "exec")
            exec(code, namespace)
            return namespace[name]
    raise UsageError(f"{path}: no function {name}: not the official file?")


def argparse_defaults(path: Path) -> dict:
    """{option: default} of every `parser.add_argument('--x', ..., default=...)` in the official script."""
    out = {}
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "add_argument" and node.args:
            name = ast.literal_eval(node.args[0]).lstrip("-")
            for kw in node.keywords:
                if kw.arg == "default":
                    out[name] = ast.literal_eval(kw.value)
    return out


def _package(name: str, folder: Path) -> None:
    """Register a bare package `name` whose submodules are found in `folder` (its __init__ is not run)."""
    pkg = types.ModuleType(name)
    pkg.__path__ = [str(folder)]
    sys.modules[name] = pkg


def _file_module(name: str, path: Path) -> None:
    """Import the single-file module `path` as top-level `name`."""
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)


@contextmanager
def official_modules(root: Path, packages: tuple[str, ...] = (), files: tuple[str, ...] = ()) -> Iterator[None]:
    """The official checkout's top-level `packages` (folders) and `files` (modules) importable by their
    own names, through sys.modules (sys.path is left alone: the official names, RIFE's `model`, IFRNet's
    `models`, `loss`, `utils`, would otherwise meet this repository's own top-level folders); all of them
    forgotten afterwards."""
    before = set(sys.modules)
    try:
        for name in packages:
            _package(name, root / name)
        for name in files:
            _file_module(name, root / f"{name}.py")
        yield
    finally:
        for name in set(sys.modules) - before:
            if name.split(".")[0] in packages + files:
                del sys.modules[name]


def basicsr_modules(root: Path) -> None:
    """Import BasicSR from a source checkout: its package __init__ needs the version.py its setup.py
    writes, so `basicsr` and `basicsr.models` are bare packages pointing at the checkout (the archs,
    losses and utils packages import as they are). Kept for the rest of the run."""
    if "basicsr" not in sys.modules:
        _package("basicsr", root / "basicsr")
        _package("basicsr.models", root / "basicsr" / "models")


@contextmanager
def float64_everywhere() -> Iterator[None]:
    """Default dtype float64, and `Tensor.float()` leaving float64 tensors as they are (this project's
    tasks and losses call .float() on batches and predictions), so both sides compute in float64: what
    is left of a difference then is not float32 rounding."""
    previous, to_float = torch.get_default_dtype(), torch.Tensor.float
    torch.set_default_dtype(torch.float64)
    torch.Tensor.float = lambda self, *a, **k: self if self.dtype == torch.float64 else to_float(self, *a, **k)
    try:
        yield
    finally:
        torch.Tensor.float = to_float
        torch.set_default_dtype(previous)


def check_dir(path: Path | None, marker: str, what: str) -> Path | None:
    if path is None:
        return None
    if not (path / marker).is_file():
        raise UsageError(f"{path}: no {marker}: not a checkout of {what}")
    return path


# ------------------------------------------------------------------------------------- (a) schedules

def ours_lrs(config: str, overrides: list[str], total: int, steps: int, per_epoch: int | None = None) -> np.ndarray:
    """The lr this project's optimizer holds at steps 0 .. steps-1 of `config`, its scheduler stepped once
    per step as Trainer.train_step does (world size 1)."""
    cfg = load_config(config, overrides)
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=float(cfg.optim.lr))
    sched = build_scheduler(opt, cfg.train.schedule, total, world_size=1, steps_per_epoch=lambda: per_epoch)
    out = np.empty(steps)
    for s in range(steps):
        out[s] = opt.param_groups[0]["lr"]
        opt.step()
        sched.step()
    return out


def compare_lrs(name: str, official: np.ndarray, ours: np.ndarray, marks: list[int]) -> dict:
    diff = np.abs(official - ours)
    rel = diff / np.maximum(np.abs(official), 1e-30)
    return {"schedule": name, "steps": len(official), "max_abs_diff": float(diff.max()),
            "max_rel_diff": float(rel[official != 0].max()) if (official != 0).any() else 0.0,
            "steps_over_1e-12_rel": int((diff > 1e-12 * np.abs(official) + 1e-20).sum()),
            "marks": [(s, float(official[s]), float(ours[s])) for s in marks if s < len(official)]}


def schedules_rife(root: Path) -> dict:
    args = types.SimpleNamespace(epoch=300, step_per_epoch=761)
    fn = official_function(root / "train.py", "get_learning_rate", {"np": np, "math": math, "args": args})
    world = 1  # train.py: get_learning_rate(step) * args.world_size / 4
    official = np.array([fn(s) * world / 4 for s in range(RIFE_TOTAL)])
    return compare_lrs("RIFE warm-up + cosine (world size 1)", official, ours_lrs("rife", [], RIFE_TOTAL, RIFE_TOTAL),
                       [0, 1, 1999, 2000, 2001, RIFE_TOTAL - 1])


def schedules_ifrnet(root: Path) -> dict:
    args = types.SimpleNamespace(epochs=300, iters_per_epoch=2138, lr_start=1e-4, lr_end=1e-5)
    defaults = argparse_defaults(root / "train_vimeo90k.py")
    args.lr_start, args.lr_end = defaults.get("lr_start", 1e-4), defaults.get("lr_end", 1e-5)
    fn = official_function(root / "train_vimeo90k.py", "get_lr", {"np": np, "math": math})
    official = np.array([fn(args, s) for s in range(IFRNET_TOTAL)])
    return compare_lrs("IFRNet cosine", official, ours_lrs("ifrnet", [], IFRNET_TOTAL, IFRNET_TOTAL),
                       [0, 1, IFRNET_TOTAL // 2, IFRNET_TOTAL - 1])


def basicsr_lrs(options: dict, total: int) -> np.ndarray:
    """BasicSR's lr at iterations 1 .. total (index = iteration - 1): the scheduler as
    `build_scheduler` / `update_learning_rate(current_iter)` step it (from iteration 2 on)."""
    from basicsr.models.lr_scheduler import CosineAnnealingRestartLR

    sch = dict(options["train"]["scheduler"])
    sch.pop("type")
    opt = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=float(options["train"]["optim_g"]["lr"]))
    scheduler = CosineAnnealingRestartLR(opt, **sch)
    out = np.empty(total)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for it in range(1, total + 1):
            if it > 1:
                scheduler.step()
            out[it - 1] = opt.param_groups[0]["lr"]
    return out


def edvr_options(root: Path, stage: int) -> dict:
    import yaml

    name = "train_EDVR_M_x4_SR_REDS_woTSA.yml" if stage == 1 else "train_EDVR_M_x4_SR_REDS.yml"
    return yaml.safe_load((root / "options" / "train" / "EDVR" / name).read_text())


def schedules_edvr(root: Path) -> list[dict]:
    basicsr_modules(root)
    out = []
    for stage, config in ((1, "edvr-m-wotsa"), (2, "edvr-m")):
        official = basicsr_lrs(edvr_options(root, stage), EDVR_TOTAL)
        ours = ours_lrs(config, ["model.pretrained=null"], EDVR_TOTAL, EDVR_TOTAL)
        ends = [150000, 300000, 450000] if stage == 1 else [50000, 150000, 300000, 450000]
        marks = [0] + [s for e in ends for s in (e - 1, e, e + 1)] + [EDVR_TOTAL - 1]
        out.append(compare_lrs(f"EDVR-M stage {stage} ({config}) cosine restarts", official, ours, marks))
    return out


def schedules_vsrnet(root: Path) -> dict:
    with official_modules(root, packages=("model",)):
        from model.clr import cyclic_learning_rate  # DALI video_superres/model/clr.py

        d = argparse_defaults(root / "main.py")
        opt = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=1, weight_decay=d["weight_decay"])
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            opt, lr_lambda=[cyclic_learning_rate(d["min_lr"], d["max_lr"], 2 * VSRNET_BATCHES)])
        steps = max(int(d["max_iter"]), 8 * VSRNET_BATCHES + 1)
        official = np.empty(steps)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for s in range(steps):
                official[s] = opt.param_groups[0]["lr"]
                opt.step()
                scheduler.step()
    ours = ours_lrs("vsrnet", [], steps, steps, per_epoch=VSRNET_BATCHES)
    ss = 2 * VSRNET_BATCHES
    return compare_lrs(f"VSRNet cyclic ({VSRNET_BATCHES} batches/epoch)", official, ours,
                       [0, 1, ss - 1, ss, ss + 1, 2 * ss, 3 * ss, 4 * ss])


# ----------------------------------------------------------------------------------------- (b) steps

def smooth_images(gen: torch.Generator, *shape: int) -> torch.Tensor:
    """Random images in [0, 1] with structure at several scales (flow nets see edges, not noise)."""
    *lead, h, w = shape
    coarse = torch.rand(*lead, max(h // 8, 2), max(w // 8, 2), generator=gen)
    fine = torch.rand(*lead, h, w, generator=gen)
    flat = coarse.reshape(-1, 1, *coarse.shape[-2:])
    up = F.interpolate(flat, size=(h, w), mode="bicubic", align_corners=False).reshape(*lead, h, w)
    return (0.8 * up + 0.2 * fine).clamp(0, 1)


def vfi_batches(n: int, b: int, size: int, seed: int) -> list[dict]:
    gen = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        frames = smooth_images(gen, b, 3, 3, size, size)  # I0, It, I1
        out.append({"frames": frames[:, [0, 2]].contiguous(), "target": frames[:, 1:2].contiguous(),
                    "timesteps": torch.full((b, 1), 0.5), "clip": torch.zeros(b, dtype=torch.long),
                    "start": torch.zeros(b, dtype=torch.long), "aug": torch.zeros(b, 5, dtype=torch.long),
                    "crop": torch.zeros(b, 2, dtype=torch.long)})
    return out


def sr_batches(n: int, b: int, lr_size: int, frames: int, seed: int) -> list[dict]:
    gen = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        hr = smooth_images(gen, b, frames, 3, lr_size * 4, lr_size * 4)
        lr = F.interpolate(hr.flatten(0, 1), scale_factor=0.25, mode="bicubic", antialias=True,
                           align_corners=False).clamp(0, 1).reshape(b, frames, 3, lr_size, lr_size)
        out.append({"lr": lr, "hr": hr[:, frames // 2].contiguous(), "clip": torch.zeros(b, dtype=torch.long),
                    "start": torch.zeros(b, dtype=torch.long), "aug": torch.zeros(b, 5, dtype=torch.long),
                    "crop": torch.zeros(b, 2, dtype=torch.long)})
    return out


def our_trainer(config: str, overrides: list[str], run_dir: Path, start: int):
    """This project's Trainer for `config` on the CPU, positioned at step `start` (state and scheduler,
    as a resumed run would be: the optimizer's moments start empty, as the official run's do here)."""
    from vsrvfi.trainers.engine import Trainer
    from vsrvfi.trainers.tasks import make_task

    cfg = load_config(config, ["train.device=cpu", "train.val_every=0", "train.checkpoint_every=0",
                               f"experiment.root={run_dir}"] + overrides)
    trainer = Trainer(cfg, make_task(cfg), run_dir / config)
    trainer.state.step = start
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer.scheduler.last_epoch = start - 1
        trainer.scheduler.step()
    return trainer


def state_diff(official_sd: dict, ours: torch.nn.Module, name: str) -> float:
    """max |official - ours| over every floating-point entry, the official keys renamed to ours."""
    from vsrvfi.models.load import state_dict_of

    converted = state_dict_of(official_sd, name, "<official>", prefer_ema=False)
    own = ours.state_dict()
    missing = [k for k in own if k not in converted and own[k].is_floating_point()]
    if missing:
        raise RuntimeError(f"{name}: official weights lack {len(missing)} keys, e.g. {missing[:3]}")
    return max(float((converted[k].double() - v.double()).abs().max()) for k, v in own.items()
               if v.is_floating_point() and v.numel())


def largest_change(before: dict, model: torch.nn.Module) -> float:
    return max(float((v.double() - before[k].double()).abs().max()) for k, v in model.state_dict().items()
               if v.is_floating_point() and v.numel())


def step_row(step: int, lr_off: float, lr_ours: float, loss_off: float, loss_ours: float,
             pdiff: float, moved: float, ema: float | None = None, note: str = "") -> dict:
    return {"step": step, "lr_official": lr_off, "lr_ours": lr_ours, "loss_official": loss_off,
            "loss_ours": loss_ours, "loss_rel_diff": abs(loss_off - loss_ours) / max(abs(loss_off), 1e-30),
            "max_param_diff": pdiff, "max_param_change": moved, "max_ema_diff": ema, "note": note}


def run_rife(root: Path, n: int, tmp: Path, start: int = 1998) -> list[dict]:
    args = types.SimpleNamespace(epoch=300, step_per_epoch=761)
    get_lr = official_function(root / "train.py", "get_learning_rate", {"np": np, "math": math, "args": args})
    with official_modules(root, packages=("model",)):
        torch.manual_seed(0)
        from model.RIFE import Model

        official = Model(local_rank=-1)
        ckpt = tmp / "flownet.pkl"  # the official file layout: DDP's module. prefix
        torch.save({"module." + k: v for k, v in official.flownet.state_dict().items()}, ckpt)
        trainer = our_trainer("rife", [f"model.pretrained={ckpt}", f"train.steps={RIFE_TOTAL}",
                                       "data.batch_size=2", "data.crop=64"], tmp, start)
        rows = [step_row(start - 1, math.nan, math.nan, math.nan, math.nan,
                         state_diff(official.flownet.state_dict(), trainer.model, "rife"), 0.0, note="initial")]
        init = {k: v.clone() for k, v in trainer.model.state_dict().items()}
        for i, batch in enumerate(vfi_batches(n, 2, 64, seed=1)):
            s = start + i
            lr_off = get_lr(s) * 1 / 4  # * world_size / 4, world size 1
            lr_ours = trainer.optimizer.param_groups[0]["lr"]
            imgs = torch.cat([batch["frames"][:, 0], batch["frames"][:, 1]], 1)
            _, info = official.update(imgs, batch["target"][:, 0], lr_off, training=True)
            loss_off = float((info["loss_l1"] + info["loss_tea"] + info["loss_distill"] * 0.01).detach())
            result = trainer.train_step(batch)
            rows.append(step_row(s, lr_off, lr_ours, loss_off, float(result.loss.detach()),
                                 state_diff(official.flownet.state_dict(), trainer.model, "rife"),
                                 largest_change(init, trainer.model)))
        trainer.close()
    return rows


def run_ifrnet(root: Path, n: int, tmp: Path, start: int = 0) -> list[dict]:
    args = types.SimpleNamespace(epochs=300, iters_per_epoch=2138, lr_start=1e-4, lr_end=1e-5)
    get_lr = official_function(root / "train_vimeo90k.py", "get_lr", {"np": np, "math": math})
    stub = None
    try:
        import imageio  # noqa: F401  (IFRNet's utils.py reads/writes images with it; training does not)
    except ImportError:
        stub = sys.modules["imageio"] = types.ModuleType("imageio")
        stub.imread = stub.imwrite = lambda *a, **k: (_ for _ in ()).throw(ImportError("imageio"))
    try:
        return _run_ifrnet(root, n, tmp, start, args, get_lr)
    finally:
        if stub is not None and sys.modules.get("imageio") is stub:
            del sys.modules["imageio"]


def _run_ifrnet(root: Path, n: int, tmp: Path, start: int, args: Any, get_lr: Callable) -> list[dict]:
    with official_modules(root, packages=("models",), files=("utils", "loss")):
        torch.manual_seed(0)
        from models.IFRNet import Model

        official = Model()
        optimizer = torch.optim.AdamW(official.parameters(), lr=args.lr_start, weight_decay=0)
        ckpt = tmp / "IFRNet_Vimeo90K.pth"
        torch.save(official.state_dict(), ckpt)
        trainer = our_trainer("ifrnet", [f"model.pretrained={ckpt}", f"train.steps={IFRNET_TOTAL}",
                                         "data.batch_size=2", "data.crop=64", "task.pseudo_flow=none"], tmp, start)
        recipe = trainer.task.recipe

        class GivenFlow:  # the batch's pseudo flow, as task.pseudo_flow=files:DIR hands it to the loss
            flow: torch.Tensor

            def batch(self, batch, clip_names):
                return self.flow

        recipe.files = GivenFlow()
        rows = [step_row(start - 1, math.nan, math.nan, math.nan, math.nan,
                         state_diff(official.state_dict(), trainer.model, "ifrnet"), 0.0, note="initial")]
        init = {k: v.clone() for k, v in trainer.model.state_dict().items()}
        gen = torch.Generator().manual_seed(2)
        official.train()
        for i, batch in enumerate(vfi_batches(n, 2, 64, seed=3)):
            s = start + i
            flow = (torch.randn(2, 4, 8, 8, generator=gen) * 2)
            flow = F.interpolate(flow, size=(64, 64), mode="bilinear", align_corners=False)
            recipe.files.flow = flow
            lr_off = get_lr(args, s)
            for g in optimizer.param_groups:
                g["lr"] = lr_off
            lr_ours = trainer.optimizer.param_groups[0]["lr"]
            optimizer.zero_grad()
            img0, img1, imgt = batch["frames"][:, 0], batch["frames"][:, 1], batch["target"][:, 0]
            embt = batch["timesteps"][:, 0].view(-1, 1, 1, 1)
            _, loss_rec, loss_geo, loss_dis = official(img0, img1, embt, imgt, flow)
            loss = loss_rec + loss_geo + loss_dis
            loss.backward()
            optimizer.step()
            result = trainer.train_step(batch)
            rows.append(step_row(s, lr_off, lr_ours, float(loss.detach()), float(result.loss.detach()),
                                 state_diff(official.state_dict(), trainer.model, "ifrnet"),
                                 largest_change(init, trainer.model),
                                 note=f"distillation term {float(loss_dis.detach()):.6g} / {float(result.parts['distill']):.6g}"))
        trainer.close()
    return rows


def run_edvr(root: Path, n: int, tmp: Path, stage: int) -> list[dict]:
    """BasicSR's EDVRModel (its network, Charbonnier, Adam, scheduler, EMA, TSA freeze) against the
    project's Trainer, `n` iterations across stage 1's first restart or stage 2's TSA unfreeze + restart."""
    basicsr_modules(root)
    from basicsr.models.edvr_model import EDVRModel
    from basicsr.models.sr_model import SRModel

    options = edvr_options(root, stage)
    options.update(num_gpu=0, dist=False, is_train=True, rank=0, world_size=1)
    options["path"] = {"pretrain_network_g": None, "strict_load_g": True, "resume_state": None}
    config = "edvr-m-wotsa" if stage == 1 else "edvr-m"
    first_iter = 149999 if stage == 1 else 49998  # BasicSR iterations (this trainer's step = iteration - 1)
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        official = EDVRModel(options)
        tsa_iter = options["train"].get("tsa_iter")
        if tsa_iter:  # iteration 1's freeze, by the official code (its optimizer step left out)
            step = SRModel.optimize_parameters
            SRModel.optimize_parameters = lambda self, it: None
            try:
                official.optimize_parameters(1)
            finally:
                SRModel.optimize_parameters = step
        # the scheduler as update_learning_rate(first_iter - 1) leaves it: its lr is a closed form of
        # last_epoch, so it is placed one step before and stepped once (part (a) steps it through every
        # iteration)
        official.schedulers[0].last_epoch = first_iter - 3
        official.update_learning_rate(first_iter - 1, warmup_iter=options["train"].get("warmup_iter", -1))
    ckpt = tmp / f"edvr_stage{stage}_init.pth"  # BasicSR's layout: params (+ params_ema)
    torch.save({"params": official.net_g.state_dict(), "params_ema": official.net_g_ema.state_dict()}, ckpt)
    trainer = our_trainer(config, [f"model.pretrained={ckpt}", "data.batch_size=2", "data.crop=128"],
                          tmp, first_iter - 1)
    rows = [step_row(first_iter - 2, math.nan, math.nan, math.nan, math.nan,
                     state_diff({"params": official.net_g.state_dict()}, trainer.model, "edvr"), 0.0,
                     state_diff({"params": official.net_g_ema.state_dict()}, trainer.ema.module, "edvr"),
                     note="initial")]
    init = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    for i, batch in enumerate(sr_batches(n, 2, 32, 5, seed=4 + stage)):
        it = first_iter + i
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            official.update_learning_rate(it, warmup_iter=options["train"].get("warmup_iter", -1))
        lr_off = official.get_current_learning_rate()[0]
        lr_ours = trainer.optimizer.param_groups[0]["lr"]
        official.feed_data({"lq": batch["lr"], "gt": batch["hr"]})
        official.optimize_parameters(it)
        frozen_off = sum(not p.requires_grad for p in official.net_g.parameters())
        result = trainer.train_step(batch)
        frozen_ours = sum(not p.requires_grad for p in trainer.model.parameters())
        note = f"frozen {frozen_off}/{frozen_ours}" if (frozen_off or frozen_ours) else ""
        rows.append(step_row(it - 1, lr_off, lr_ours, official.log_dict["l_pix"], float(result.loss.detach()),
                             state_diff({"params": official.net_g.state_dict()}, trainer.model, "edvr"),
                             largest_change(init, trainer.model),
                             state_diff({"params": official.net_g_ema.state_dict()}, trainer.ema.module, "edvr"),
                             note))
    trainer.close()
    return rows


# ------------------------------------------------------------------------------------------ (c) VSRNet

def vsrnet_recipe(root: Path) -> list[tuple[str, str, str, bool]]:
    """(item, DALI example, this project, equal) for VSRNet's training recipe."""
    d = argparse_defaults(root / "main.py")
    main = (root / "main.py").read_text()
    model_py = (root / "model" / "model.py").read_text() if (root / "model" / "model.py").is_file() else ""
    cfg = load_config("vsrnet")
    o, s = cfg.optim, cfg.train.schedule
    adam = "optim.Adam(model_params, lr=1, weight_decay=args.weight_decay)" in main
    rows = [
        ("optimizer", f"Adam{' (lr 1 x LambdaLR)' if adam else '?'}, betas default, weight decay {d['weight_decay']:g}",
         f"{o.name}, betas {list(o.betas) if o.betas is not None else 'default'}, weight decay {o.weight_decay:g}",
         adam and o.name == "adam" and o.betas is None and math.isclose(o.weight_decay, d["weight_decay"])),
        ("schedule", f"cyclic {d['min_lr']:g}..{d['max_lr']:g}, stepsize 2 x train_batches"
                     if "stepsize = 2 * train_batches" in main else "?",
         f"{s.name} {s.min_lr:g}..{s.max_lr:g}, step_size_epochs {s.step_size_epochs:g}",
         s.name == "cyclic" and math.isclose(s.min_lr, d["min_lr"]) and math.isclose(s.max_lr, d["max_lr"])
         and float(s.step_size_epochs) == 2 and s.step_size is None),
        ("iterations", f"--max_iter {d['max_iter']}", f"train.steps {cfg.train.steps}", int(cfg.train.steps) == d["max_iter"]),
        ("loss", "MSE of the sigmoid Y prediction against the centre frame's Y / 255 (model/model.py)",
         f"task.loss {cfg.task.loss}" + (": MSE of the Y (JPEG BT.601) of prediction and HR frame"
                                          if cfg.task.loss == "mse_y" else ": not on Y"),
         cfg.task.loss == "mse_y" and "mse_loss(prediction.float(), target.float())" in model_py),
        ("batch", f"--batchsize {d['batchsize']} (README: 3 in its 540p/720p tables)", f"data.batch_size {cfg.data.batch_size}",
         int(cfg.data.batch_size) in (d["batchsize"], 3)),
        ("crop", f"--crop_size {d['crop_size']} with --is_cropped (README: 540p crops of 720p frames)",
         f"data.crop {list(cfg.data.crop) if hasattr(cfg.data.crop, '__len__') else cfg.data.crop}", True),
        ("frames", f"--frames {d['frames']}", f"num_frame {cfg.model.kwargs.get('num_frame', 3)}", True),
        ("flow net", "FlowNet2-SD from --flownet_path, requires_grad False", "model.kwargs.flownet_path (frozen when given)", True),
    ]
    return rows


# ------------------------------------------------------------------------------------------- output

def fmt(v: Any) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    if isinstance(v, float):
        return f"{v:.7g}" if v else "0"
    return str(v)


def print_steps(title: str, rows: list[dict]) -> None:
    print(f"\n### {title}\n")
    print("| step | lr official | lr ours | loss official | loss ours | loss rel. diff | max abs param diff "
          "| max abs param change | max abs EMA diff | note |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
    for r in rows:
        print("| " + " | ".join(fmt(r[k]) for k in ("step", "lr_official", "lr_ours", "loss_official", "loss_ours",
                                                   "loss_rel_diff", "max_param_diff", "max_param_change",
                                                   "max_ema_diff", "note")) + " |")


def print_schedules(rows: list[dict]) -> None:
    print("\n### (a) learning rate at every step: official vs this project\n")
    print("| schedule | steps compared | max abs diff | max rel diff | steps differing (> 1e-12 rel) |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for r in rows:
        print(f"| {r['schedule']} | {r['steps']} | {fmt(r['max_abs_diff'])} | {fmt(r['max_rel_diff'])} "
              f"| {r['steps_over_1e-12_rel']} |")
    for r in rows:
        print(f"\n{r['schedule']}, boundary steps (step: official / ours): " +
              "; ".join(f"{s}: {fmt(a)} / {fmt(b)}" for s, a, b in r["marks"]))


def main(argv: list[str] | None = None) -> int:
    p = ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rife", type=Path, help="checkout of hzwer/ECCV2022-RIFE")
    p.add_argument("--ifrnet", type=Path, help="checkout of ltkong218/IFRNet")
    p.add_argument("--basicsr", type=Path, help="checkout of XPixelGroup/BasicSR")
    p.add_argument("--dali", type=Path, help="NVIDIA/DALI's docs/examples/use_cases/video_superres folder")
    p.add_argument("--steps", type=int, default=5, help="optimizer steps compared per model (default 5)")
    p.add_argument("--skip", nargs="*", default=[], choices=("schedules", "steps", "vsrnet"), help="parts left out")
    p.add_argument("--dtype", choices=("float32", "float64"), default="float64",
                   help="precision of both sides' step comparison (default float64: rounding then stays near 1e-12; "
                        "float32 shows what a float32 run sees)")
    p.add_argument("--json", type=Path, help="write every number here too")
    a = p.parse_args(argv)
    rife = check_dir(a.rife, "model/RIFE.py", "ECCV2022-RIFE")
    ifrnet = check_dir(a.ifrnet, "models/IFRNet.py", "IFRNet")
    basicsr = check_dir(a.basicsr, "basicsr/models/edvr_model.py", "BasicSR")
    dali = check_dir(a.dali, "main.py", "DALI's video_superres example")
    torch.set_num_threads(2)
    report: dict = {"schedules": [], "steps": {}, "vsrnet": []}
    if "schedules" not in a.skip:
        for root, fn in ((rife, schedules_rife), (ifrnet, schedules_ifrnet), (dali, schedules_vsrnet)):
            if root is not None:
                report["schedules"].append(fn(root))
        if basicsr is not None:
            report["schedules"] += schedules_edvr(basicsr)
        print_schedules(report["schedules"])
    if "steps" not in a.skip:
        precision = float64_everywhere() if a.dtype == "float64" else nullcontext()
        with tempfile.TemporaryDirectory(prefix="recipe_parity_") as tmp, precision:
            runs = [("RIFE (ECCV2022-RIFE Model.update), steps 1998..: end of the warm-up", rife,
                     lambda r: run_rife(r, a.steps, Path(tmp))),
                    ("IFRNet (IFRNet Model.forward + AdamW + get_lr), flow distillation on", ifrnet,
                     lambda r: run_ifrnet(r, a.steps, Path(tmp))),
                    ("EDVR-M stage 1 (BasicSR EDVRModel, woTSA options), across the first restart", basicsr,
                     lambda r: run_edvr(r, a.steps, Path(tmp), 1)),
                    ("EDVR-M stage 2 (BasicSR EDVRModel, TSA options), across tsa_iter and the first restart",
                     basicsr, lambda r: run_edvr(r, a.steps, Path(tmp), 2))]
            for title, root, fn in runs:
                if root is not None:
                    report["steps"][title] = rows = fn(root)
                    print_steps(f"{title} [{a.dtype}]", rows)
                    sys.stdout.flush()
    if "vsrnet" not in a.skip and dali is not None:
        report["vsrnet"] = vsrnet_recipe(dali)
        print("\n### (c) VSRNet: the DALI example's recipe vs configs/vsrnet.yaml\n")
        print("| item | DALI example | here | equal |\n| --- | --- | --- | --- |")
        for item, theirs, ours, eq in report["vsrnet"]:
            print(f"| {item} | {theirs} | {ours} | {'=' if eq else '≠'} |")
    if a.json:
        a.json.write_text(json.dumps(report, indent=1, default=str))
    return 0


cli = entry_point(main, interrupted="nothing is written (--json only at the end)")

if __name__ == "__main__":
    sys.exit(cli())
