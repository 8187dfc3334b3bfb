"""The PNG baseline loader: a torch Dataset over the extracted frames, batched by a DataLoader.

It visits the same sequences in the same order as the DALI loader (the shared plan in
pipelines.sampling), crops at the same positions when not training (centred, aligned to the SR
scale), applies the same augmentations (pipelines.augment, drawn per sample from (seed, epoch, index)
with torch's RNG), makes the SR LR input the same way (antialiased bicubic, rounded to 8 bits) and
yields the same batch layout (pipelines.batch). Decoding and augmentation run in worker processes;
batches are pinned and moved to the GPU when device is "gpu".
"""
from __future__ import annotations

import os
import signal
from typing import Iterator

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

from vsrvfi.pipelines.bad_clips import reports_bad_clips
from vsrvfi.pipelines.augment import apply_spatial, draw_flags
from vsrvfi.pipelines.batch import IMAGE_DTYPES
from vsrvfi.pipelines.loader import BatchLoader
from vsrvfi.pipelines.options import LoaderOptions
from vsrvfi.pipelines.sampling import Clip
from vsrvfi.core import layout
from vsrvfi.core.errors import MediaError


def read_png(path: str) -> np.ndarray:
    """One frame as RGB uint8 (H, W, 3); MediaError naming the file if it cannot be read."""
    img = cv2.imread(path, cv2.IMREAD_COLOR)
    if img is None:
        raise MediaError(path, "cannot read PNG frame")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def read_frames(folder, indices, box: tuple[int, int, int, int] | None) -> torch.Tensor:
    """Frames `indices` (0-based) of a frame folder, cropped to box (y, x, h, w), as uint8 (T, 3, H, W)."""
    frames = []
    for i in indices:
        img = read_png(os.path.join(folder, layout.FRAME_PATTERN % (i + 1)))
        if box is not None:
            y, x, h, w = box
            img = img[y:y + h, x:x + w]
        frames.append(img)
    return torch.from_numpy(np.ascontiguousarray(np.stack(frames))).permute(0, 3, 1, 2)


def downscale(hr: torch.Tensor, scale: int, margins: tuple[int, int, int, int] = (0, 0, 0, 0)) -> torch.Tensor:
    """Antialiased bicubic downscale of uint8 (..., 3, H, W) by `scale`, rounded back to uint8.

    `margins` (top, bottom, left, right) are real pixels around the region to downscale, at most
    2 * scale each (the cubic kernel's radius in HR pixels); they are used, and the rest of that
    radius is the region's edge pixels replicated, as DALI's fn.resize does at a frame's border.
    The same numbers as DALI's fn.resize(antialias=True, interp_type=INTERP_CUBIC) of the frame with
    the region as its ROI, up to float rounding.
    """
    top, bottom, left, right = margins
    x = hr.reshape(-1, *hr.shape[-3:]).float()
    h, w = (hr.shape[-2] - top - bottom) // scale, (hr.shape[-1] - left - right) // scale
    r = 2 * scale  # a whole number of LR pixels
    x = F.pad(x, (r - left, r - right, r - top, r - bottom), mode="replicate")
    lr = F.interpolate(x, size=(h + 4, w + 4), mode="bicubic", antialias=True, align_corners=False)
    lr = lr[..., 2:-2, 2:-2]
    return lr.round_().clamp_(0, 255).to(torch.uint8).reshape(*hr.shape[:-3], 3, h, w)


def with_margins(box: tuple[int, int, int, int], size: tuple[int, int], margin: int):
    """`box` (y, x, h, w) grown by up to `margin` pixels per side inside a frame of `size` (H, W):
    (grown box, (top, bottom, left, right) margins gained)."""
    y, x, h, w = box
    top, left = min(margin, y), min(margin, x)
    bottom, right = min(margin, size[0] - y - h), min(margin, size[1] - x - w)
    return (y - top, x - left, h + top + bottom, w + left + right), (top, bottom, left, right)


