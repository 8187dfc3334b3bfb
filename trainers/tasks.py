"""Task layer: what differs between super-resolution (VSRNet, EDVR) and interpolation (RIFE, IFRNet).

The engine calls a task to build the model, optimizer and loaders, to compute the training loss of a
batch, to predict for validation, and to make the naive baseline (bicubic for SR, frame blending for
VFI). Batches follow pipelines/batch.py.
"""
from __future__ import annotations

import dataclasses
import logging
from typing import Any

import torch
from torch import nn

from vsrvfi.models.baselines import bicubic_upscale, blend
from vsrvfi.models.load import load_pretrained
from vsrvfi.models.losses import Charbonnier, IFRNetLoss, PseudoFlowLabeler, RIFELoss
from vsrvfi.models.metrics import describe
from vsrvfi.models.registry import build_model, spec
from vsrvfi.pipelines.augment import AugmentOptions
from vsrvfi.pipelines.options import LoaderOptions
from vsrvfi.core.errors import UsageError
from vsrvfi.trainers.config import get

log = logging.getLogger(__name__)


def loader_options(cfg: dict, task: str, split: str, *, epoch: int = 0, seed: int = 0,
                   frames: int = 3, scale: int = 4, targets: int = 1) -> LoaderOptions:
    """Map the config's `data` section onto the loaders' options for one split."""
    d = cfg["data"]
    device = d.get("device", "auto")
    if device == "auto":
        device = "gpu" if torch.cuda.is_available() else "cpu"
    training = split == "train"
    aug = d.get("augment", {}) or {}
    aug_fields = {f.name for f in dataclasses.fields(AugmentOptions)}
    unknown = set(aug) - aug_fields
    if unknown:
        raise UsageError(f"data.augment: unknown option(s) {', '.join(sorted(unknown))} (have: {', '.join(sorted(aug_fields))})")
    crop = d.get("crop") if training else d.get("val_crop")
    if isinstance(crop, list):
        crop = tuple(crop)
    return LoaderOptions(
        kind=d.get("loader", "dali"), task=task, data_dir=str(d["dir"]), res=d.get("res", "540p"), split=split,
        batch_size=int(d.get("batch_size", 3)) if training else int(d.get("val_batch_size", d.get("batch_size", 3))),
        device=device, training=training, crop=crop, neighbors=frames // 2, scale=scale, lr_res=d.get("lr_res"),
        targets=targets, stride=int(d.get("stride", 1)), epoch_size=d.get("epoch_size") if training else None,
        augment=AugmentOptions(**aug) if training else AugmentOptions.off(), seed=seed, epoch=epoch,
        workers=int(d.get("workers", 2)), dtype=d.get("dtype", "float32"),
        clip_run=int(d.get("clip_run", 1)) if training else 1,
    )


class Task:
    """Shared plumbing; subclasses define the loss, the prediction, the target and the baseline."""

    kind = ""

    def __init__(self, cfg: dict):
        self.cfg = cfg
        self.model_name = get(cfg, "model.name")
        self.model_size = get(cfg, "model.size")
        self.spec = spec(self.model_name, self.model_size)
        if self.spec.task != self.kind:
            raise UsageError(f"model {self.model_name} is a {self.spec.task} model, the config's task is {self.kind}")

    # ------------------------------------------------------------------------------ model, optimizer

    def model_kwargs(self) -> dict:
        return dict(get(self.cfg, "model.kwargs", {}) or {})

    def build_model(self) -> nn.Module:
        model = build_model(self.model_name, self.model_size, **self.model_kwargs())
        pretrained = get(self.cfg, "model.pretrained")
        if pretrained:
            load_pretrained(model, pretrained, self.model_name, strict=bool(get(self.cfg, "model.strict", True)))
        return model

    def build_optimizer(self, model: nn.Module) -> torch.optim.Optimizer:
        o = self.cfg.get("optim", {})
        params = [p for p in model.parameters() if p.requires_grad] or list(model.parameters())
        kw = dict(lr=float(o.get("lr", 1e-4)), weight_decay=float(o.get("weight_decay", 0)))
        if "betas" in o:
            kw["betas"] = tuple(float(b) for b in o["betas"])
        name = o.get("name", "adam").lower()
        if name == "adam":
            return torch.optim.Adam(params, **kw)
        if name == "adamw":
            return torch.optim.AdamW(params, **kw)
        raise UsageError(f"optim.name {name!r}: use adam or adamw")

    # ---------------------------------------------------------------------------------------- data

    def _loader_opts(self, split: str, epoch: int, seed: int) -> LoaderOptions:
        raise NotImplementedError

    def train_loader(self, epoch: int, seed: int, dist_info: Any):
        from vsrvfi.pipelines import build_loader

        return build_loader(self._loader_opts("train", epoch, seed))

    def val_loader(self, dist_info: Any):
        """A fresh deterministic loader each time, so every validation scores the same samples."""
        from vsrvfi.pipelines import build_loader

        return build_loader(self._loader_opts("val", 0, 0))

    @staticmethod
    def to_device(batch: dict, device: torch.device) -> dict:
        return {k: (v.to(device, non_blocking=True) if torch.is_tensor(v) else v) for k, v in batch.items()}

    # ---------------------------------------------------------------------------- metrics, images

    def metric_kwargs(self) -> dict:
        m = get(self.cfg, "task.metric", {}) or {}
        return {"y_channel": bool(m.get("y_channel", False)), "crop_border": int(m.get("crop_border", 0))}

    def metric_convention(self) -> str:
        return describe(**self.metric_kwargs())

    def diverged(self, model: nn.Module) -> bool:
        return False


