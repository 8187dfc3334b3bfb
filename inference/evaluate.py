"""Score a model on real video against the naive baseline: the evaluation both CLIs share.

SR: each frame is downscaled with the training pipelines' antialiased bicubic (`pipelines.png_frames
.downscale`, equal to DALI's), upscaled by the model over its window of neighbours, and compared with
the original frame; the baseline is bicubic upscaling. VFI: of every `gap` frames only the ends are
kept, the model remakes the ones between, and the baseline blends the two ends. PSNR and SSIM come
from `models.metrics` with the convention stated in `Convention.describe()`.
"""
from __future__ import annotations

import random
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from typing import Callable, Collection, Sequence

import numpy as np
import torch

from vsrvfi.inference.runtime import to_frame, to_tensor
from vsrvfi.inference.sr import Upscaler, window_indices
from vsrvfi.inference.vfi import Interpolator
from vsrvfi.models.baselines import bicubic_upscale, blend
from vsrvfi.models.metrics import describe, psnr, ssim
from vsrvfi.pipelines.png_frames import downscale


@dataclass(frozen=True)
class Convention:
    """How images are scored: Y (BT.601) or RGB, border crop, rounding to 8 bits."""

    y_channel: bool
    crop_border: int

    @classmethod
    def default(cls, task: str, scale: int = 4) -> "Convention":
        # BasicSR scores SR on Y with the scale as border; RIFE/IFRNet score VFI on RGB, whole frames.
        return cls(True, scale) if task == "sr" else cls(False, 0)

    def describe(self) -> str:
        return describe(**self.kwargs())

    def kwargs(self) -> dict:
        return {"y_channel": self.y_channel, "crop_border": self.crop_border}


@dataclass
class ClipScore:
    clip: str
    frames: int = 0  # frames scored
    cuts: int = 0  # scene cuts inside the frames read (raw videos; prepared clips are one scene)
    skipped: int = 0  # VFI gaps not scored because they span a cut
    psnr: list[float] = field(default_factory=list)
    ssim: list[float] = field(default_factory=list)
    base_psnr: list[float] = field(default_factory=list)
    base_ssim: list[float] = field(default_factory=list)

    def add(self, pred: torch.Tensor, base: torch.Tensor, target: torch.Tensor, conv: Convention) -> None:
        kw = conv.kwargs()
        self.psnr += psnr(pred, target, **kw).tolist()
        self.ssim += ssim(pred, target, **kw).tolist()
        self.base_psnr += psnr(base, target, **kw).tolist()
        self.base_ssim += ssim(base, target, **kw).tolist()
        self.frames += pred.shape[0]

    def means(self) -> dict[str, float]:
        return {k: float(np.mean(getattr(self, k))) if getattr(self, k) else float("nan")
                for k in ("psnr", "ssim", "base_psnr", "base_ssim")}

    def as_dict(self) -> dict:
        per_frame = {k: v for k, v in asdict(self).items() if isinstance(v, list)}
        return {"clip": self.clip, "frames": self.frames, "cuts": self.cuts, "skipped_gaps": self.skipped,
                **self.means(), "per_frame": per_frame}


@dataclass
class Example:
    """One scored frame for the side-by-side picture: baseline, prediction, target as (H, W, 3) uint8."""

    index: int
    baseline: np.ndarray
    prediction: np.ndarray
    target: np.ndarray
    psnr: float
    base_psnr: float


def scene_of(i: int, total: int, cuts: Collection[int]) -> tuple[int, int]:
    """[start, end) of the scene holding frame `i`, given the frames that start new scenes."""
    start = max((c for c in cuts if c <= i), default=0)
    end = min((c for c in cuts if c > i), default=total)
    return start, end


def _tick(on_frame: Callable[[int], None] | None, n: int = 1) -> None:
    if on_frame is not None:
        on_frame(n)


def spread(candidates: Sequence[int], n: int, seed: int = 0, key: str = "") -> list[int]:
    """`n` of `candidates` spread evenly, with an offset seeded by (`seed`, `key`); all when n <= 0 or n >= len.

    The sample the trainer validates on and `vsr-evaluate --frames N` scores: the same clip, N and
    seed give the same frames, so both report the same dB.
    """
    candidates = list(candidates)
    if n <= 0 or n >= len(candidates):
        return candidates
    offset = random.Random(f"{seed}:{key}").random()
    return [candidates[int((k + offset) * len(candidates) / n)] for k in range(n)]


