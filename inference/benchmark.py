"""Score a model on a standard test set with its protocol (`inference.protocols`), batched.

SR: every scored frame is the centre of the model's window of the set's LR frames (padded at clip
ends with the protocol's rule), upscaled in batches of `batch` windows. VFI: the middle frame of each
triplet is made from its neighbours in batches of `batch` triplets of one size. Each output is scored
with every `Scorer` of the protocol; scores are kept per frame, averaged per clip, then over clips
(BasicSR: per folder, then folders; the VFI sets: over triplets, each triplet its own clip).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from vsrvfi.core.atomic import atomic_path
from vsrvfi.core.errors import DataError
from vsrvfi.inference.evaluate import spread
from vsrvfi.inference.protocols import Protocol, Scorer, read
from vsrvfi.inference.runtime import to_frame, to_tensor
from vsrvfi.inference.sr import Upscaler, window_indices
from vsrvfi.inference.testsets import SRClip, Triplet
from vsrvfi.inference.vfi import Interpolator
from vsrvfi.models.matlab_resize import downscale_uint8
from vsrvfi.models.metrics import interpolation_error, psnr, ssim, ssim_3d


def load_rgb(path: Path) -> np.ndarray:
    """(H, W, 3) uint8 RGB; DataError naming the file when it cannot be read."""
    try:
        with Image.open(path) as im:
            return np.array(im.convert("RGB"))
    except (OSError, ValueError) as exc:
        raise DataError(path, f"cannot read image ({exc})") from None


def score(pred: torch.Tensor, target: torch.Tensor, sc: Scorer) -> dict[str, list[float]]:
    """Per-image scores of (N, 3, H, W) tensors in [0, 1] under one convention."""
    kw = {"crop_border": sc.crop_border, "y_channel": sc.y_channel}
    out = {"psnr": psnr(pred, target, quantize=sc.round_pred, **kw).tolist()}
    if sc.ssim == "2d":
        out["ssim"] = ssim(pred, target, quantize=sc.ssim_round, **kw).tolist()
    else:
        out["ssim"] = ssim_3d(pred, target, quantize=sc.ssim_round).tolist()
    if sc.ie:
        out["ie"] = interpolation_error(pred, target).tolist()
    return out


@dataclass
class FrameScore:
    clip: str
    frame: str                                  # the GT file's name within its clip
    scores: dict[str, dict[str, float]]         # scorer label -> {"psnr": .., "ssim": .., ["ie": ..]}


@dataclass
class BenchmarkResult:
    protocol: str
    labels: list[str]
    frames: list[FrameScore] = field(default_factory=list)
    seconds: float = 0.0
    precision: str = "fp32"
    device: str = "cpu"
    subset: int = 0                             # frames scored out of the set when a subset was asked for
    total: int = 0                              # frames the full protocol scores
    made_lr: bool = False

    def clips(self) -> dict[str, dict[str, dict[str, float]]]:
        """clip -> label -> metric -> mean over the clip's frames."""
        groups: dict[str, list[FrameScore]] = {}
        for f in self.frames:
            groups.setdefault(f.clip, []).append(f)
        return {c: {lb: {m: float(np.mean([f.scores[lb][m] for f in fs])) for m in fs[0].scores[lb]}
                    for lb in self.labels} for c, fs in groups.items()}

    def means(self) -> dict[str, dict[str, float]]:
        """label -> metric -> mean over clips of the per-clip means (every clip weighs the same)."""
        per_clip = list(self.clips().values())
        if not per_clip:
            return {lb: {} for lb in self.labels}
        return {lb: {m: float(np.mean([c[lb][m] for c in per_clip])) for m in per_clip[0][lb]}
                for lb in self.labels}

    def as_dict(self) -> dict:
        return {"protocol": self.protocol, "precision": self.precision, "device": self.device,
                "frames_scored": len(self.frames), "frames_in_protocol": self.total, "subset": bool(self.subset),
                "lr_made_here_with_matlab_bicubic": self.made_lr, "seconds": self.seconds,
                "set": self.means(), "clips": self.clips(),
                "frames": [{"clip": f.clip, "frame": f.frame, **f.scores} for f in self.frames]}


def _save(save_dir: Path | None, rel: Path, frame: np.ndarray) -> None:
    if save_dir is None:
        return
    path = save_dir / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        Image.fromarray(frame).save(tmp, format="PNG")


