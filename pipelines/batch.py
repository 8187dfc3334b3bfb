"""The batch contract: what every loader yields and every trainer consumes (one definition).

A batch is a dict of torch tensors. Images are float16 or float32 in [0, 1], RGB (BGR only when the
`swap_rgb` augmentation fired, see AUG_FLAGS), each frame NCHW, on the loader's device (CPU, or the
GPU for device "gpu").

Super-resolution (task "sr"), a sequence of T = 2N+1 frames `stride` apart:
    lr         (B, T, 3, h, w)   low-resolution input frames, h = H / scale, w = W / scale
    hr         (B, 3, H, W)      the high-resolution centre frame (frame N of the sequence)

Frame interpolation (task "vfi"), a group of G = K+2 frames `stride` apart:
    frames     (B, 2, 3, H, W)   the two inputs I0 (t = 0) and I1 (t = 1)
    target     (B, K, 3, H, W)   the K frames between them
    timesteps  (B, K) float32    time of each target between I0 and I1: (k+1)/(K+1), or 1 - that
                                 when the group was temporally reversed (I0 and I1 swapped)

Both tasks add metadata (int64):
    clip       (B,)              index into the loader's `clips` (sorted clip names)
    start      (B,)              0-based index, in the clip file, of the first frame read; the group is
                                 frames start, start + stride, ... (before any temporal reversal)
    aug        (B, 5)            0/1 flags of the augmentations applied, in AUG_FLAGS order
    crop       (B, 2)            top-left (y, x) of the crop in the source frame (0, 0 for full frames)

Augmentations are applied in AUG_FLAGS order to every frame of a sample alike: horizontal flip, vertical
flip, rotation by 90 degrees (torch.rot90(x, 1, dims=(-2, -1)), square crops only), temporal reversal
(SR: the whole sequence; VFI: I0 and I1 swap, targets keep their order and t becomes 1 - t), and
RGB -> BGR. `pipelines.augment.apply_flags` is the reference implementation.
"""
from __future__ import annotations

from typing import Mapping

import torch

TASKS = ("sr", "vfi")
AUG_FLAGS = ("hflip", "vflip", "rot90", "reverse", "swap_rgb")
IMAGE_DTYPES = {"float16": torch.float16, "float32": torch.float32}
META_KEYS = ("clip", "start", "aug", "crop")
IMAGE_KEYS = {"sr": ("lr", "hr"), "vfi": ("frames", "target")}


def batch_keys(task: str) -> tuple[str, ...]:
    """All keys of a batch of `task`, images first."""
    if task == "sr":
        return ("lr", "hr") + META_KEYS
    if task == "vfi":
        return ("frames", "target", "timesteps") + META_KEYS
    raise ValueError(f"unknown task {task!r}: use one of {', '.join(TASKS)}")


class BatchError(ValueError):
    """A batch that breaks the contract; the message names the key and the problem."""


def _check(cond: bool, key: str, problem: str) -> None:
    if not cond:
        raise BatchError(f"batch[{key!r}]: {problem}")


def validate_batch(batch: Mapping[str, torch.Tensor], task: str, *, scale: int | None = None,
                   frames: int | None = None, targets: int | None = None, dtype: torch.dtype | None = None,
                   check_range: bool = True) -> int:
    """Check that `batch` follows the contract for `task`; returns the batch size.

    `scale` (SR), `frames` (SR: T) and `targets` (VFI: K) are checked when given; `dtype` is the image
    dtype expected. Raises BatchError naming the first key that is wrong.
    """
    keys = batch_keys(task)
    missing = [k for k in keys if k not in batch]
    if missing:
        raise BatchError(f"batch: missing {', '.join(missing)} (a {task} batch has {', '.join(keys)})")
    extra = [k for k in batch if k not in keys]
    if extra:
        raise BatchError(f"batch: unexpected {', '.join(extra)} (a {task} batch has {', '.join(keys)})")
    first = IMAGE_KEYS[task][0]
    b = batch[first].shape[0] if batch[first].dim() else 0
    device = batch[first].device
    for k in keys:
        _check(batch[k].device == device, k, f"on {batch[k].device}, other tensors on {device}")
    for k in IMAGE_KEYS[task]:
        t = batch[k]
        _check(t.dtype in IMAGE_DTYPES.values(), k, f"dtype {t.dtype}, expected float16 or float32")
        if dtype is not None:
            _check(t.dtype == dtype, k, f"dtype {t.dtype}, expected {dtype}")
        _check(t.dtype == batch[first].dtype, k, f"dtype {t.dtype} differs from {first}'s {batch[first].dtype}")
        if check_range and t.numel():
            lo, hi = float(t.min()), float(t.max())
            _check(lo >= 0.0 and hi <= 1.0, k, f"values in [{lo:.4g}, {hi:.4g}], expected [0, 1]")
    if task == "sr":
        lr, hr = batch["lr"], batch["hr"]
        _check(lr.dim() == 5 and lr.shape[0] == b and lr.shape[2] == 3, "lr", f"shape {tuple(lr.shape)}, expected (B, T, 3, h, w)")
        _check(lr.shape[1] % 2 == 1, "lr", f"{lr.shape[1]} frames, expected an odd number 2N+1")
        if frames is not None:
            _check(lr.shape[1] == frames, "lr", f"{lr.shape[1]} frames, expected {frames}")
        _check(hr.dim() == 4 and hr.shape[0] == b and hr.shape[1] == 3, "hr", f"shape {tuple(hr.shape)}, expected (B, 3, H, W)")
        if scale is not None:
            _check(tuple(hr.shape[-2:]) == (lr.shape[-2] * scale, lr.shape[-1] * scale), "hr",
                   f"size {tuple(hr.shape[-2:])} is not {scale} x lr size {tuple(lr.shape[-2:])}")
    else:
        fr, tg, ts = batch["frames"], batch["target"], batch["timesteps"]
        _check(fr.dim() == 5 and fr.shape[:3] == (b, 2, 3), "frames", f"shape {tuple(fr.shape)}, expected (B, 2, 3, H, W)")
        _check(tg.dim() == 5 and tg.shape[0] == b and tg.shape[2] == 3 and tg.shape[-2:] == fr.shape[-2:], "target",
               f"shape {tuple(tg.shape)}, expected (B, K, 3, {fr.shape[-2]}, {fr.shape[-1]})")
        if targets is not None:
            _check(tg.shape[1] == targets, "target", f"{tg.shape[1]} targets, expected {targets}")
        _check(ts.dtype == torch.float32 and tuple(ts.shape) == (b, tg.shape[1]), "timesteps",
               f"{ts.dtype} {tuple(ts.shape)}, expected float32 (B, K) = ({b}, {tg.shape[1]})")
        if ts.numel():
            _check(float(ts.min()) > 0 and float(ts.max()) < 1, "timesteps", "values outside (0, 1)")
    for k, shape in (("clip", (b,)), ("start", (b,)), ("aug", (b, len(AUG_FLAGS))), ("crop", (b, 2))):
        t = batch[k]
        _check(t.dtype == torch.int64 and tuple(t.shape) == shape, k, f"{t.dtype} {tuple(t.shape)}, expected int64 {shape}")
    _check(bool(((batch["aug"] == 0) | (batch["aug"] == 1)).all()), "aug", "flags must be 0 or 1")
    for k in ("clip", "start", "crop"):
        _check(bool((batch[k] >= 0).all()), k, "negative index")
    return b
