"""Per-model training recipes, registered by model name: the loss, warm starts, distillation, and
the model's own `task` keys. The engine and the SR/VFI tasks (trainers/tasks.py) ask the recipe and
hold no model names.

    @register("edvr")
    class EDVRRecipe(SRRecipe):
        task_schema = EDVRTaskConfig          # the `task` section: SR keys + tsa_iter, offset_limit
        def before_step(self, model, step): ...   # TSA-only warm start

A recipe is made once per run from the resolved configuration (`make_recipe(cfg)`).
"""
from __future__ import annotations

import difflib
import inspect
from dataclasses import dataclass
from typing import Any, Callable, ClassVar, Optional

import torch
from omegaconf import OmegaConf
from torch import nn

from vsrvfi.core.errors import UsageError
from vsrvfi.models.registry import ModelSpec, spec
from vsrvfi.trainers.schema import SRTaskConfig, TaskConfig, VFITaskConfig, opt

RECIPES: dict[str, type["Recipe"]] = {}


def register(name: str) -> Callable[[type["Recipe"]], type["Recipe"]]:
    """Class decorator: the training recipe of model `name`."""
    def wrap(cls: type[Recipe]) -> type[Recipe]:
        cls.name = name
        RECIPES[name] = cls
        return cls
    return wrap


def recipe_class(name: str) -> type["Recipe"]:
    """The recipe registered for model `name`; UsageError (with the nearest name) when there is none."""
    try:
        return RECIPES[str(name).lower()]
    except KeyError:
        close = difflib.get_close_matches(str(name).lower(), RECIPES, n=1)
        hint = f"; did you mean {close[0]}?" if close else f" (have: {', '.join(sorted(RECIPES))})"
        raise UsageError(f"model.name: no training recipe for {name!r}{hint}") from None


def make_recipe(cfg: Any) -> "Recipe":
    """The recipe for `cfg.model` (name and size), set up from the resolved configuration."""
    cls = recipe_class(cfg.model.name)
    try:
        model_spec = spec(cfg.model.name, cfg.model.size)
    except ValueError as exc:
        raise UsageError(f"model.size: {exc}") from None
    return cls(cfg, model_spec)


class Recipe:
    """How one model is trained. Subclasses set `task_schema` and override the hooks they need."""

    name: ClassVar[str] = ""
    kind: ClassVar[str] = ""                   # "sr" | "vfi": the task the model belongs to
    task_schema: ClassVar[type[TaskConfig]] = TaskConfig

    def __init__(self, cfg: Any, model_spec: ModelSpec):
        self.cfg, self.spec, self.task = cfg, model_spec, cfg.task
        if model_spec.task != self.kind:
            raise UsageError(f"model {model_spec.name} is a {model_spec.task} model; its recipe trains {self.kind}")

    def model_kwargs(self) -> dict:
        """Builder arguments: `model.kwargs` (and what the task adds)."""
        return dict(OmegaConf.to_container(self.cfg.model.kwargs) if OmegaConf.is_config(self.cfg.model.kwargs)
                    else self.cfg.model.kwargs or {})

    def builder_default(self, arg: str, fallback: Any = None) -> Any:
        """The default of the model builder's argument `arg` (fallback when the builder has none)."""
        p = inspect.signature(self.spec.builder).parameters.get(arg)
        return fallback if p is None or p.default is inspect.Parameter.empty else p.default

    def accepts(self, arg: str) -> bool:
        return arg in inspect.signature(self.spec.builder).parameters

    def parameters(self, model: nn.Module) -> list:
        """What the optimizer updates (a list of parameters or of param groups)."""
        return [p for p in model.parameters() if p.requires_grad] or list(model.parameters())

    def before_step(self, model: nn.Module, step: int) -> None:
        """Called before each training step's forward pass (warm starts that freeze parts of the model)."""

    def notes(self) -> list[str]:
        """Lines the trainer prints at start: what the recipe does that a reader should know (warm starts,
        where pseudo labels come from)."""
        return []

    def start_batch(self, batch: dict, clip_names: list[str]) -> None:
        """Called with each training batch (and the loader's clip names) before its loss is computed."""

    def diverged(self, model: nn.Module) -> bool:
        """A model-specific sign that training is diverging (the engine skips the step, then rolls back)."""
        return False


# --------------------------------------------------------------------------------- super-resolution

