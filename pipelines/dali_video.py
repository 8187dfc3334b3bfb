"""DALI loader: sequences decoded straight from the clips, cropped and augmented inside DALI.

Decoding runs on the GPU (NVDEC; the legacy `fn.readers.video`, or `fn.experimental.readers.video`)
or on the CPU (`fn.experimental.readers.video(device="cpu")`: VP8, VP9 and MJPEG only), whose frames
go on to the GPU with gpu_reader="cpu" (GPU augmentation without NVDEC). The epoch's
plan (pipelines.sampling) is written as the reader's file list, one line per sequence
(`clip label start end`, frame numbers), and read in order: shuffling, sharding and epoch size are the
plan's, so the PNG loader can visit exactly the same sequences.

Per sample, all inside DALI: crop (random when training, else centred; the anchor a multiple of the
SR scale), flips and 90-degree rotation (one transpose plus one flip), temporal reversal, RGB->BGR
(conditional execution), the SR low-resolution input (antialiased bicubic `fn.resize` of the crop as a
region of interest of the whole frame, or a second reader over the lr_res clips that follows the same
file list line by line), and the conversion to float NCHW in [0, 1] (`fn.crop_mirror_normalize`).
For SR only the centre frame is cropped at full resolution, and the augmentations run after the
resize, on that frame and the small LR frames (they commute with the resize): about 15 % less CPU
per frame than cropping and augmenting the whole HR sequence first (docs/benchmarks.md). Batches come
through DALIGenericIterator.
"""
from __future__ import annotations

import shutil
import tempfile
import weakref
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
from nvidia.dali import fn, pipeline_def, types
from nvidia.dali import math as dmath
from nvidia.dali.plugin.base_iterator import LastBatchPolicy
from nvidia.dali.plugin.pytorch import DALIGenericIterator

from vsrvfi.pipelines.bad_clips import reports_bad_clips
from vsrvfi.pipelines.legacy_reader import check_one_size, clips_dir, fit_clips
from vsrvfi.pipelines.loader import BatchLoader
from vsrvfi.pipelines.options import LoaderOptions
from vsrvfi.pipelines.sampling import all_sequences, frames_needed
from vsrvfi.core.errors import DataError, UsageError

READER = "reader"
LR_READER = "lr_reader"
ONE_SEQUENCE_PER_LINE = 1 << 30  # reader step: each file-list line yields exactly its first sequence
_DTYPES = {"float32": types.FLOAT, "float16": types.FLOAT16}


def write_file_list(path: Path, lines: list[tuple[Path, int, int, int]]) -> Path:
    """A reader file list: one `file label start end` line per sequence (frames, end exclusive)."""
    with open(path, "w") as f:
        for clip, label, start, end in lines:
            if any(ch.isspace() for ch in str(clip)):
                raise UsageError(f"{clip}: DALI file lists cannot hold paths with spaces; rename or link it")
            f.write(f"{clip} {label} {start} {end}\n")
    return path


def _read(opts: LoaderOptions, file_list: str, name: str):
    """(video FHWC uint8, label, first frame) for each line of `file_list`, in order."""
    common = dict(file_list=file_list, sequence_length=opts.sequence_length, stride=opts.stride,
                  step=ONE_SEQUENCE_PER_LINE, random_shuffle=False, enable_frame_num=True, name=name)
    if opts.device == "gpu" and opts.gpu_reader == "legacy":
        video, label, start = fn.readers.video(device="gpu", file_list_frame_num=True, dtype=types.UINT8,
                                               image_type=types.RGB, **common)
    else:
        decode_on = "cpu" if opts.gpu_reader == "cpu" else opts.device  # cpu: decode here, augment on the GPU
        video, label, start = fn.experimental.readers.video(device=decode_on, file_list_format="frames",
                                                            file_list_include_end=False, **common)
        if decode_on != opts.device:
            video = video.gpu()
    return video, label, start


