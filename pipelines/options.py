"""Loader options: one dataclass for both loaders and both tasks (the trainer builds it from its data schema)."""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from typing import Any, Mapping

from vsrvfi.pipelines.augment import AugmentOptions
from vsrvfi.pipelines.batch import IMAGE_DTYPES, TASKS
from vsrvfi.core.errors import UsageError

KINDS = ("dali", "png", "torchcodec", "decord")  # the last two: pipelines.peers (optional extra [peers])
DEVICES = ("cpu", "gpu")
LAST_BATCH = ("drop", "partial", "fill")
GPU_READERS = ("legacy", "experimental", "cpu")  # cpu: VP9 decoded on the CPU, augmented on the GPU (no NVDEC)


@dataclass
class LoaderOptions:
    """Everything a loader needs; defaults follow the DALI video super-resolution example.

    Sequences: SR reads 2N+1 frames (N = `neighbors`), VFI reads K+2 frames (K = `targets`: 1 for
    triplets, 7 for x8), `stride` frames apart (the VFI frame gap). Sequence starts are `step` apart
    in each clip (1: every frame starts one). `crop` is the HR crop, an int (square) or (H, W); None
    keeps full frames. Training draws random crops and augmentations and reshuffles per (seed, epoch);
    otherwise crops are centred, nothing is augmented and the order is fixed.

    `clip_run` > 1 trades some independence between batches for decoding speed: a shuffled epoch is
    then made of runs of `clip_run` adjacent sequences of a clip, one seek each instead of one per
    sample, spread over `clip_run` consecutive batches (each batch still holds `batch_size`
    different runs; pipelines.sampling.adjacent_runs). Crops and augmentations stay per sample.
    What it saves is seeks, so it helps the readers that decode a run straight through: DALI's CPU
    reader and the experimental GPU reader. The legacy GPU reader (`gpu_reader="legacy"`) seeks and
    flushes its decoder for every sequence (DALI's video_loader.cc, read_file), so clip_run gains it
    nothing; the experimental reader makes a decoder per file-list line at pipeline build and a new
    one whenever the file changes, and the pipelines are rebuilt every epoch. The GPU suite measures
    both readers at clip_run 1 and 2 (benchmarks/gpu_suite.py, loader stage).
    """

    kind: str = "dali"                 # dali | png | torchcodec | decord (pipelines.peers)
    task: str = "sr"                   # sr | vfi
    data_dir: str = "data"
    res: str = "540p"                  # clips the samples come from (HR for SR)
    split: str = "train"
    batch_size: int = 3
    device: str = "gpu"                # gpu (NVDEC decode, GPU augmentation) | cpu
    training: bool | None = None       # None: split == "train"
    crop: int | tuple[int, int] | None = None
    neighbors: int = 1                 # SR: N, sequences of 2N+1 frames
    scale: int = 4                     # SR: 4 or 2
    lr_res: str | None = None          # SR: LR frames from this resolution's clips instead of a resize
    targets: int = 1                   # VFI: K frames between the two inputs
    stride: int = 1                    # frames between consecutive frames of a sequence
    step: int = 1                      # frames between consecutive sequence starts in a clip
    epoch_size: int | None = None      # samples per epoch, all shards together; None: every sequence once
    augment: AugmentOptions = field(default_factory=AugmentOptions)
    shuffle: bool | None = None        # None: same as training
    clip_run: int | None = None        # shuffled: adjacent sequences read in a row, over as many batches (1: all independent); None: 2 when decoding on the CPU, else 1
    seed: int = 0
    epoch: int = 0                     # with seed, picks the epoch's order and augmentations
    workers: int = 2                   # DALI CPU threads / PNG DataLoader worker processes
    prefetch: int = 2                  # DALI prefetch queue depth / PNG batches prefetched per worker
    dtype: str = "float32"             # float32 | float16
    last_batch: str | None = None      # drop | partial | fill; None: drop when training, else partial
    exclude: tuple[str, ...] = ()      # clip names left out (the trainer's data.on_bad_clip=skip)
    shard_id: int | None = None        # None: torch.distributed rank when initialised, else 0
    num_shards: int | None = None      # None: torch.distributed world size when initialised, else 1
    readers: int | None = None         # DALI: parallel pipelines, one decoding thread each; None: 1 on GPU, workers on CPU
    gpu_reader: str = "legacy"         # legacy (fn.readers.video) | experimental (fn.experimental.readers.video) | cpu (CPU decoding, GPU augmentation)
    device_id: int | None = None       # GPU index; None: torch.cuda.current_device()

    # ------------------------------------------------------------------------------- derived values

    @property
    def is_training(self) -> bool:
        return self.split == "train" if self.training is None else bool(self.training)

    @property
    def is_shuffled(self) -> bool:
        return self.is_training if self.shuffle is None else bool(self.shuffle)

    @property
    def sequence_length(self) -> int:
        """Frames read per sample: 2N+1 (SR) or K+2 (VFI)."""
        return 2 * self.neighbors + 1 if self.task == "sr" else self.targets + 2

    @property
    def crop_hw(self) -> tuple[int, int] | None:
        if self.crop is None:
            return None
        if isinstance(self.crop, int):
            return (self.crop, self.crop)
        h, w = self.crop
        return (int(h), int(w))

    @property
    def crop_align(self) -> int:
        """Crop positions are multiples of this: the SR scale, so an HR crop maps onto whole LR pixels; 1 for VFI."""
        return self.scale if self.task == "sr" else 1

    @property
    def num_readers(self) -> int:
        """DALI pipelines run side by side: a CPU video reader decodes on one thread, so one per core."""
        if self.readers is not None:
            return int(self.readers)
        return 1 if self.device == "gpu" and self.gpu_reader != "cpu" else self.workers

    @property
    def effective_clip_run(self) -> int:
        """`clip_run`, or its default: 2 where DALI decodes on the CPU (device cpu, or gpu_reader cpu),
        1 on the GPU. Measured on real 720p footage at the seed setting (docs/benchmarks.md, "Peers"):
        DALI's CPU reader delivers 52 % of raw decoding's frames/s at 2 against 49 % at 1; the legacy
        GPU reader gains nothing from runs. Every loader kind follows the same rule, so DALI and the PNG
        baseline on one device still get the same batches."""
        if self.clip_run is not None:
            return int(self.clip_run)
        return 2 if self.device == "cpu" or self.gpu_reader == "cpu" else 1

    @property
    def last_batch_policy(self) -> str:
        return self.last_batch or ("drop" if self.is_training else "partial")

    @property
    def augmentation(self) -> AugmentOptions:
        """The augmentation probabilities in effect: none unless training; rot90 only for square crops."""
        if not self.is_training:
            return AugmentOptions.off()
        a = dataclasses.replace(self.augment)
        crop = self.crop_hw
        if crop is None or crop[0] != crop[1]:
            a.rot90 = 0.0
        return a

    def shard(self) -> tuple[int, int]:
        """(shard_id, num_shards): explicit values, else torch.distributed's rank and world size."""
        sid, n = self.shard_id, self.num_shards
        if sid is None or n is None:
            rank, world = 0, 1
            try:
                import torch.distributed as dist

                if dist.is_available() and dist.is_initialized():
                    rank, world = dist.get_rank(), dist.get_world_size()
            except ImportError:  # pragma: no cover
                pass
            sid = rank if sid is None else sid
            n = world if n is None else n
        if not 0 <= sid < n:
            raise UsageError(f"shard_id {sid} is not in [0, num_shards={n})")
        return sid, n

    def validate(self) -> "LoaderOptions":
        """Check values; raises UsageError (one line) naming the option. Returns self."""
        def bad(name: str, problem: str) -> UsageError:
            return UsageError(f"loader option {name}={getattr(self, name)!r}: {problem}")

        for name, choices in (("kind", KINDS), ("task", TASKS), ("device", DEVICES),
                              ("dtype", tuple(IMAGE_DTYPES)), ("gpu_reader", GPU_READERS)):
            if getattr(self, name) not in choices:
                raise bad(name, f"use one of {', '.join(choices)}")
        if self.last_batch is not None and self.last_batch not in LAST_BATCH:
            raise bad("last_batch", f"use one of {', '.join(LAST_BATCH)}")
        for name in ("batch_size", "stride", "step", "workers", "prefetch"):
            if int(getattr(self, name)) < 1:
                raise bad(name, "must be at least 1")
        if self.clip_run is not None and self.clip_run < 1:
            raise bad("clip_run", "must be at least 1 (or null)")
        if self.neighbors < 0:
            raise bad("neighbors", "must be 0 or more")
        if self.targets < 1:
            raise bad("targets", "must be at least 1")
        if self.task == "sr" and self.scale not in (2, 3, 4):
            raise bad("scale", "use 2, 3 or 4")
        if self.readers is not None and self.readers < 1:
            raise bad("readers", "must be at least 1 (or null)")
        if self.epoch_size is not None and self.epoch_size < 1:
            raise bad("epoch_size", "must be at least 1 (or null)")
        crop = self.crop_hw
        if crop is not None:
            if min(crop) < 1:
                raise bad("crop", "must be positive")
            if self.task == "sr" and (crop[0] % self.scale or crop[1] % self.scale):
                raise bad("crop", f"height and width must be multiples of scale {self.scale}")
        if self.lr_res is not None and self.task != "sr":
            raise bad("lr_res", "only super-resolution has an LR input")
        try:
            self.augment.validate()
        except ValueError as exc:
            raise UsageError(f"loader option {exc}") from None
        self.shard()
        return self

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "LoaderOptions":
        """Build from a plain dict (e.g. a YAML section); unknown keys are an error (likely typos)."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise UsageError(f"unknown loader option(s): {', '.join(unknown)} (known: {', '.join(sorted(names))})")
        d = dict(d)
        if isinstance(d.get("augment"), Mapping):
            aug_names = {f.name for f in dataclasses.fields(AugmentOptions)}
            bad = sorted(set(d["augment"]) - aug_names)
            if bad:
                raise UsageError(f"unknown augment option(s): {', '.join(bad)} (known: {', '.join(sorted(aug_names))})")
            d["augment"] = AugmentOptions(**d["augment"])
        if isinstance(d.get("crop"), list):
            d["crop"] = tuple(d["crop"])
        if "data_dir" in d:
            d["data_dir"] = os.fspath(d["data_dir"])
        return cls(**d)