class SRRecipe(Recipe):
    """LR frames -> HR centre frame, trained with a pixel loss (task.loss)."""

    kind = "sr"
    task_schema = SRTaskConfig

    def __init__(self, cfg: Any, model_spec: ModelSpec):
        super().__init__(cfg, model_spec)
        t = self.task
        if t.loss == "charbonnier":
            from vsrvfi.models.losses import Charbonnier

            self.criterion: nn.Module = Charbonnier(float(t.charbonnier_eps), reduction=t.loss_reduction)
        elif t.loss == "mse_y":
            self.criterion = MSEOnY()
        else:
            self.criterion = nn.MSELoss() if t.loss == "mse" else nn.L1Loss()

    def model_kwargs(self) -> dict:
        kw = super().model_kwargs()
        if self.accepts("scale"):  # the model upsamples by the task's scale (EDVR refuses other than x4)
            kw.setdefault("scale", int(self.task.scale))
        return kw

    @property
    def frames(self) -> int:
        """LR frames per sample: model.kwargs.num_frame, else the builder's default."""
        return int(self.model_kwargs().get("num_frame", self.builder_default("num_frame", 1)))

    def loss(self, pred: torch.Tensor, hr: torch.Tensor) -> tuple[torch.Tensor, dict]:
        loss = self.criterion(pred.float(), hr.float())
        return loss, {"pixel": loss.detach()}


class MSEOnY(nn.Module):
    """MSE between the luma (JPEG / full-range BT.601 Y, DALI's `rgb2ycbcr`) of prediction and target.

    DALI's VSRNet example (model/model.py) trains on `mse_loss(prediction, target)` where both are the
    Y channel in [0, 1]: the network predicts Y and the chroma is copied from the upsampled input, so
    an RGB loss would add the chroma's own error to every channel's residual. Y of the RGB prediction is
    the model's Y except where its RGB conversion clamps a saturated colour."""

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        from vsrvfi.models.vsrnet import rgb_to_ycbcr

        return nn.functional.mse_loss(rgb_to_ycbcr(pred)[..., :1, :, :], rgb_to_ycbcr(target)[..., :1, :, :])


@dataclass
class VSRNetTaskConfig(SRTaskConfig):
    loss: str = opt("mse_y", choices=("charbonnier", "mse", "mse_y", "l1"))  # mse_y: DALI's (MSE on Y)


@register("vsrnet")
class VSRNetRecipe(SRRecipe):
    """VSRNet as in NVIDIA's DALI example: MSE on the Y channel (`mse_y`)."""

    task_schema = VSRNetTaskConfig


@dataclass
class EDVRTaskConfig(SRTaskConfig):
    loss_reduction: str = opt("sum", choices=("mean", "sum"))  # BasicSR's EDVR options sum over pixels
    tsa_iter: int = opt(0, min=0)           # BasicSR's tsa_iter: iterations 1 .. tsa_iter-1 train only the fusion
    tsa_only_steps: int = opt(0, min=0)     # older configs' name: that many fusion-only steps (tsa_iter = it + 1)
    offset_limit: Optional[float] = opt(None, min=0)  # DCN offset abs mean counted as divergence (null: the model's warning threshold)


@register("edvr")
class EDVRRecipe(SRRecipe):
    """EDVR as in BasicSR: Charbonnier summed over pixels, optional TSA warm start, DCN offset guard."""

    task_schema = EDVRTaskConfig

    def __init__(self, cfg: Any, model_spec: ModelSpec):
        super().__init__(cfg, model_spec)
        self._tsa_only: bool | None = None

    @staticmethod
    def fusion_only(step: int, tsa_iter: int) -> bool:
        """BasicSR's EDVRModel.optimize_parameters(current_iter): iteration 1 freezes all but the fusion,
        iteration tsa_iter unfreezes everything; its iteration is this trainer's 0-based step + 1."""
        return bool(tsa_iter) and step + 1 < tsa_iter

    @property
    def tsa_iter(self) -> int:
        """task.tsa_iter, or an older config's tsa_only_steps + 1 (its first step with every parameter)."""
        t = self.task
        return int(t.tsa_iter) or (int(t.get("tsa_only_steps", 0) or 0) + 1 if t.get("tsa_only_steps") else 0)

    def notes(self) -> list[str]:
        n = self.tsa_iter
        if not n:
            return []
        return [f"TSA warm start (BasicSR's tsa_iter {n}): steps 0 .. {n - 2} train only the fusion, "
                f"every parameter from step {n - 1} (BasicSR's iteration {n})"]

    def before_step(self, model: nn.Module, step: int) -> None:
        if self.tsa_iter:
            self._set_tsa_only(model, self.fusion_only(step, self.tsa_iter))

    def _set_tsa_only(self, model: nn.Module, on: bool) -> None:
        """BasicSR's TSA warm start: only parameters with 'fusion' in their name train."""
        base = getattr(model, "module", model)
        if self._tsa_only == on or not hasattr(base, "fusion"):
            return
        for name, p in base.named_parameters():
            p.requires_grad_(True if not on else "fusion" in name)
        self._tsa_only = on

    def diverged(self, model: nn.Module) -> bool:
        absmean = getattr(model, "offset_absmean", None)
        if absmean is None:
            return False
        limit = self.task.offset_limit
        if limit is None:
            limit = getattr(model, "offset_warn_threshold", 50.0)
        return not (absmean <= float(limit))  # also catches NaN