def sr_targets(total: int, n: int, seed: int = 0, key: str = "") -> list[int]:
    """The frames an SR evaluation scores: `n` spread over the clip (all when n <= 0)."""
    return spread(range(total), n, seed, key)


def vfi_starts(total: int, gap: int, n: int, cuts: Collection[int] = (), seed: int = 0,
               key: str = "") -> tuple[list[int], int]:
    """Starts i of the VFI gaps scored (frames i+1 .. i+gap-1 are remade from i and i+gap): with n <= 0
    the gaps that tile the clip (i = 0, gap, 2*gap, ...), else `n` starts spread over the clip. Gaps
    that span a scene cut are left out; the second value counts the tiling gaps that do."""
    def spans_cut(i: int) -> bool:
        return any(i < c <= i + gap for c in cuts)

    tiled = range(0, total - gap, gap)
    skipped = sum(map(spans_cut, tiled))
    if n <= 0:
        return [i for i in tiled if not spans_cut(i)], skipped
    return spread([i for i in range(total - gap) if not spans_cut(i)], n, seed, key), skipped


def sr_frames_needed(targets: Sequence[int], total: int, window: int, padding: str,
                     cuts: Collection[int] = ()) -> set[int]:
    """Every frame an SR evaluation of `targets` reads (their windows, padded within their scene)."""
    needed: set[int] = set()
    for i in targets:
        a, b = scene_of(i, total, cuts)
        needed.update(a + j for j in window_indices(i - a, b - a, window, padding))
    return needed


def vfi_frames_needed(starts: Sequence[int], gap: int) -> set[int]:
    return {i + k for i in starts for k in range(gap + 1)}