class SRTask(Task):
    """VSRNet / EDVR: (B, T, 3, h, w) LR frames -> HR centre frame; baseline: bicubic upscaling."""

    kind = "sr"

    def __init__(self, cfg: dict):
        super().__init__(cfg)
        self.scale = int(get(cfg, "task.scale", 4))
        self.frames = int(self.model_kwargs().get("num_frame", 5 if self.model_name == "edvr" else 3))
        loss = get(cfg, "task.loss", "charbonnier")
        if loss == "charbonnier":
            self.criterion = Charbonnier(float(get(cfg, "task.charbonnier_eps", 1e-6)),
                                         reduction=str(get(cfg, "task.loss_reduction", "mean")))
        elif loss == "mse":
            self.criterion = nn.MSELoss()
        elif loss == "l1":
            self.criterion = nn.L1Loss()
        else:
            raise UsageError(f"task.loss {loss!r}: use charbonnier, mse or l1")
        self.tsa_only_steps = int(get(cfg, "task.tsa_only_steps", 0) or 0)
        self._tsa_only: bool | None = None

    def model_kwargs(self) -> dict:
        kw = super().model_kwargs()
        if self.model_name == "vsrnet":
            kw.setdefault("scale", int(get(self.cfg, "task.scale", 4)))
        return kw

    def _loader_opts(self, split: str, epoch: int, seed: int) -> LoaderOptions:
        return loader_options(self.cfg, "sr", split, epoch=epoch, seed=seed, frames=self.frames, scale=self.scale)

    def _set_tsa_only(self, model: nn.Module, on: bool) -> None:
        """BasicSR's TSA warm start: train only the fusion module for the first steps."""
        base = getattr(model, "module", model)
        if self._tsa_only == on or not hasattr(base, "fusion"):
            return
        for name, p in base.named_parameters():
            p.requires_grad_(True if not on else name.startswith("fusion."))
        self._tsa_only = on

    def training_loss(self, model: nn.Module, batch: dict, step: int) -> tuple[torch.Tensor, dict]:
        if self.tsa_only_steps:
            self._set_tsa_only(model, step < self.tsa_only_steps)
        pred = model(batch["lr"].float())
        loss = self.criterion(pred.float(), batch["hr"].float())
        return loss, {"pixel": loss.detach()}

    def predict(self, model: nn.Module, batch: dict) -> torch.Tensor:
        return model(batch["lr"].float())

    def target(self, batch: dict) -> torch.Tensor:
        return batch["hr"]

    def baseline(self, batch: dict) -> torch.Tensor:
        return bicubic_upscale(batch["lr"][:, batch["lr"].shape[1] // 2], self.scale)

    @staticmethod
    def frames_in(batch: dict) -> int:
        return int(batch["lr"].shape[0] * batch["lr"].shape[1])

    def sample_images(self, batch: dict, pred: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"input_bicubic": self.baseline(batch)[0].float().cpu(), "prediction": pred[0].float().cpu(),
                "target": batch["hr"][0].float().cpu()}

    def diverged(self, model: nn.Module) -> bool:
        absmean = getattr(model, "offset_absmean", None)
        if absmean is None:
            return False
        limit = float(get(self.cfg, "task.offset_limit", getattr(model, "offset_warn_threshold", 50.0)))
        return not (absmean <= limit)  # also catches NaN


class VFITask(Task):
    """RIFE / IFRNet: two frames -> the K frames between them at their timesteps; baseline: blending."""

    kind = "vfi"

    def __init__(self, cfg: dict):
        super().__init__(cfg)
        self.targets = int(get(cfg, "task.targets", 1))
        if self.model_name == "rife":
            if self.targets != 1 and self.model_size != "m":
                raise UsageError("RIFE base only interpolates the middle frame: use model.size=m (RIFEm) "
                                 "for task.targets > 1")
            self.criterion = RIFELoss(float(get(cfg, "task.distill_weight", 0.01)))
        elif self.model_name == "ifrnet":
            self.criterion = IFRNetLoss(float(get(cfg, "task.geo_weight", 0.01)),
                                        float(get(cfg, "task.distill_weight", 0.01)))
        else:
            raise UsageError(f"no VFI training recipe for {self.model_name}")
        pseudo = get(cfg, "task.pseudo_flow", "none")
        self.labeler = PseudoFlowLabeler(preset=str(get(cfg, "task.dis_preset", "medium"))) \
            if pseudo == "dis" else None
        if pseudo not in ("none", "dis", None):
            raise UsageError(f"task.pseudo_flow {pseudo!r}: use none or dis")

    def _loader_opts(self, split: str, epoch: int, seed: int) -> LoaderOptions:
        return loader_options(self.cfg, "vfi", split, epoch=epoch, seed=seed, targets=self.targets)

    def _pairs(self, batch: dict):
        """(img0, img1, timestep (B,), target) for each of the K targets."""
        frames = batch["frames"].float()
        img0, img1 = frames[:, 0], frames[:, 1]
        for k in range(batch["target"].shape[1]):
            yield img0, img1, batch["timesteps"][:, k].float(), batch["target"][:, k].float()

    def _timestep(self, t: torch.Tensor) -> float | torch.Tensor:
        # RIFE (base) has no timestep input: it only makes the middle frame, which the loader gives it.
        return 0.5 if self.model_name == "rife" and self.model_size != "m" else t

    def training_loss(self, model: nn.Module, batch: dict, step: int) -> tuple[torch.Tensor, dict]:
        total, parts_sum = 0.0, {}
        k = batch["target"].shape[1]
        for img0, img1, t, gt in self._pairs(batch):
            out = model(img0, img1, self._timestep(t), gt=gt)
            if self.model_name == "ifrnet":
                flow = self.labeler(img0, gt, img1) if self.labeler is not None else None
                loss, parts = self.criterion(out, gt, flow)
            else:
                loss, parts = self.criterion(out, gt)
            total = total + loss / k
            for name, v in parts.items():
                parts_sum[name] = parts_sum.get(name, 0.0) + float(v) / k
        return total, parts_sum

    def predict(self, model: nn.Module, batch: dict) -> torch.Tensor:
        """Predictions of every target, flattened to (B*K, 3, H, W) in target order."""
        preds = [model(img0, img1, self._timestep(t)).pred for img0, img1, t, _ in self._pairs(batch)]
        return torch.stack(preds, 1).flatten(0, 1)

    def target(self, batch: dict) -> torch.Tensor:
        return batch["target"].flatten(0, 1)

    def baseline(self, batch: dict) -> torch.Tensor:
        """Linear blending of the two inputs at each timestep."""
        fr = batch["frames"]
        return blend(fr[:, :1], fr[:, 1:2], batch["timesteps"]).flatten(0, 1)

    @staticmethod
    def frames_in(batch: dict) -> int:
        return int(batch["frames"].shape[0] * (2 + batch["target"].shape[1]))

    def sample_images(self, batch: dict, pred: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"input_blend": self.baseline(batch)[0].cpu(), "prediction": pred[0].float().cpu(),
                "target": self.target(batch)[0].float().cpu()}


def make_task(cfg: dict) -> Task:
    kind = get(cfg, "task.kind")
    if kind == "sr":
        return SRTask(cfg)
    if kind == "vfi":
        return VFITask(cfg)
    raise UsageError(f"task.kind {kind!r}: use sr or vfi")
