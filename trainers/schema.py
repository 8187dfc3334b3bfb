"""The training configuration's schema: one dataclass per section, with every default in one place.

configs/<model>.yaml and `key=value` overrides are merged onto these dataclasses (trainers/config.py),
so a key that is not declared here, or a value of the wrong type, is an error. The `task` section's
class comes from the model's recipe (trainers/recipes.py): SRTaskConfig or VFITaskConfig, extended
by the model's own keys (e.g. EDVR's tsa_iter). `choices` and `min` in a field's metadata are
checked after merging. Data loader defaults are LoaderOptions' own (pipelines/options.py), which
the `data` section mirrors; `loader_options` builds LoaderOptions from it for one split.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

import torch

from vsrvfi.pipelines.augment import AugmentOptions
from vsrvfi.pipelines.batch import IMAGE_DTYPES
from vsrvfi.pipelines.options import DEVICES, GPU_READERS, KINDS, LoaderOptions
from vsrvfi.trainers.schedules import SCHEDULES

MISSING = "???"
_LOADER = LoaderOptions()


def opt(default: Any = None, *, choices: tuple | None = None, min: float | None = None,
        factory: Any = None) -> Any:
    """A dataclass field with its checks: `choices` (allowed values), `min` (lowest allowed number)."""
    meta = {k: v for k, v in (("choices", choices), ("min", min)) if v is not None}
    if factory is not None:
        return field(default_factory=factory, metadata=meta)
    return field(default=default, metadata=meta)


def loader_default(name: str, **checks: Any) -> Any:
    """A `data` field whose default is LoaderOptions' own."""
    return opt(getattr(_LOADER, name), **checks)


# ------------------------------------------------------------------------------------------ sections

@dataclass
class ExperimentConfig:
    name: Optional[str] = None              # default: <model>-<size>; the run lives in <root>/<name>/
    root: str = "experiments"


@dataclass
class ModelConfig:
    name: str = MISSING                     # vsrnet | edvr | rife | ifrnet (a registered recipe)
    size: Optional[str] = None              # null: the model's default size
    kwargs: Dict[str, Any] = field(default_factory=dict)  # extra builder arguments (model-specific)
    pretrained: Optional[str] = None        # official or project checkpoint to start from
    strict: bool = True                     # pretrained weights must fit the model exactly
    pretrained_ema: bool = True             # start from the checkpoint's EMA weights when it has them (BasicSR's
    #                                         params_ema); false: its trained weights (params), the EMA from params_ema


@dataclass
class DataConfig:
    dir: Optional[str] = None               # a prepared DATA_DIR (tools/prepare_data.sh)
    loader: str = loader_default("kind", choices=KINDS)
    device: str = opt("auto", choices=("auto",) + DEVICES)  # DALI decode/augment device; auto: gpu when CUDA is there
    res: str = "auto"                       # clips the samples come from (HR for SR, frames for VFI); auto: 540p
    #                                         when the data set has it, else the tier nearest to it (272p, ...)
    lr_res: Optional[str] = loader_default("lr_res")  # SR: LR frames from this resolution's clips instead of a resize
    crop: Any = 128                         # training crop, HR pixels: N (square), [H, W], or null (full frames)
    batch_size: int = loader_default("batch_size", min=1)
    stride: int = loader_default("stride", min=1)  # frames between consecutive frames of a sequence
    step: int = loader_default("step", min=1)  # frames between consecutive sequence starts in a clip
    epoch_size: Optional[int] = loader_default("epoch_size", min=1)  # samples per epoch (null: every sequence once)
    clip_run: Optional[int] = loader_default("clip_run", min=1)  # >1: runs of adjacent sequences over consecutive batches (null: 2 decoding on the CPU, 1 on the GPU)
    workers: int = loader_default("workers", min=1)  # DALI threads / PNG DataLoader workers
    prefetch: int = loader_default("prefetch", min=1)
    readers: Optional[int] = loader_default("readers", min=1)  # DALI pipelines side by side (null: 1 on GPU, workers on CPU)
    gpu_reader: str = loader_default("gpu_reader", choices=GPU_READERS)
    dtype: str = loader_default("dtype", choices=tuple(IMAGE_DTYPES))
    augment: AugmentOptions = field(default_factory=AugmentOptions)  # probability of each (0 = off), training only
    on_bad_clip: str = opt("stop", choices=("stop", "skip"))  # a training clip that cannot be read: save and stop
    # with one line naming it, or leave it out of the run (logged and counted; --resume keeps it out)


@dataclass
class MetricConfig:
    y_channel: bool = False                 # PSNR/SSIM on BT.601 luma instead of RGB
    crop_border: int = opt(0, min=0)        # pixels dropped at each side before scoring


@dataclass
class TaskConfig:
    """Keys of every task; the model's recipe picks the subclass (SR or VFI, plus its own keys)."""
    kind: Optional[str] = opt(None, choices=("sr", "vfi"))  # null: the model's; set, it must agree
    metric: MetricConfig = field(default_factory=MetricConfig)


@dataclass
class SRTaskConfig(TaskConfig):
    scale: int = opt(4, choices=(2, 3, 4))
    loss: str = opt("charbonnier", choices=("charbonnier", "mse", "l1"))
    charbonnier_eps: float = opt(1e-6, min=0)  # sqrt(d^2 + eps^2): BasicSR's eps=1e-12 is eps^2
    loss_reduction: str = opt("mean", choices=("mean", "sum"))  # charbonnier only
    metric: MetricConfig = field(default_factory=lambda: MetricConfig(y_channel=True, crop_border=4))


@dataclass
class VFITaskConfig(TaskConfig):
    targets: int = opt(1, min=1)            # frames between the two inputs (7 for x8)


