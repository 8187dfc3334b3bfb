"""What both loaders share: options, the clips, the epoch plan, the number of batches.

Epochs work like torch's DistributedSampler: iterating a loader twice gives the same epoch again;
`set_epoch(e)` moves to epoch e (a new order and new augmentations when training).
"""
from __future__ import annotations

from typing import Iterator

import torch

from vsrvfi.pipelines.batch import batch_keys
from vsrvfi.pipelines.options import LoaderOptions
from vsrvfi.pipelines.sampling import Clip, all_sequences, discover_clips, num_batches, plan_epoch
from vsrvfi.core.errors import UsageError


class BatchLoader:
    """Base class: an iterable of contract batches (pipelines.batch) with len() = batches per epoch."""

    clip_kind: str | None = None  # which files to list (sampling.discover_clips' kind); None: opts.kind

    def __init__(self, opts: LoaderOptions):
        self.opts = opts.validate()
        self.shard_id, self.num_shards = opts.shard()
        self.clips: list[Clip] = discover_clips(opts.data_dir, opts.res, opts.split, self.clip_kind or opts.kind,
                                                opts.sequence_length, opts.stride, opts.lr_res, opts.exclude)
        self._check_sizes()
        self.sequences: list[tuple[int, int]] = all_sequences(self.clips, opts.sequence_length, opts.stride,
                                                              opts.step)
        self.epoch = opts.epoch
        self._plan: tuple[int, list[int]] | None = None

    # ------------------------------------------------------------------------------------ public

    @property
    def clip_names(self) -> list[str]:
        return [c.name for c in self.clips]

    @property
    def keys(self) -> tuple[str, ...]:
        return batch_keys(self.opts.task)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def plan(self) -> list[int]:
        """Indices into `self.sequences` this shard visits in the current epoch, in order."""
        if self._plan is None or self._plan[0] != self.epoch:
            o = self.opts
            self._plan = (self.epoch, plan_epoch(len(self.sequences), shuffle=o.is_shuffled, seed=o.seed,
                                                 epoch=self.epoch, epoch_size=o.epoch_size,
                                                 shard_id=self.shard_id, num_shards=self.num_shards,
                                                 sequences=self.sequences, span=o.sequence_length * o.stride,
                                                 run=o.effective_clip_run, batch_size=o.batch_size))
        return self._plan[1]

    @property
    def num_samples(self) -> int:
        """Samples this shard visits per epoch."""
        return len(self.plan())

    def batches(self) -> list[list[int]]:
        """The epoch's batches as positions in plan(), after the last-batch policy: 'drop' leaves out
        a short last batch, 'partial' keeps it, 'fill' completes it from the start of the epoch."""
        n, b = self.num_samples, self.opts.batch_size
        pos = list(range(n))
        policy = self.opts.last_batch_policy
        if policy == "fill" and n % b:
            pos += [i % n for i in range(n, n + b - n % b)]
        out = [pos[i:i + b] for i in range(0, len(pos), b)]
        if policy == "drop" and out and len(out[-1]) < b:
            out.pop()
        return out

    def windows(self) -> list[list[list[int]]]:
        """The epoch's batches in groups of clip_run (when shuffling; else one each): the batches a
        run of adjacent sequences is spread over, which a video reader reads together."""
        batches = self.batches()
        size = self.opts.effective_clip_run if self.opts.is_shuffled else 1
        return [batches[i:i + size] for i in range(0, len(batches), size)]

    def __len__(self) -> int:
        return num_batches(self.num_samples, self.opts.batch_size, self.opts.last_batch_policy)

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:  # pragma: no cover - abstract
        raise NotImplementedError

    # ---------------------------------------------------------------------------------- checks

    def _check_sizes(self) -> None:
        """Crops must fit every clip; full frames must have one size (and divide by the SR scale)."""
        o = self.opts
        crop = o.crop_hw
        sizes = {(c.height, c.width) for c in self.clips}
        if crop is None:
            if len(sizes) > 1:
                raise UsageError(f"{o.data_dir}/{o.res}: clips have different sizes {sorted(sizes)}; "
                                 "set a crop to batch them")
            h, w = next(iter(sizes))
            if o.task == "sr" and (h % o.scale or w % o.scale):
                raise UsageError(f"{o.data_dir}/{o.res}: frames of {w}x{h} do not divide by scale {o.scale}; "
                                 "set a crop")
        else:
            small = [c for c in self.clips if c.height < crop[0] or c.width < crop[1]]
            if small:
                c = small[0]
                raise UsageError(f"{c.path}: {c.width}x{c.height} is smaller than the crop {crop[1]}x{crop[0]}")
        if o.lr_res is not None:
            for c in self.clips:
                lw, lh = c.lr_size
                if (lw * o.scale, lh * o.scale) != (c.width, c.height):
                    raise UsageError(f"{c.lr_path}: {lw}x{lh} is not the {o.res} clip's {c.width}x{c.height} "
                                     f"divided by scale {o.scale}")
