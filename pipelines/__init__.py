"""Data loaders for training: DALI video pipelines and the PNG baseline, behind one function.

    from vsrvfi.pipelines import LoaderOptions, build_loader
    loader = build_loader(kind="dali", task="sr", data_dir="data", res="720p", split="train",
                          batch_size=3, crop=(540, 960), device="gpu")
    for epoch in range(epochs):
        loader.set_epoch(epoch)
        for batch in loader:          # dict of tensors, see pipelines.batch
            ...

Both loaders take the same LoaderOptions, visit the same sequences and yield the same batch layout,
so a trainer switches between them with `kind`.
"""
from __future__ import annotations

from vsrvfi import only_as_subpackage

only_as_subpackage(__name__)

import dataclasses

from vsrvfi.pipelines.augment import AugmentOptions
from vsrvfi.pipelines.bad_clips import BadClip, named_clip
from vsrvfi.pipelines.batch import AUG_FLAGS, BatchError, batch_keys, validate_batch
from vsrvfi.pipelines.loader import BatchLoader
from vsrvfi.pipelines.options import LoaderOptions
from vsrvfi.pipelines.sampling import ShortClipWarning

__all__ = ["AUG_FLAGS", "AugmentOptions", "BadClip", "BatchError", "BatchLoader", "LoaderOptions", "ShortClipWarning",
           "batch_keys", "build_loader", "validate_batch"]


def build_loader(options: LoaderOptions | None = None, /, **fields) -> BatchLoader:
    """A loader for `options` (LoaderOptions), with any field overridden by keyword.

    `build_loader(kind="png", task="vfi", data_dir=..., res="540p", split="val", batch_size=4,
    device="cpu")` and `build_loader(LoaderOptions.from_dict(mapping), epoch=3)` both work. The
    returned loader iterates contract batches (pipelines.batch); len() is batches per epoch on this
    shard; set_epoch(e) selects the epoch (order and augmentations when training). A clip that cannot
    be read, found here or while iterating, is raised as the BadClip naming it (pipelines.bad_clips).
    """
    opts = dataclasses.replace(options or LoaderOptions(), **fields).validate()
    try:
        if opts.kind == "dali":
            from vsrvfi.pipelines.dali_video import DaliLoader

            return DaliLoader(opts)
        from vsrvfi.pipelines.png_frames import PngLoader

        return PngLoader(opts)
    except BadClip:
        raise
    except Exception as exc:
        bad = named_clip(exc, opts.data_dir)
        if bad is None:
            raise
        raise bad from exc
