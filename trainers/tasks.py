"""Task layer: what differs between super-resolution (VSRNet, EDVR) and interpolation (RIFE, IFRNet).

The engine calls a task to build the model, optimizer and loaders, to compute the training loss of a
batch, and for the metric convention its validation scores with; validation itself runs the model
on full frames beside the naive baseline (bicubic for SR, frame blending for VFI) in
trainers/validation.py, as vsr-evaluate does. What differs between models of one task (loss, warm
starts, distillation) is the model's recipe (trainers/recipes.py). Batches follow pipelines/batch.py.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Mapping, Sequence

import torch
from omegaconf import DictConfig
from torch import nn

from vsrvfi.core.errors import UsageError
from vsrvfi.models.load import load_pretrained
from vsrvfi.models.registry import build_model
from vsrvfi.pipelines.options import LoaderOptions
from vsrvfi.trainers.config import to_config
from vsrvfi.trainers.recipes import Recipe, SRRecipe, VFIRecipe, make_recipe
from vsrvfi.trainers.schema import loader_options


class Task:
    """Shared plumbing; subclasses define the loader options, the training loss and the frames per batch."""

    kind = ""

    def __init__(self, cfg: DictConfig, recipe: Recipe | None = None):
        self.cfg = cfg
        self.recipe = recipe or make_recipe(cfg)
        self.spec = self.recipe.spec
        self.model_name, self.model_size = self.spec.name, self.spec.size
        if self.recipe.kind != self.kind:
            raise UsageError(f"model {self.model_name} is a {self.recipe.kind} model, not {self.kind}")

    # ------------------------------------------------------------------------------ model, optimizer

    def model_kwargs(self) -> dict:
        return self.recipe.model_kwargs()

    def build_model(self) -> nn.Module:
        try:
            model = build_model(self.model_name, self.model_size, **self.model_kwargs())
        except (TypeError, ValueError) as exc:  # a wrong model.kwargs entry or value
            raise UsageError(f"model {self.model_name}/{self.model_size}: {exc}") from None
        m = self.cfg.model
        if m.pretrained:
            load_pretrained(model, m.pretrained, self.model_name, strict=m.strict)
        return model

    def build_optimizer(self, model: nn.Module) -> torch.optim.Optimizer:
        o = self.cfg.optim
        kw: dict[str, Any] = dict(lr=float(o.lr), weight_decay=float(o.weight_decay))
        if o.betas is not None:
            kw["betas"] = tuple(float(b) for b in o.betas)
        cls = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}[o.name]
        return cls(self.recipe.parameters(model), **kw)

    def diverged(self, model: nn.Module) -> bool:
        return self.recipe.diverged(model)

    # ---------------------------------------------------------------------------------------- data

    def _loader_opts(self, split: str, epoch: int, seed: int) -> LoaderOptions:
        raise NotImplementedError

    def train_loader(self, epoch: int, seed: int, exclude: Sequence[str] = ()):
        """The training loader of one epoch; `exclude`: clip names left out (data.on_bad_clip=skip)."""
        from vsrvfi.pipelines import build_loader

        opts = self._loader_opts("train", epoch, seed)
        if exclude:
            opts = dataclasses.replace(opts, exclude=tuple(exclude))
        return build_loader(opts)

    @staticmethod
    def to_device(batch: dict, device: torch.device) -> dict:
        return {k: (v.to(device, non_blocking=True) if torch.is_tensor(v) else v) for k, v in batch.items()}

    # ------------------------------------------------------------------------------------- metrics

    def metric_kwargs(self) -> dict:
        """How validation scores (inference.evaluate.Convention's fields), from task.metric."""
        m = self.cfg.task.metric
        return {"y_channel": bool(m.y_channel), "crop_border": int(m.crop_border)}


class SRTask(Task):
    """VSRNet / EDVR: (B, T, 3, h, w) LR frames -> HR centre frame; baseline: bicubic upscaling."""

    kind = "sr"
    recipe: SRRecipe

    def __init__(self, cfg: DictConfig, recipe: Recipe | None = None):
        super().__init__(cfg, recipe)
        self.scale = int(cfg.task.scale)
        self.frames = self.recipe.frames

    def _loader_opts(self, split: str, epoch: int, seed: int) -> LoaderOptions:
        return loader_options(self.cfg.data, task="sr", split=split, epoch=epoch, seed=seed,
                              neighbors=self.frames // 2, scale=self.scale)

    def training_loss(self, model: nn.Module, batch: dict, step: int) -> tuple[torch.Tensor, dict]:
        self.recipe.before_step(model, step)
        return self.recipe.loss(model(batch["lr"].float()), batch["hr"])

    @staticmethod
    def frames_in(batch: dict) -> int:
        return int(batch["lr"].shape[0] * batch["lr"].shape[1])


class VFITask(Task):
    """RIFE / IFRNet: two frames -> the K frames between them at their timesteps; baseline: blending."""

    kind = "vfi"
    recipe: VFIRecipe

    def __init__(self, cfg: DictConfig, recipe: Recipe | None = None):
        super().__init__(cfg, recipe)
        self.targets = int(cfg.task.targets)

    def _loader_opts(self, split: str, epoch: int, seed: int) -> LoaderOptions:
        return loader_options(self.cfg.data, task="vfi", split=split, epoch=epoch, seed=seed, targets=self.targets)

    def _pairs(self, batch: dict):
        """(img0, img1, timestep (B,), target) for each of the K targets."""
        frames = batch["frames"].float()
        img0, img1 = frames[:, 0], frames[:, 1]
        for k in range(batch["target"].shape[1]):
            yield img0, img1, batch["timesteps"][:, k].float(), batch["target"][:, k].float()

    def training_loss(self, model: nn.Module, batch: dict, step: int) -> tuple[torch.Tensor, dict]:
        self.recipe.before_step(model, step)
        total, parts_sum = 0.0, {}
        k = batch["target"].shape[1]
        for img0, img1, t, gt in self._pairs(batch):
            out = model(img0, img1, self.recipe.timestep(t), gt=gt)
            loss, parts = self.recipe.loss(out, img0, img1, gt)
            total = total + loss / k
            for name, v in parts.items():
                parts_sum[name] = parts_sum.get(name, 0.0) + float(v) / k
        return total, parts_sum

    @staticmethod
    def frames_in(batch: dict) -> int:
        return int(batch["frames"].shape[0] * (2 + batch["target"].shape[1]))


TASKS: dict[str, type[Task]] = {"sr": SRTask, "vfi": VFITask}


def make_task(cfg: DictConfig | Mapping) -> Task:
    """The SR or VFI task of `cfg`'s model, with its recipe."""
    cfg = to_config(cfg)
    recipe = make_recipe(cfg)
    return TASKS[recipe.kind](cfg, recipe)