@dataclass
class OptimConfig:
    name: str = opt("adam", choices=("adam", "adamw"))
    lr: float = opt(1e-4, min=0)
    betas: Optional[List[float]] = None     # null: torch's default (0.9, 0.999)
    weight_decay: float = opt(0.0, min=0)


@dataclass
class ScheduleConfig:
    """Learning-rate schedule, stepped per iteration (the official formulas: trainers/schedules.py);
    null parameters take the schedule's default."""
    name: str = opt("constant", choices=SCHEDULES)
    eta_min: Optional[float] = None         # cosine: 0.1 x lr; warmup_cosine: 0.01 x lr; cosine_restarts: 1e-7
    warmup_steps: Optional[int] = opt(None, min=0)  # warmup_cosine: min(2000, steps / 10)
    periods: Optional[List[int]] = None     # cosine_restarts: steps of each period (BasicSR's periods)
    restart_weights: Optional[List[float]] = None  # cosine_restarts: lr weight of each period (null: all 1)
    restarts: int = opt(4, min=1)           # cosine_restarts without periods: equal periods over the run
    period: Optional[int] = opt(None, min=1)  # cosine_restarts without periods: equal periods of this many steps
    min_lr: Optional[float] = None          # cyclic: 0.1 x lr
    max_lr: Optional[float] = None          # cyclic: lr
    step_size: Optional[int] = opt(None, min=1)  # cyclic: steps up (null: step_size_epochs epochs)
    step_size_epochs: float = opt(2.0, min=0)  # cyclic: DALI's 2 epochs of batches up, 2 down
    mode: str = opt("triangular", choices=("triangular",))  # cyclic: DALI's triangle (kept for older configs)
    world_ref: Optional[int] = opt(None, min=1)  # lr x world size / world_ref (RIFE: 4); null: no scaling


@dataclass
class TrainConfig:
    steps: int = opt(1000, min=1)
    seed: int = 0
    device: str = opt("auto", choices=("auto", "cuda", "cpu"))
    amp: str = opt("off", choices=("off", "bf16", "fp16"))  # fp16 uses a grad scaler
    channels_last: bool = False
    compile: bool = False
    clip_grad: float = opt(0.0, min=0)     # max grad norm, 0 = off
    ema: float = opt(0.0, min=0)           # EMA decay, 0 = off (e.g. 0.999)
    log_every: int = opt(10, min=1)
    val_every: int = opt(500, min=0)       # 0: validate at the end only
    val_frames: int = opt(24, min=0)       # full frames scored per validation, spread over every val clip (0: all)
    val_tile: int = opt(0, min=0)          # SR validation: LR tile side (0: whole frames; tiles where memory demands)
    val_cache_mb: int = opt(2048, min=0)   # decoded validation frames kept in memory between validations
    val_benchmark: str = ""                # NAME:ROOT: validate on a standard test set with its protocol instead
                                           # (vsr-evaluate --benchmark; train.val_frames of its frames, 0: all)
    checkpoint_every: int = opt(500, min=0)
    guard_patience: int = opt(3, min=1)    # non-finite / diverged steps in a row before rolling back
    guard_lr_factor: float = opt(0.5, min=0)
    find_unused_parameters: bool = False
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)


@dataclass
class RecipeConfig:
    source: Optional[str] = None            # the official file(s) the config's values come from (docs/recipes.md)


@dataclass
class Config:
    recipe: RecipeConfig = field(default_factory=RecipeConfig)
    experiment: ExperimentConfig = field(default_factory=ExperimentConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    task: TaskConfig = field(default_factory=TaskConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)


# --------------------------------------------------------------------------- data -> LoaderOptions

RENAMED = {"loader": "kind", "dir": "data_dir"}        # data key -> LoaderOptions field
TRAIN_ONLY = ("epoch_size", "clip_run", "augment")     # other splits: every sequence once, independent, unaugmented
TRAINER_ONLY = ("on_bad_clip",)                       # read by the trainer, not the loaders
PER_SPLIT = ("task", "split", "training", "shuffle", "neighbors", "scale", "targets", "seed", "epoch", "exclude",
             "last_batch", "shard_id", "num_shards", "device_id")  # set by the task and the engine, not the config


def loader_options(data: DataConfig, *, task: str, split: str, epoch: int = 0, seed: int = 0,
                   neighbors: int = 1, scale: int = 4, targets: int = 1, exclude: tuple = ()) -> LoaderOptions:
    """The loaders' options for one split, from the `data` section (a DataConfig, typed or plain)."""
    training = split == "train"
    fields = {RENAMED.get(f.name, f.name): getattr(data, f.name) for f in dataclasses.fields(DataConfig)
              if f.name not in TRAINER_ONLY}
    if not training:  # full frames (the trainer validates with trainers.validation, not with a loader)
        fields["crop"] = None
        for name in TRAIN_ONLY:
            fields[name] = getattr(_LOADER, name)
        fields["augment"] = AugmentOptions.off()
    else:
        fields["augment"] = AugmentOptions(**{f.name: getattr(data.augment, f.name)
                                              for f in dataclasses.fields(AugmentOptions)})
    if fields["device"] == "auto":
        fields["device"] = "gpu" if torch.cuda.is_available() else "cpu"
    if fields["crop"] is not None and not isinstance(fields["crop"], int):
        fields["crop"] = tuple(int(c) for c in fields["crop"])  # [H, W]
    if fields["data_dir"] is not None:
        fields["data_dir"] = str(fields["data_dir"])
    return LoaderOptions(**fields, task=task, split=split, training=training, epoch=epoch, seed=seed,
                         neighbors=neighbors, scale=scale, targets=targets, exclude=tuple(exclude))
