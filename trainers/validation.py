"""Validation that tells the truth: full frames of a fixed sample spread over every val clip, scored
by the one scoring loop `vsr-evaluate` uses too (`Validator.score`: the same decoding, downscale,
model runner and metrics).

The sample: `frames` frames in all (SR: target frames; VFI: gaps), divided evenly between the val
clips and spread evenly over each clip with a seeded offset (`inference.evaluate.spread`), so every
clip and its whole length count, and the same frames are scored at every validation. The decoded
frames are kept in memory between validations when they fit `cache_mb`. The result's `line()` says
what was scored, and `vsr-evaluate -c best.pth DATA_DIR --frames <per clip>` reproduces the number.

A packed data set (DATA_DIR/sequences.json, core/seqindex.py) is scored per sequence, never per
shard file: the split's sequences are the clips. `frames` is spread over up to `frames` of them
(evenly spaced in index order with a seeded offset, one frame or gap each when there are enough),
so planning and decoding cost the chosen sequences only (Vimeo-90K's test list has 7,824), each is
read from its own first frame (a keyframe: a seek inside the shard), and no SR window or VFI gap
reaches into a neighbouring sequence. `vsr-evaluate DATA_DIR --sequences M --frames P` reproduces it.
"""
from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from torch import nn

from vsrvfi.core import layout
from vsrvfi.core.errors import DataError
from vsrvfi.core.seqindex import SequenceIndex, load_index
from vsrvfi.inference.evaluate import (ClipScore, Convention, Example, evaluate_sr, evaluate_vfi, spread,
                                       sr_frames_needed, sr_targets, summary, vfi_frames_needed, vfi_starts)
from vsrvfi.inference.sr import Upscaler
from vsrvfi.inference.vfi import Interpolator
from vsrvfi.inference.video_io import SourceVideo, open_source, read_selected


@dataclass
class ValidationResult:
    psnr: float
    ssim: float
    base_psnr: float
    base_ssim: float
    frames: int
    clips: int
    per_clip: int
    seconds: float
    convention: str
    baseline: str
    scores: list[ClipScore] = field(default_factory=list, repr=False)
    example: Example | None = field(default=None, repr=False)  # the first clip's middle scored frame
    available: int = 0  # packed data sets: sequences of the split that could be scored (0: clip files)

    def line(self) -> str:
        """`val: 30.98 dB vs bicubic 33.39 (-2.41) on 24 frames of 3 clips, full frames, Y ..., border 4 px`
        (a packed set: `... on 24 frames of 24 sequences (of 7824), ...`)."""
        what = f"{self.clips} sequences (of {self.available})" if self.available else f"{self.clips} clip(s)"
        return (f"val: {self.psnr:.2f} dB vs {self.baseline} {self.base_psnr:.2f} "
                f"({self.psnr - self.base_psnr:+.2f}), SSIM {self.ssim:.4f} vs {self.base_ssim:.4f}, "
                f"on {self.frames} frames of {what}, full frames, {self.convention} "
                f"[{self.seconds:.1f} s]")

    def as_dict(self) -> dict:
        return {"psnr": self.psnr, "ssim": self.ssim, "baseline_psnr": self.base_psnr,
                "baseline_ssim": self.base_ssim, "frames": self.frames, "clips": self.clips,
                "seconds": self.seconds}


@dataclass
class EvalClip:
    """One clip's share of the sample: which frames are scored and which must be decoded for them."""
    path: str
    name: str
    total: int
    picks: list[int]  # SR targets or VFI gap starts
    needed: set[int]
    cuts: set[int] = field(default_factory=set)  # scene cuts (video files; prepared clips are one scene)
    skipped: int = 0  # VFI gaps not scored because they span a cut
    frames: list[np.ndarray | None] | None = None  # the decoded frames, when cached
    first: int = 0  # frame 0 of the clip in its file (a sequence of a packed shard; picks are relative to it)


def plan_clip(path: str | os.PathLike, task: str, per_clip: int, seed: int = 0, window: int = 1, gap: int = 2,
              padding: str = "reflection_circle", cuts: set[int] | None = None, total: int | None = None,
              name: str | None = None, first: int = 0) -> EvalClip:
    """The frames of `path` to score (`per_clip` spread evenly, seeded by the clip's name; 0: all).

    A sequence of a packed shard is frames [first, first + total) of `path`, under its own `name`;
    picks and needed frames are counted from `first`."""
    p, cuts = Path(path), set(cuts or ())
    name = p.stem if name is None else name
    total = open_source(p).info.num_frames if total is None else total
    if task == "sr":
        picks, skipped = sr_targets(total, per_clip, seed, name), 0
        needed = sr_frames_needed(picks, total, window, padding, cuts)
    else:
        picks, skipped = vfi_starts(total, gap, per_clip, cuts, seed, name)
        needed = vfi_frames_needed(picks, gap)
    return EvalClip(str(p), name, total, picks, needed, cuts, skipped, first=first)