@torch.no_grad()
def evaluate_sr(up: Upscaler, frames: Sequence[np.ndarray | None], clip: str, conv: Convention,
                padding: str = "reflection_circle", cuts: Collection[int] = (),
                on_frame: Callable[[int], None] | None = None,
                targets: Sequence[int] | None = None) -> tuple[ClipScore, Example | None]:
    """Score `up` on HR frames (H, W, 3) uint8: downscale, upscale with the model, compare.

    `frames` holds the clip's frames by index (None where not needed); `targets` are the frames scored
    (default: all). A model's window never reaches across a scene cut: each scene is padded at its own
    ends, as a prepared clip would be. `cuts` are the indices of the frames that start a new scene.
    """
    s, total = up.scale, len(frames)
    targets = list(range(total)) if targets is None else list(targets)
    shape = next(f.shape for f in frames if f is not None)
    h, w = shape[0] // s * s, shape[1] // s * s
    lr_cache: dict[int, torch.Tensor] = {}

    def hr(i: int) -> torch.Tensor:
        return torch.from_numpy(frames[i]).permute(2, 0, 1)[None, :, :h, :w]

    def lr(i: int) -> torch.Tensor:
        if i not in lr_cache:
            lr_cache[i] = downscale(hr(i), s).float().div_(255).to(up.device)
        return lr_cache[i]

    score, example = ClipScore(clip, cuts=sum(0 < c < total for c in cuts)), None
    show = targets[len(targets) // 2] if targets else -1
    for i in targets:
        a, b = scene_of(i, total, cuts)
        window = [a + j for j in window_indices(i - a, b - a, up.window, padding)]
        pred = up(torch.cat([lr(j) for j in window]))
        base = bicubic_upscale(lr(i), s)
        target = hr(i).to(up.device).float().div_(255)
        score.add(pred, base, target, conv)
        if i == show:
            example = Example(i, to_frame(base), to_frame(pred), to_frame(target), score.psnr[-1], score.base_psnr[-1])
        _tick(on_frame)
    return score, example


@torch.no_grad()
def evaluate_vfi(interp: Interpolator, frames: Sequence[np.ndarray | None], clip: str, conv: Convention,
                 gap: int = 2, cuts: Collection[int] = (),
                 on_frame: Callable[[int], None] | None = None,
                 starts: Sequence[int] | None = None) -> tuple[ClipScore, Example | None]:
    """Score `interp` on frames (H, W, 3) uint8: keep frames i and i+gap, remake those between.

    `starts` are the gaps scored (default: the clip tiled by gaps, i = 0, gap, 2*gap, ...). A gap whose
    frames span a scene cut (a frame in i+1 .. i+gap starts a new scene) is never scored: no
    interpolator can rebuild a cut, and scoring it would measure the cut. The tiled default counts
    those in `ClipScore.skipped`.
    """
    score, example = ClipScore(clip, cuts=sum(0 < c < len(frames) for c in cuts)), None
    if starts is None:
        starts, score.skipped = vfi_starts(len(frames), gap, 0, cuts)
        _tick(on_frame, score.skipped * gap)
    else:
        starts = [i for i in starts if not any(i < c <= i + gap for c in cuts)]
    show = starts[len(starts) // 2] if starts else -1
    for i in starts:
        a, b = to_tensor(frames[i], interp.device), to_tensor(frames[i + gap], interp.device)
        ts = [Fraction(k, gap) for k in range(1, gap)]
        made = interp.between(a, b, ts)
        for k, t in enumerate(ts, 1):
            target = to_tensor(frames[i + k], interp.device)
            base = blend(a, b, float(t))
            score.add(made[t], base, target, conv)
            if i == show and k == gap // 2:
                example = Example(i + k, to_frame(base), to_frame(made[t]), to_frame(target), score.psnr[-1], score.base_psnr[-1])
        _tick(on_frame, gap)
    return score, example


def summary(scores: list[ClipScore]) -> dict[str, float]:
    """Mean over clips of the per-clip means (every clip weighs the same)."""
    rows = [s.means() for s in scores if s.frames]
    return {k: float(np.mean([r[k] for r in rows])) if rows else float("nan")
            for k in ("psnr", "ssim", "base_psnr", "base_ssim")}


def format_table(scores: list[ClipScore], model: str, baseline: str, conv: Convention) -> str:
    """The per-clip table with a mean row, as printed by the evaluate command."""
    head = f"{'clip':<28} {'frames':>6} {model + ' PSNR':>14} {baseline + ' PSNR':>16} {'gain':>6} " \
           f"{model + ' SSIM':>14} {baseline + ' SSIM':>16}"
    lines = [f"scores: {conv.describe()}", head, "-" * len(head)]

    def row(name: str, frames: int, m: dict) -> str:
        return (f"{name:<28} {frames:>6} {m['psnr']:>14.2f} {m['base_psnr']:>16.2f} "
                f"{m['psnr'] - m['base_psnr']:>+6.2f} {m['ssim']:>14.4f} {m['base_ssim']:>16.4f}")

    for s in scores:
        lines.append(row(s.clip[:28], s.frames, s.means()))
    lines.append("-" * len(head))
    lines.append(row(f"mean of {len(scores)} clip(s)", sum(s.frames for s in scores), summary(scores)))
    cuts, skipped = sum(s.cuts for s in scores), sum(s.skipped for s in scores)
    if cuts:
        lines.append(f"{cuts} scene cut(s) found in the videos; "
                     + (f"{skipped} gap(s) across a cut not scored" if skipped else "no model window crossed one"))
    return "\n".join(lines)


def save_comparison(example: Example, path, labels: tuple[str, str, str], title: str = "") -> None:
    """Side-by-side PNG: baseline | model | target, full frames above and a 4x zoom of the centre below."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from vsrvfi.core.atomic import atomic_path

    images = (example.baseline, example.prediction, example.target)
    h, w = example.target.shape[:2]
    zh, zw = max(h // 4, 8), max(w // 4, 8)
    y0, x0 = (h - zh) // 2, (w - zw) // 2
    captions = (f"{labels[0]}  {example.base_psnr:.2f} dB", f"{labels[1]}  {example.psnr:.2f} dB", labels[2])
    fig, axes = plt.subplots(2, 3, figsize=(12, 4 * h / w * 2 + 0.8), squeeze=False)
    for col, (img, cap) in enumerate(zip(images, captions)):
        axes[0, col].imshow(img)
        axes[0, col].add_patch(plt.Rectangle((x0, y0), zw, zh, fill=False, edgecolor="yellow", linewidth=1))
        axes[0, col].set_title(cap, fontsize=10)
        axes[1, col].imshow(img[y0:y0 + zh, x0:x0 + zw], interpolation="nearest")
        for ax in axes[:, col]:
            ax.axis("off")
    fig.suptitle(title or f"frame {example.index}", fontsize=10)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)