def _crop_anchor(video, crop: tuple[int, int], training: bool, align: int):
    """Top-left (y, x) of the crop, int32, a multiple of `align`: random when training, else centred."""
    shape = video.shape(dtype=types.INT32)  # (F, H, W, C), on the CPU even for GPU data
    anchors = []
    for size, dim in zip(crop, (shape[1], shape[2])):
        room = (dim - size) // align  # the number of aligned positions, minus one
        if training:
            pos = fn.cast(fn.random.uniform(range=[0.0, 1.0]) * fn.cast(room + 1, dtype=types.FLOAT),
                          dtype=types.INT32)
            pos = dmath.min(pos, room)
        else:
            pos = room // 2
        anchors.append(pos * align)
    return anchors


def _coin(p: float):
    return fn.random.coin_flip(probability=float(p), dtype=types.INT32)


def _spatial(x, hflip, vflip, rot, use_rot: bool, use_flip: bool, sequence: bool = True):
    """Flips then rot90 (torch.rot90 k=1 on H, W) as one optional transpose and one flip.

    `x` is FHWC when `sequence`, else HWC.
    """
    if use_rot:
        if fn.cast(rot, dtype=types.BOOL):
            x = fn.transpose(x, perm=[0, 2, 1, 3] if sequence else [1, 0, 2], transpose_layout=False)
        # rot90(vflip^v(hflip^h(x))) == hflip^v(vflip^(1-h)(transpose(x)))
        horizontal = hflip + rot * (vflip - hflip)
        vertical = vflip + rot * (1 - hflip - vflip)
        return fn.flip(x, horizontal=horizontal, vertical=vertical)
    if use_flip:
        return fn.flip(x, horizontal=hflip, vertical=vflip)
    return x


def _swap_rgb(video, swap):
    if fn.cast(swap, dtype=types.BOOL):
        video = fn.color_space_conversion(video, image_type=types.RGB, output_type=types.BGR)
    return video


def _reversed_order(rev, order: list[int]):
    """`order`, or its reverse when rev == 1 (per sample)."""
    fwd = types.Constant(np.array(order, dtype=np.int32))
    bwd = types.Constant(np.array(order[::-1], dtype=np.int32))
    return fwd + rev * (bwd - fwd)


def _to_float(x, dtype, layout: str):
    return fn.crop_mirror_normalize(x, dtype=dtype, output_layout=layout, mean=[0.0], std=[255.0])