class SequenceDataset(Dataset):
    """Sample i of the epoch plan: a cropped, augmented sequence in the batch contract's layout."""

    def __init__(self, opts: LoaderOptions, clips: list[Clip], sequences: list[tuple[int, int]],
                 plan: list[int], epoch: int, shard_id: int):
        self.opts = opts
        self.clips = clips
        self.sequences = sequences
        self.plan = plan
        self.epoch = epoch
        self.shard_id = shard_id
        self.probs = opts.augmentation.probabilities()
        self.dtype = IMAGE_DTYPES[opts.dtype]

    def __len__(self) -> int:
        return len(self.plan)

    def _generator(self, index: int) -> torch.Generator:
        seed = np.random.SeedSequence([self.opts.seed, self.epoch, self.shard_id, index]).generate_state(1)[0]
        return torch.Generator().manual_seed(int(seed))

    def _anchor(self, clip: Clip, g: torch.Generator) -> tuple[int, int] | None:
        """Crop top-left, a multiple of the SR scale: random when training, else centred (as in DALI)."""
        crop, a = self.opts.crop_hw, self.opts.crop_align
        if crop is None:
            return None
        out = []
        for size, dim in zip(crop, (clip.height, clip.width)):
            room = (dim - size) // a
            pos = int(torch.randint(room + 1, (1,), generator=g)) if self.opts.is_training else room // 2
            out.append(pos * a)
        return out[0], out[1]

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        o = self.opts
        c, start = self.sequences[self.plan[index]]
        clip = self.clips[c]
        g = self._generator(index)
        anchor = self._anchor(clip, g)
        flags = draw_flags(self.probs, g)
        hflip, vflip, rot, rev, swap = (bool(f) for f in flags.tolist())
        idx = [start + j * o.stride for j in range(o.sequence_length)]
        box = None if anchor is None else (*anchor, *o.crop_hw)
        out: dict[str, torch.Tensor] = {}

        def augment(x: torch.Tensor) -> torch.Tensor:
            x = apply_spatial(x, hflip, vflip, rot)
            return x.flip(-3) if swap else x

        if o.task == "sr":
            # the LR is the crop's part of the whole frame's LR (as DALI's resize of a region of
            # interest), made from the un-augmented frames; both are augmented afterwards
            n = o.neighbors
            if o.lr_res is None:
                if box is None:
                    seq, margins = read_frames(clip.path, idx, None), (0, 0, 0, 0)
                else:
                    grown, margins = with_margins(box, (clip.height, clip.width), 2 * o.scale)
                    seq = read_frames(clip.path, idx, grown)
                lr = downscale(seq, o.scale, margins)
                top, _, left, _ = margins
                hr = seq[n, :, top:top + lr.shape[-2] * o.scale, left:left + lr.shape[-1] * o.scale]
            else:
                hr = read_frames(clip.path, [idx[n]], box)[0]
                lr_box = None if box is None else tuple(v // o.scale for v in box)
                lr = read_frames(clip.lr_path, idx, lr_box)
            lr = augment(lr)
            if rev:
                lr = lr.flip(0)
            out["lr"] = self._float(lr)
            out["hr"] = self._float(augment(hr))
        else:
            seq = augment(read_frames(clip.path, idx, box))
            inputs = seq[[0, -1]]
            t = torch.arange(1, o.targets + 1, dtype=torch.float32) / (o.targets + 1)
            if rev:
                inputs, t = inputs.flip(0), 1.0 - t
            out["frames"] = self._float(inputs)
            out["target"] = self._float(seq[1:-1])
            out["timesteps"] = t
        out["clip"] = torch.tensor(c, dtype=torch.int64)
        out["start"] = torch.tensor(start, dtype=torch.int64)
        out["aug"] = flags
        out["crop"] = torch.tensor(anchor or (0, 0), dtype=torch.int64)
        return out

    def _float(self, x: torch.Tensor) -> torch.Tensor:
        return x.to(torch.float32).div_(255.0).to(self.dtype)


WORKER_TERM_GRACE_S = 120


def _worker_init(_: int) -> None:
    torch.set_num_threads(1)  # one process per core: no oversubscription by intra-op threads
    cv2.setNumThreads(1)
    # SIGINT/SIGTERM are the main process's to handle (finish the step, save, stop; it then ends its
    # workers): a Ctrl-C or a launcher's SIGTERM reaches the whole process group, and a worker that died
    # of it would make the main process fail with "DataLoader worker is killed" before it could save.
    # Not forever, though: a worker whose iterator was abandoned is ended with SIGTERM by multiprocessing
    # at exit, which must not wait on it; so a SIGTERM leaves the worker WORKER_TERM_GRACE_S to be shut
    # down properly by its main process (which closes its loader when it stops), then ends it.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, lambda *_: signal.alarm(WORKER_TERM_GRACE_S))


class PngLoader(BatchLoader):
    """Contract batches from PNG frames through a torch DataLoader (workers, pinned memory)."""

    def __init__(self, opts: LoaderOptions):
        super().__init__(opts)

    def dataloader(self) -> DataLoader:
        o = self.opts
        ds = SequenceDataset(o, self.clips, self.sequences, self.plan(), self.epoch, self.shard_id)
        # Its own generator: iterating a DataLoader draws its workers' base seed from the generator, which
        # would otherwise be torch's global one, so a resumed run (which builds the epoch's loader again
        # mid-epoch) would leave the global RNG elsewhere than an uninterrupted run does.
        seed = np.random.SeedSequence([o.seed, self.epoch, self.shard_id, 0x10AD]).generate_state(1)[0]
        return DataLoader(ds, batch_sampler=self.batches(), num_workers=o.workers, pin_memory=o.device == "gpu",
                          prefetch_factor=o.prefetch, worker_init_fn=_worker_init, persistent_workers=False,
                          generator=torch.Generator().manual_seed(int(seed)))

    @reports_bad_clips
    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        device = None
        if self.opts.device == "gpu":
            device = torch.device("cuda", self.opts.device_id if self.opts.device_id is not None
                                  else torch.cuda.current_device())
        it = iter(self.dataloader())
        try:
            for batch in it:
                if device is not None:
                    batch = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
                yield batch
        finally:  # workers shut down now, even when an error's traceback keeps the iterator referenced
            shutdown = getattr(it, "_shutdown_workers", None)
            if shutdown is not None:
                shutdown()