def sequence_candidates(index: SequenceIndex, data_dir: str | os.PathLike, res: str, split: str,
                        min_frames: int) -> list[int]:
    """Sequences of `split` with at least `min_frames` frames whose shard is complete at `res` (one stat
    per shard), in index order."""
    files, seq = index.files, index.sequences
    complete: dict[int, bool] = {}
    out = []
    for i, (f, n) in enumerate(zip(seq["file"], seq["frames"])):
        if files["split"][f] != split or n < min_frames:
            continue
        if f not in complete:
            complete[f] = layout.clip_path(data_dir, res, split, files["name"][f]).exists()
        if complete[f]:
            out.append(i)
    return out


def plan_sequences(index: SequenceIndex, data_dir: str | os.PathLike, res: str, split: str, task: str,
                   count: int, per_seq: int, seed: int = 0, window: int = 1, gap: int = 2,
                   padding: str = "reflection_circle",
                   candidates: list[int] | None = None) -> tuple[list[EvalClip], int]:
    """`count` sequences of a packed split (0: all), evenly spaced with a seeded offset, each with
    `per_seq` picks spread over its own frames (0: all), and the number of sequences there were to
    choose from (`candidates`: sequence_candidates' answer, when the caller has it already). Only the
    chosen sequences are planned: nothing is probed or decoded here."""
    cands = (sequence_candidates(index, data_dir, res, split, 1 if task == "sr" else gap + 1)
             if candidates is None else candidates)
    if not cands:
        raise DataError(layout.scenes_dir(data_dir, res, split),
                        f"no complete {split} shard at {res} holds a sequence long enough to score"
                        f"{'' if task == 'sr' else f' (VFI needs {gap + 1} frames)'}")
    seq, files = index.sequences, index.files
    clips = []
    for i in spread(cands, count, seed, f"{split}-sequences"):
        f, name = seq["file"][i], seq["name"][i]
        path = layout.clip_path(data_dir, res, split, files["name"][f])
        clips.append(plan_clip(path, task, per_seq, seed, window, gap, padding, total=seq["frames"][i], name=name,
                               first=seq["first"][i]))
    return clips, len(cands)


def make_runner(task: str, model: nn.Module, device: torch.device, precision: str = "fp32", tile: int = 0,
                flow_scale: float = 1.0) -> Upscaler | Interpolator:
    """The model runner scoring uses: an Upscaler (SR, tiled when `tile`) or an Interpolator (VFI)."""
    if task == "sr":
        return Upscaler(model, device, precision, tile)
    return Interpolator(model, device, precision, flow_scale)


