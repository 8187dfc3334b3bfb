"""Validation that tells the truth: full frames of a fixed sample spread over every val clip, scored
by the one scoring loop `vsr-evaluate` uses too (`Validator.score`: the same decoding, downscale,
model runner and metrics).

The sample: `frames` frames in all (SR: target frames; VFI: gaps), divided evenly between the val
clips and spread evenly over each clip with a seeded offset (`inference.evaluate.spread`), so every
clip and its whole length count, and the same frames are scored at every validation. The decoded
frames are kept in memory between validations when they fit `cache_mb`. The result's `line()` says
what was scored, and `vsr-evaluate -c best.pth DATA_DIR --frames <per clip>` reproduces the number.
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
from vsrvfi.inference.evaluate import (ClipScore, Convention, Example, evaluate_sr, evaluate_vfi, sr_frames_needed,
                                       sr_targets, summary, vfi_frames_needed, vfi_starts)
from vsrvfi.inference.sr import Upscaler
from vsrvfi.inference.vfi import Interpolator
from vsrvfi.inference.video_io import open_source, read_selected


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

    def line(self) -> str:
        """`val: 30.98 dB vs bicubic 33.39 (-2.41) on 24 frames of 3 clips, full frames, Y ..., border 4 px`"""
        return (f"val: {self.psnr:.2f} dB vs {self.baseline} {self.base_psnr:.2f} "
                f"({self.psnr - self.base_psnr:+.2f}), SSIM {self.ssim:.4f} vs {self.base_ssim:.4f}, "
                f"on {self.frames} frames of {self.clips} clip(s), full frames, {self.convention} "
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


def plan_clip(path: str | os.PathLike, task: str, per_clip: int, seed: int = 0, window: int = 1, gap: int = 2,
              padding: str = "reflection_circle", cuts: set[int] | None = None, total: int | None = None) -> EvalClip:
    """The frames of `path` to score (`per_clip` spread evenly, seeded by the clip's name; 0: all)."""
    p, cuts = Path(path), set(cuts or ())
    total = open_source(p).info.num_frames if total is None else total
    if task == "sr":
        picks, skipped = sr_targets(total, per_clip, seed, p.stem), 0
        needed = sr_frames_needed(picks, total, window, padding, cuts)
    else:
        picks, skipped = vfi_starts(total, gap, per_clip, cuts, seed, p.stem)
        needed = vfi_frames_needed(picks, gap)
    return EvalClip(str(p), p.stem, total, picks, needed, cuts, skipped)


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
                 cache_mb: int = 2048):
        self.clips = list(clips)
        self.task, self.conv, self.per_clip, self.gap, self.padding = task, convention, per_clip, gap, padding
        self.tile, self.precision, self.cache_mb = tile, precision, cache_mb

    @classmethod
    def of_data_dir(cls, data_dir: str | os.PathLike, res: str, task: str, convention: Convention,
                    frames: int = 24, seed: int = 0, window: int = 1, gap: int = 2,
                    padding: str = "reflection_circle", **run) -> "Validator":
        """The trainer's validation: `frames` frames (VFI: gaps) in all, divided between the val clips
        of `data_dir` at `res`; `run`: tile, precision, cache_mb."""
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
    def frames_to_decode(self) -> int:
        """Frames decoded for one scoring (each clip is read up to its last needed frame)."""
        return sum(max(c.needed) + 1 for c in self.clips if c.frames is None and c.needed)

    def _frames(self, clip: EvalClip, on_frame: Callable[[int], None] | None) -> list[np.ndarray | None]:
        if clip.frames is not None:
            return clip.frames
        frames = read_selected(open_source(clip.path), clip.needed, on_frame)
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
                                example=first)