def _record(result: BenchmarkResult, protocol: Protocol, clip: str, names: Sequence[str],
            pred: torch.Tensor, target: torch.Tensor) -> None:
    per = {sc.label: score(pred, target, sc) for sc in protocol.scorers}
    for k, name in enumerate(names):
        result.frames.append(FrameScore(clip, name, {lb: {m: v[k] for m, v in d.items()} for lb, d in per.items()}))


def sr_targets(clips: list[SRClip]) -> list[tuple[int, int]]:
    """(clip index, frame index) of every frame the protocol scores."""
    out = []
    for c, clip in enumerate(clips):
        out += [(c, len(clip.gt) // 2)] if clip.centre_only else [(c, i) for i in range(len(clip.gt))]
    return out


def run_sr(protocol: Protocol, clips: list[SRClip], up: Upscaler, batch: int = 1, limit: int = 0,
           save_dir: Path | None = None, tick: Callable[[int], None] | None = None) -> BenchmarkResult:
    all_targets = sr_targets(clips)
    targets = spread(all_targets, limit) if limit else all_targets
    result = BenchmarkResult(protocol.name, [s.label for s in protocol.scorers], subset=limit and len(targets),
                             total=len(all_targets), made_lr=any(c.lr is None for c in clips))
    s = up.scale
    cache: dict[tuple[int, int], torch.Tensor] = {}

    def lr(c: int, i: int) -> torch.Tensor:
        if (c, i) not in cache:
            clip = clips[c]
            img = load_rgb(clip.lr[i]) if clip.lr is not None else downscale_uint8(load_rgb(clip.gt[i]), s)
            cache[(c, i)] = to_tensor(img, up.device)[0]
        return cache[(c, i)]

    def flush(group: list[tuple[int, int]], x: list[torch.Tensor]) -> None:
        gts = [load_rgb(clips[c].gt[i]) for c, i in group]
        lr_h, lr_w = x[0].shape[-2:]
        for (c, i), gt in zip(group, gts):
            if gt.shape[0] != lr_h * s or gt.shape[1] != lr_w * s:
                raise DataError(clips[c].gt[i], f"GT is {gt.shape[1]}x{gt.shape[0]}, not {s}x the LR {lr_w}x{lr_h}")
        pred = up(torch.stack(x))
        target = to_tensor(gts, up.device)
        for k, (c, i) in enumerate(group):  # scored one by one: frames of different clips share a batch
            clip = clips[c]
            _record(result, protocol, clip.name, [clip.gt[i].name], pred[k:k + 1], target[k:k + 1])
            _save(save_dir, Path(clip.name) / clip.gt[i].name, to_frame(pred[k]))
        if tick:
            tick(len(group))

    group: list[tuple[int, int]] = []
    windows: list[torch.Tensor] = []
    for c, i in targets:  # batches of `batch` windows of one LR size, across clips (Vimeo-90K-T: one frame each)
        clip = clips[c]
        w = torch.stack([lr(c, j) for j in window_indices(i, len(clip.gt), up.window, protocol.window_padding)])
        if group and (len(group) >= batch or windows[0].shape != w.shape):
            flush(group, windows)
            group, windows = [], []
        group.append((c, i))
        windows.append(w)
        for key in [k for k in cache if k[0] < c or (k[0] == c and k[1] < i - up.window)]:
            del cache[key]  # windows move forward: no later window reaches these
    if group:
        flush(group, windows)
    return result


def _canvas(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    h, w = x.shape[-2:]
    if h > size[0] or w > size[1]:
        raise ValueError(f"frame {w}x{h} is larger than the protocol's {size[1]}x{size[0]} canvas")
    return F.pad(x, (0, size[1] - w, 0, size[0] - h))  # zeros right and below, frame top-left


def run_vfi(protocol: Protocol, triplets: list[Triplet], interp: Interpolator, batch: int = 1, limit: int = 0,
            save_dir: Path | None = None, tick: Callable[[int], None] | None = None) -> BenchmarkResult:
    chosen = spread(triplets, limit) if limit else triplets
    result = BenchmarkResult(protocol.name, [s.label for s in protocol.scorers], subset=limit and len(chosen),
                             total=len(triplets))
    pending: list[tuple[Triplet, np.ndarray, np.ndarray, np.ndarray]] = []

    def flush() -> None:
        if not pending:
            return
        a = to_tensor([p[1] for p in pending], interp.device)
        b = to_tensor([p[2] for p in pending], interp.device)
        h, w = a.shape[-2:]
        if protocol.canvas:
            a, b = _canvas(a, protocol.canvas), _canvas(b, protocol.canvas)
        pred = interp.midpoint(a, b)[..., :h, :w]
        target = to_tensor([p[3] for p in pending], interp.device)
        for k, (t, *_rest) in enumerate(pending):
            _record(result, protocol, t.name, [t.gt.name], pred[k:k + 1], target[k:k + 1])
            _save(save_dir, Path(t.save_as()), to_frame(pred[k]))
        if tick:
            tick(len(pending))
        pending.clear()

    for t in chosen:
        f0, f1, gt = load_rgb(t.frame0), load_rgb(t.frame1), load_rgb(t.gt)
        if not f0.shape == f1.shape == gt.shape:
            raise DataError(t.gt, f"frames of triplet {t.name} differ in size: {f0.shape}, {f1.shape}, {gt.shape}")
        if pending and (pending[0][1].shape != f0.shape or len(pending) >= batch):
            flush()
        pending.append((t, f0, f1, gt))
    flush()
    return result


def run(protocol: Protocol, root: str | Path, runner: Upscaler | Interpolator, batch: int = 1, limit: int = 0,
        make_lr: bool = False, save_dir: Path | None = None, progress: bool = True,
        items: list | None = None) -> BenchmarkResult:
    """Score `runner` on the set at `root` with `protocol`; `limit` > 0 scores that many frames spread
    over the set (the same ones every time); `items` reuses a set already read."""
    from tqdm import tqdm

    t0 = time.perf_counter()
    items = read(protocol, root, make_lr) if items is None else items
    total = len(sr_targets(items)) if protocol.task == "sr" else len(items)
    total = min(total, limit) if limit else total
    bar = tqdm(total=total, unit="frame", desc=f"{protocol.name}", disable=not progress, smoothing=0.1)
    try:
        if protocol.task == "sr":
            result = run_sr(protocol, items, runner, batch, limit, save_dir, bar.update)
        else:
            result = run_vfi(protocol, items, runner, batch, limit, save_dir, bar.update)
    finally:
        bar.close()
    result.seconds = time.perf_counter() - t0
    result.precision, result.device = runner.precision, str(runner.device)
    return result


def format_table(result: BenchmarkResult, protocol: Protocol, model: str, size: str,
                 published: Callable[[str, str, str, str], object]) -> str:
    """The set's table: per scorer this run's PSNR/SSIM(/IE) beside the published number and the difference."""
    means = result.means()
    head = f"{'convention':<20} {'PSNR':>8} {'SSIM':>7} {'IE':>6}   {'published':>18} {'diff':>7}  source"
    lines = [f"{protocol.title}: {len(result.frames)} frame(s)"
             + (f" of {result.total} (a spread subset, not the full protocol)" if result.subset else "")
             + f", {model}-{size}, {result.precision} on {result.device}, {result.seconds:.1f} s",
             f"frames: {protocol.frames}", f"input: {protocol.input_padding}"
             + (f"; SR window padding {protocol.window_padding} (BasicSR test yml)" if protocol.task == "sr" else "")]
    if result.made_lr:
        lines.append("LR: made here from GT with MATLAB-compatible bicubic (--make-lr), rounded to 8 bits")
    lines += [head, "-" * len(head)]
    for sc in protocol.scorers:
        m = means[sc.label]
        pub = published(protocol.name, model, size, sc.label)
        pub_txt, diff, src = "-", "", "no published number for this model"
        if pub is not None:
            if pub.psnr is not None:
                pub_txt = f"{pub.psnr:.3f}" + (f" / {pub.ssim:.4f}" if pub.ssim is not None else "")
                diff = f"{m['psnr'] - pub.psnr:+.3f}"
            elif pub.ie is not None:
                pub_txt, diff = f"IE {pub.ie:.3f}", f"{m['ie'] - pub.ie:+.3f}"
            src = pub.source
        ie = f"{m['ie']:.3f}" if "ie" in m else "-"
        lines.append(f"{sc.label:<20} {m['psnr']:>8.3f} {m['ssim']:>7.4f} {ie:>6}   {pub_txt:>18} {diff:>7}  {src}")
    lines.append("conventions: " + "; ".join(f"{sc.label}: {sc.describe()} [{sc.source}]" for sc in protocol.scorers))
    for n in protocol.notes:
        lines.append(f"note: {n}")
    return "\n".join(lines)