# ---------------------------------------------------------------------------------- interpolation

class VFIRecipe(Recipe):
    """Two frames -> the frames between them; the loss sees the model's whole output."""

    kind = "vfi"
    task_schema = VFITaskConfig

    def timestep(self, t: torch.Tensor) -> float | torch.Tensor:
        """What the model is given as the timestep of target `t` (B,)."""
        return t

    def loss(self, out: Any, img0: torch.Tensor, img1: torch.Tensor, gt: torch.Tensor) -> tuple[torch.Tensor, dict]:
        raise NotImplementedError


@dataclass
class RIFETaskConfig(VFITaskConfig):
    distill_weight: float = opt(0.01, min=0)  # leakage distillation from the privileged teacher (RIFEm: 0.005)


@register("rife")
class RIFERecipe(VFIRecipe):
    """RIFE: LapLoss(student) + LapLoss(teacher) + distill_weight x leakage distillation."""

    task_schema = RIFETaskConfig

    def __init__(self, cfg: Any, model_spec: ModelSpec):
        super().__init__(cfg, model_spec)
        from vsrvfi.models.losses import RIFELoss

        self.arbitrary = model_spec.size == "m"  # RIFEm takes a timestep; RIFE base makes the middle frame only
        if self.task.targets != 1 and not self.arbitrary:
            raise UsageError("RIFE base only interpolates the middle frame: use model.size=m (RIFEm) "
                             "for task.targets > 1")
        self.criterion = RIFELoss(float(self.task.distill_weight))

    def timestep(self, t: torch.Tensor) -> float | torch.Tensor:
        return t if self.arbitrary else 0.5

    def loss(self, out, img0, img1, gt):
        return self.criterion(out, gt)


@dataclass
class IFRNetTaskConfig(VFITaskConfig):
    geo_weight: float = opt(0.01, min=0)     # geometry consistency
    distill_weight: float = opt(0.01, min=0)  # task-oriented flow distillation from pseudo flow
    pseudo_flow: str = "dis"                # files:DIR (the official layout, trainers/pseudo_flow.py) | dis (OpenCV DIS
    #                                         on the fly, the fallback) | none (no distillation term)
    dis_preset: str = opt("medium", choices=("ultrafast", "fast", "medium"))


@register("ifrnet")
class IFRNetRecipe(VFIRecipe):
    """IFRNet: Charbonnier + census, geo_weight x geometry, distill_weight x flow distillation from pseudo
    flow (as the paper: always on; from files laid out as the official training reads them, else DIS)."""

    task_schema = IFRNetTaskConfig

    def __init__(self, cfg: Any, model_spec: ModelSpec):
        super().__init__(cfg, model_spec)
        from vsrvfi.models.losses import IFRNetLoss, PseudoFlowLabeler

        t = self.task
        self.criterion = IFRNetLoss(float(t.geo_weight), float(t.distill_weight))
        source = str(t.pseudo_flow)
        self.labeler = self.files = None
        self._batch_flow: torch.Tensor | None = None
        if source.startswith("files:"):
            from vsrvfi.trainers.pseudo_flow import FlowFiles

            self.files = FlowFiles(source[len("files:"):])
            if int(t.targets) != 1:
                raise UsageError("task.pseudo_flow=files:DIR holds one middle frame per group: use task.targets=1")
        elif source == "dis":
            self.labeler = PseudoFlowLabeler(preset=t.dis_preset)
        elif source != "none":
            raise UsageError(f"task.pseudo_flow: {source!r}: use files:DIR, dis or none")

    def notes(self) -> list[str]:
        if self.files is not None:
            return [f"pseudo flow: files in {self.files.root} ({self.files.count()} groups), as IFRNet's "
                    f"generate_flow.py writes them; distillation weight {self.task.distill_weight:g}"]
        if self.labeler is not None:
            return [f"pseudo flow: OpenCV DIS ({self.task.dis_preset}) on the fly, the fallback: no "
                    f"task.pseudo_flow=files:DIR given (the paper distils LiteFlowNet flow); "
                    f"distillation weight {self.task.distill_weight:g}"]
        return ["pseudo flow: none (task.pseudo_flow=none): no flow distillation term, unlike the paper"]

    def start_batch(self, batch: dict, clip_names: list[str]) -> None:
        self._batch_flow = self.files.batch(batch, clip_names) if self.files is not None else None

    def loss(self, out, img0, img1, gt):
        if self.files is not None:
            flow = self._batch_flow
        else:
            flow = self.labeler(img0, gt, img1) if self.labeler is not None else None
        return self.criterion(out, gt, flow)