def build_pipeline(opts: LoaderOptions, file_list: str, lr_file_list: str | None, seed: int, readers: int = 1,
                   batch_size: int | None = None):
    """The DALI pipeline for `opts` (task, device, crop, augmentation) reading `file_list` in order.

    With `readers` pipelines side by side, each gets an equal share of the `workers` threads.
    `batch_size` (default opts.batch_size) is the samples per run: a window of batches (DaliLoader).
    """
    o = opts
    aug = o.augmentation
    crop = o.crop_hw
    out_dtype = _DTYPES[o.dtype]
    device_id = None if o.device == "cpu" else (o.device_id if o.device_id is not None else
                                                torch.cuda.current_device())
    length = o.sequence_length
    use_flip = aug.hflip > 0 or aug.vflip > 0
    use_rot = aug.rot90 > 0
    use_rev = aug.reverse > 0
    use_swap = aug.swap_rgb > 0

    @pipeline_def(batch_size=batch_size or o.batch_size, num_threads=max(1, o.workers // readers), device_id=device_id, seed=seed,
                  prefetch_queue_depth=o.prefetch, enable_conditionals=use_rot or use_swap)
    def pipe():
        video, label, start = _read(o, file_list, READER)
        h, v, r, rev, sw = (_coin(p) for p in aug.probabilities())
        if crop is not None:
            ay, ax = _crop_anchor(video, crop, o.is_training, o.crop_align)
            crop_out = fn.cast(fn.stack(ay, ax), dtype=types.INT64)
        else:
            crop_out = fn.cast(fn.stack(start[0], start[0]), dtype=types.INT64) * 0  # (0, 0) per sample
        meta = (label, start, fn.cast(fn.stack(h, v, r, rev, sw), dtype=types.INT64), crop_out)

        def augment(x, sequence: bool = True):
            x = _spatial(x, h, v, r, use_rot, use_flip, sequence)
            return _swap_rgb(x, sw) if use_swap else x

        if o.task == "sr":
            # Only the centre frame is cropped at full resolution; the LR is the crop's part of the
            # whole frame's LR (a resize of the region of interest). Both come from the un-augmented
            # frames and are augmented afterwards (flips and rotation commute with the resize), so
            # the augmentations move one HR frame and the small LR frames, not the HR sequence.
            if crop is None:
                hr = fn.element_extract(video, element_map=[o.neighbors])
            else:
                first = fn.stack(ay * 0 + o.neighbors, ay, ax)
                hr = fn.squeeze(fn.slice(video, start=first, shape=[1, *crop], axis_names="FHW"), axis_names="F")
            if lr_file_list is None:
                # uint8 in and out, float inside: the same numbers as a float resize rounded to 8 bits
                cubic = dict(antialias=True, interp_type=types.INTERP_CUBIC)
                if crop is None:
                    shape = video.shape(dtype=types.INT32)
                    size = fn.cast(fn.stack(shape[1] // o.scale, shape[2] // o.scale), dtype=types.FLOAT)
                    lr = fn.resize(video, size=size, **cubic)
                else:
                    roi = fn.cast(fn.stack(ay, ax), dtype=types.FLOAT)
                    lr = fn.resize(video, size=[crop[0] // o.scale, crop[1] // o.scale], roi_start=roi,
                                   roi_end=roi + types.Constant(np.array(crop, dtype=np.float32)),
                                   roi_relative=False, **cubic)
            else:
                lr, lr_label, lr_start = _read(o, lr_file_list, LR_READER)
                if crop is not None:
                    lr = fn.slice(lr, start=fn.stack(ay // o.scale, ax // o.scale),
                                  shape=[crop[0] // o.scale, crop[1] // o.scale], axis_names="HW")
                meta = meta + (lr_label, lr_start)
            hr, lr = augment(hr, sequence=False), augment(lr)
            if use_rev:
                lr = fn.sequence_rearrange(lr, new_order=_reversed_order(rev, list(range(length))))
            return (_to_float(lr, out_dtype, "FCHW"), _to_float(hr, out_dtype, "CHW")) + meta
        if crop is not None:
            video = fn.slice(video, start=fn.stack(ay, ax), shape=list(crop), axis_names="HW")
        video = augment(video)
        # VFI: inputs are the group's first and last frames, the targets the ones between
        inputs_order = _reversed_order(rev, [0, length - 1]) if use_rev else [0, length - 1]
        frames = fn.sequence_rearrange(video, new_order=inputs_order)
        target = fn.sequence_rearrange(video, new_order=list(range(1, length - 1)))
        t = types.Constant(np.arange(1, length - 1, dtype=np.float32) / (length - 1))
        timesteps = t + fn.cast(rev, dtype=types.FLOAT) * (1.0 - 2.0 * t) if use_rev else t * 1.0
        return (_to_float(frames, out_dtype, "FCHW"), _to_float(target, out_dtype, "FCHW"), timesteps) + meta

    return pipe()


def _largest_window(windows: list[list[list[int]]], default: int) -> int:
    return max((sum(len(b) for b in w) for w in windows), default=default)


# What DALI's CPU video reader decodes (its FFmpeg build has no H.264, HEVC or AV1 decoder).
CPU_CODECS = ("vp9", "vp8", "mjpeg")


def check_cpu_codecs(clips) -> None:
    """One line before any pipeline is built when clips need NVDEC but the loader runs on the CPU."""
    bad = [c for c in clips if c.codec not in CPU_CODECS]
    if bad:
        codecs = ", ".join(sorted({c.codec for c in bad}))
        # UsageError, not DataError: no clip is at fault (data.on_bad_clip must not skip them one by one)
        raise UsageError(f"{Path(bad[0].path).parent}: {codecs} clips ({len(bad)} of {len(clips)}) need a GPU "
                         f"(NVDEC): DALI's CPU reader decodes only VP9, VP8 and MJPEG; prepare the data set with "
                         f"--codec vp9, or train with data.loader=png, or on a GPU")


class DaliLoader(BatchLoader):
    """Contract batches (pipelines.batch) from DALI pipelines over the clips; see the module docstring.

    A pipeline run decodes a window of batches (BatchLoader.windows(): clip_run batches when
    shuffling, else one) with its samples in clip and frame order, so that a run of adjacent
    sequences is decoded straight through; the window is put back in plan order on the way out.
    `opts.num_readers` pipelines run side by side (a CPU video reader decodes on its own single
    thread, so this is how decoding uses several cores); window j comes from pipeline j % readers,
    so the order is the plan's whatever the number of pipelines.
    """

    def __init__(self, opts: LoaderOptions):
        super().__init__(opts)
        if opts.device == "cpu" or opts.gpu_reader == "cpu":
            check_cpu_codecs(self.clips)
        elif opts.gpu_reader == "legacy":
            self._fit_legacy_reader()
        self._tmp = Path(tempfile.mkdtemp(prefix="dali-filelist-"))
        weakref.finalize(self, shutil.rmtree, self._tmp, True)
        self._built: tuple[int, list[DALIGenericIterator], list[list[list[int]]], list[list[int]]] | None = None
        self._clean = False  # True when the built iterators sit at the start of an epoch

    def _fit_legacy_reader(self) -> None:
        """The legacy GPU reader's limits (pipelines.legacy_reader), checked before any pipeline is built:
        one frame size per pipeline (else one line), and its own frame count and frame-rate check per
        clip (clips cut or left out, one warning line each), so no epoch's pipeline build fails on them."""
        o = self.opts
        where = clips_dir(self.clips)
        check_one_size(self.clips, where)
        clips = fit_clips(self.clips, frames_needed(o.sequence_length, o.stride))
        if not clips:
            raise DataError(where, "no clip is readable by DALI's legacy GPU reader (the warnings say why); "
                                   "set data.gpu_reader=experimental")
        if clips != self.clips:
            self.clips = clips
            self.sequences = all_sequences(clips, o.sequence_length, o.stride, o.step)
            self._plan = None

    def output_names(self) -> list[str]:
        meta = ["clip", "start", "aug", "crop"]
        if self.opts.task == "sr":
            extra = ["lr_clip", "lr_start"] if self.opts.lr_res else []
            return ["lr", "hr"] + meta + extra
        return ["frames", "target", "timesteps"] + meta

    def _read_order(self, window: list[list[int]]) -> list[int]:
        """Indices into the window's samples (plan order) in the order the reader reads them: plan order
        for a single batch, else clip and frame order (a run's adjacent sequences back to back)."""
        if len(window) == 1:
            return list(range(len(window[0])))
        plan = self.plan()
        seqs = [plan[p] for b in window for p in b]  # indices into all_sequences(): clip, then frame order
        return sorted(range(len(seqs)), key=lambda i: (seqs[i], i))

    def _file_lists(self, positions: list[int], tag: str) -> tuple[str, str | None]:
        o = self.opts
        span = o.sequence_length * o.stride
        plan = self.plan()
        hr, lr = [], []
        for p in positions:
            c, s = self.sequences[plan[p]]
            clip = self.clips[c]
            hr.append((clip.path, c, s, s + span))
            if o.lr_res:
                lr.append((clip.lr_path, c, s, s + span))
        hr_list = write_file_list(self._tmp / f"{tag}.txt", hr)
        lr_list = write_file_list(self._tmp / f"{tag}-lr.txt", lr) if o.lr_res else None
        return str(hr_list), (str(lr_list) if lr_list else None)

    def reader_lists(self, readers: int) -> list[tuple[str, str | None]]:
        """The reader file lists (HR, LR or None) of `readers` pipelines for the current epoch, in
        read order: pipeline k reads windows k, k + readers, ..."""
        windows = self.windows()
        return self._write_lists(windows, [self._read_order(w) for w in windows], readers)

    def _write_lists(self, windows: list[list[list[int]]], orders: list[list[int]],
                     readers: int) -> list[tuple[str, str | None]]:
        lists = []
        for k in range(readers):
            mine = []
            for w, order in zip(windows[k::readers], orders[k::readers]):
                in_plan_order = [p for b in w for p in b]
                mine += [in_plan_order[i] for i in order]
            lists.append(self._file_lists(mine, f"epoch{self.epoch}-reader{k}"))
        return lists

    def window_samples(self) -> int:
        """Samples per pipeline run: the largest window."""
        return _largest_window(self.windows(), self.opts.batch_size)

    def _define(self) -> tuple[list[list[list[int]]], list[list[int]], list]:
        """The epoch's windows, read orders and pipelines (defined, not built)."""
        windows = self.windows()
        orders = [self._read_order(w) for w in windows]
        readers = max(1, min(self.opts.num_readers, len(windows)))
        base = int(np.random.default_rng([self.opts.seed, self.epoch, self.shard_id]).integers(2 ** 31 - readers))
        run_size = _largest_window(windows, self.opts.batch_size)
        pipes = [build_pipeline(self.opts, hr_list, lr_list, base + k, readers, batch_size=run_size)
                 for k, (hr_list, lr_list) in enumerate(self._write_lists(windows, orders, readers))]
        return windows, orders, pipes

    def define_pipelines(self) -> list:
        """The current epoch's DALI pipelines, defined but not built: DALI checks operator and argument
        names and argument types as the graph is defined, which needs no GPU even for device="gpu"
        (give opts.device_id then). For checks; iterating the loader builds its own."""
        return self._define()[2]

    def _build(self) -> None:
        self._built = None  # release the previous pipelines first
        windows, orders, pipes = self._define()
        iterators = [DALIGenericIterator(pipe, self.output_names(), reader_name=READER, auto_reset=True,
                                         last_batch_policy=LastBatchPolicy.PARTIAL, prepare_first_batch=False)
                     for pipe in pipes]
        self._built = (self.epoch, iterators, windows, orders)
        self._clean = True

    @reports_bad_clips
    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        # DALI iterators cannot restart mid-epoch: rebuild when the last pass stopped early
        if self._built is None or self._built[0] != self.epoch or not self._clean:
            self._build()
        _, iterators, windows, orders = self._built
        self._clean = False
        for j, (window, order) in enumerate(zip(windows, orders)):
            out = next(iterators[j % len(iterators)])[0]  # the window in read order
            in_order = order == list(range(len(order)))
            where = None if in_order else torch.from_numpy(np.argsort(order))  # read position of each sample
            first = 0
            for b in window:
                if where is None:  # read in plan order: each batch is a slice (a view, no copy)
                    yield self._to_contract({k: v[first:first + len(b)] for k, v in out.items()})
                else:
                    idx = where[first:first + len(b)]
                    yield self._to_contract({k: v[idx.to(v.device)] for k, v in out.items()})
                first += len(b)
        for it in iterators:  # reach each iterator's end so that it resets itself for the next pass
            try:
                next(it)
            except StopIteration:
                continue
            raise RuntimeError("DALI pipeline yielded more batches than planned")
        self._clean = True

    def _to_contract(self, d: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        batch = {k: d[k] for k in self.keys if k not in ("clip", "start")}
        device = batch[self.keys[0]].device
        batch["clip"] = d["clip"].reshape(-1).to(device=device, dtype=torch.int64)
        batch["start"] = d["start"].reshape(-1).to(device=device, dtype=torch.int64)
        batch["aug"] = batch["aug"].to(device)
        batch["crop"] = d["crop"].to(device)
        if "lr_clip" in d and not (torch.equal(d["lr_clip"].reshape(-1).cpu(), batch["clip"].cpu()) and
                                   torch.equal(d["lr_start"].reshape(-1).cpu(), batch["start"].cpu())):
            raise RuntimeError("DALI HR and LR readers went out of step")  # would be a DALI bug
        if "timesteps" in batch:
            batch["timesteps"] = batch["timesteps"].to(device=device, dtype=torch.float32)
        return batch