class Validator:
    """Scores a model on a fixed sample of clips (see the module docstring): the one scoring loop of
    the trainer's validation and of vsr-evaluate. `of_data_dir` builds the trainer's."""

    def __init__(self, clips: Sequence[EvalClip], task: str, convention: Convention, per_clip: int,
                 gap: int = 2, padding: str = "reflection_circle", tile: int = 0, precision: str = "fp32",
                 cache_mb: int = 2048, available: int = 0):
        self.clips = list(clips)
        self.task, self.conv, self.per_clip, self.gap, self.padding = task, convention, per_clip, gap, padding
        self.tile, self.precision, self.cache_mb = tile, precision, cache_mb
        self.available = available  # packed: the split's sequences the clips were chosen from (0: clip files)
        self._sources: dict[str, SourceVideo] = {}  # one probe per file (a shard holds many sequences)

    @classmethod
    def of_data_dir(cls, data_dir: str | os.PathLike, res: str, task: str, convention: Convention,
                    frames: int = 24, seed: int = 0, window: int = 1, gap: int = 2,
                    padding: str = "reflection_circle", **run) -> "Validator":
        """The trainer's validation: `frames` frames (VFI: gaps) in all, divided between the val clips
        of `data_dir` at `res` (a packed data set: spread over up to `frames` of its val sequences, one
        frame or gap each when there are that many); `run`: tile, precision, cache_mb."""
        index = load_index(data_dir)
        if index is not None and res in index.tiers:
            cands = sequence_candidates(index, data_dir, res, "val", 1 if task == "sr" else gap + 1)
            count = per_seq = 0  # frames=0: every frame of every sequence
            if frames > 0:
                count = min(frames, len(cands))
                per_seq = math.ceil(frames / max(count, 1))
            clips, available = plan_sequences(index, data_dir, res, "val", task, count, per_seq, seed, window,
                                              gap, padding, candidates=cands)
            return cls(clips, task, convention, per_seq, gap, padding, available=available, **run)
        paths = layout.list_clips(data_dir, res, "val")
        if not paths:
            raise DataError(layout.scenes_dir(data_dir, res, "val"),
                            f"no val clips at {res}: validation needs at least one (prepare the data set "
                            "with a val split, or set train.val_every=0)")
        per_clip = math.ceil(frames / len(paths)) if frames > 0 else 0
        clips = [plan_clip(p, task, per_clip, seed, window, gap, padding) for p in paths]
        clips = [c for c in clips if c.picks]
        if not clips:
            raise DataError(paths[0].parent, f"every val clip is too short to score (VFI needs {gap + 1} frames)")
        return cls(clips, task, convention, per_clip, gap, padding, **run)

    @property
    def sequences(self) -> int:
        """Sequences scored (packed data sets; 0 for clip files): vsr-evaluate's `--sequences`."""
        return len(self.clips) if self.available else 0

    @property
    def frames_to_decode(self) -> int:
        """Frames decoded for one scoring (each clip is read up to its last needed frame)."""
        return sum(max(c.needed) + 1 for c in self.clips if c.frames is None and c.needed)

    def _frames(self, clip: EvalClip, on_frame: Callable[[int], None] | None) -> list[np.ndarray | None]:
        if clip.frames is not None:
            return clip.frames
        if clip.path not in self._sources:
            self._sources[clip.path] = open_source(clip.path)
        frames = read_selected(self._sources[clip.path], clip.needed, on_frame, clip.first, clip.total)
        cached = sum(f.nbytes for c in self.clips if c.frames is not None for f in c.frames if f is not None)
        if cached + sum(f.nbytes for f in frames if f is not None) <= self.cache_mb * 2**20:
            clip.frames = frames
        return frames

    @torch.no_grad()
    def __call__(self, model: nn.Module, device: torch.device) -> ValidationResult:
        """Score `model` (left in eval mode; the caller restores training mode)."""
        return self.score(make_runner(self.task, model, device, self.precision, self.tile))

    @torch.no_grad()
    def score(self, runner: Upscaler | Interpolator, on_frame: Callable[[int], None] | None = None,
              on_clip: Callable[[ClipScore, Example | None], None] | None = None) -> ValidationResult:
        """Score `runner` on every clip; `on_frame(n)` after decoding, `on_clip(score, example)` after each clip."""
        t0 = time.perf_counter()
        scores, first = [], None
        for clip in self.clips:
            frames = self._frames(clip, on_frame)
            if self.task == "sr":
                score, example = evaluate_sr(runner, frames, clip.name, self.conv, self.padding, clip.cuts,
                                             targets=clip.picks)
            else:
                score, example = evaluate_vfi(runner, frames, clip.name, self.conv, self.gap, clip.cuts,
                                              starts=clip.picks)
                score.skipped = clip.skipped
            scores.append(score)
            if on_clip is not None:
                on_clip(score, example)
            first = first or example
        m = summary(scores)
        return ValidationResult(psnr=m["psnr"], ssim=m["ssim"], base_psnr=m["base_psnr"], base_ssim=m["base_ssim"],
                                frames=sum(s.frames for s in scores), clips=len(scores), per_clip=self.per_clip,
                                seconds=time.perf_counter() - t0, convention=self.conv.describe(),
                                baseline="bicubic" if self.task == "sr" else "blend", scores=scores,
                                example=first, available=self.available)


# ------------------------------------------------------------------------ standard test sets (train.val_benchmark)

@dataclass
class BenchmarkValidation:
    """A validation on a standard set: its protocol's first convention (e.g. RGB for REDS4, Y for Vid4)."""

    psnr: float
    ssim: float
    frames: int
    total: int
    seconds: float
    title: str
    convention: str
    label: str
    example: Example | None = None

    def line(self) -> str:
        part = "the full protocol" if self.frames >= self.total else f"a fixed spread subset of {self.total}"
        return (f"val ({self.title}, {self.label}): {self.psnr:.2f} dB, SSIM {self.ssim:.4f}, on {self.frames} "
                f"frames ({part}), {self.convention} [{self.seconds:.1f} s]")

    def as_dict(self) -> dict:
        return {"psnr": self.psnr, "ssim": self.ssim, "frames": self.frames, "seconds": self.seconds}


class BenchmarkValidator:
    """Scores a model on a standard test set (`NAME:ROOT`) with the protocol `vsr-evaluate --benchmark`
    uses; `frames` > 0 scores that many frames spread over the set, the same ones every time."""

    def __init__(self, spec: str, task: str, model_name: str, frames: int = 0, precision: str = "fp32", tile: int = 0):
        from vsrvfi.core.errors import UsageError
        from vsrvfi.inference import protocols

        name, _, self.root = spec.partition(":")
        self.protocol = protocols.get(name)
        if self.protocol.task != task:
            raise UsageError(f"train.val_benchmark: {name} is a {self.protocol.task.upper()} set; this model does {task.upper()}")
        self.items = protocols.read(self.protocol, self.root)  # a bad layout stops the run before training
        self.model_name, self.per_clip = model_name, frames
        self.precision, self.tile = precision, tile

    @torch.no_grad()
    def __call__(self, model: nn.Module, device: torch.device) -> BenchmarkValidation:
        from vsrvfi.inference import benchmark

        p = self.protocol
        runner = make_runner(p.task, model, device, self.precision, self.tile, p.flow_scale(self.model_name))
        r = benchmark.run(p, self.root, runner, batch=8 if device.type == "cuda" else 1, limit=self.per_clip,
                          progress=False, items=self.items)
        sc = p.scorers[0]
        m = r.means()[sc.label]
        return BenchmarkValidation(m["psnr"], m["ssim"], len(r.frames), r.total, r.seconds, p.title, sc.describe(), sc.label)
