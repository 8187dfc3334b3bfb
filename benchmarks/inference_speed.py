"""Inference throughput of the video tools' model runners: output frames per second by model and size.

    python -m benchmarks.inference_speed                                # 540p on whatever device is here
    python -m benchmarks.inference_speed --sizes 1080p,4k --precisions fp32,fp16 --scale-4k 0.5

VFI rows time `Interpolator` making the middle frame of a frame pair at the given size (what
`tools/interpolate_video.py --factor 2` does for every other output frame); SR rows time `Upscaler`
producing one frame of the given output size from its window of LR frames (`tools/upscale_video.py`).
Decoding and encoding are not included (ffmpeg runs in its own process beside the model). Random
weights: the speed does not depend on them. Prints a table and writes JSON.
"""
from __future__ import annotations

import json
import statistics
import time
from pathlib import Path
from typing import Sequence

import torch

from vsrvfi.inference.runtime import pick_device
from vsrvfi.inference.sr import Upscaler
from vsrvfi.inference.vfi import Interpolator
from vsrvfi.models.registry import build_model
from vsrvfi.core.cli import ArgumentParser, entry_point, parse_list
from vsrvfi.core.layout import resolution_height

MODELS = {"rife": ("rife", "base", {}), "ifrnet": ("ifrnet", "base", {}), "vsrnet": ("vsrnet", "base", {}),
          "edvr": ("edvr", "m", {})}


def frame_size(res: str) -> tuple[int, int]:
    """(width, height) of a 16:9 frame of resolution `res` ('540p' -> 960x540, '4k' -> 3840x2160)."""
    h = resolution_height(res)
    return round(h * 16 / 9 / 2) * 2, h


def time_model(name: str, res: str, precision: str, device: torch.device, frames: int, warmup: int,
               vfi_scale: float, tile: int) -> dict:
    arch, size, kw = MODELS[name]
    model = build_model(arch, size, **kw)
    w, h = frame_size(res)
    if name in ("rife", "ifrnet"):
        runner = Interpolator(model, device, precision, vfi_scale)
        a, b = torch.rand(1, 3, h, w, device=device), torch.rand(1, 3, h, w, device=device)
        call = lambda: runner.between(a, b, [0.5])  # noqa: E731
    else:
        runner = Upscaler(model, device, precision, tile)
        s = runner.scale
        lr = torch.rand(runner.window, 3, h // s, w // s, device=device)
        call = lambda: runner(lr)  # noqa: E731
    times = []
    for i in range(warmup + frames):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        t0 = time.perf_counter()
        call()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    row = {"model": name, "res": res, "width": w, "height": h, "precision": precision, "device": str(device),
           "frames": frames, "frames_per_s": 1 / statistics.median(times), "ms_median": statistics.median(times) * 1e3}
    if device.type == "cuda":
        row["gpu_peak_gb"] = torch.cuda.max_memory_allocated(device) / 2**30
        torch.cuda.reset_peak_memory_stats(device)
    return row


def main(argv: Sequence[str] | None = None) -> int:
    ap = ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="rife,ifrnet,vsrnet,edvr")
    ap.add_argument("--sizes", default="540p", help="output frame sizes, e.g. 540p,1080p,4k")
    ap.add_argument("--precisions", default="fp32")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--frames", type=int, default=3, help="timed frames per row (median reported)")
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--scale-4k", type=float, default=0.5, help="VFI flow scale used at 4K (RIFE's advice)")
    ap.add_argument("--tile", type=int, default=0, help="SR LR tile side (0: whole frames)")
    ap.add_argument("--out", default="docs/benchmarks/inference_speed.json")
    a = ap.parse_args(argv)
    device = pick_device(a.device)
    rows = []
    head = f"{'model':<8} {'output':>10} {'precision':>9} {'device':>7} {'frames/s':>9} {'ms/frame':>10}"
    print(head + "\n" + "-" * len(head))
    for res in parse_list(a.sizes):
        for precision in parse_list(a.precisions):
            for name in parse_list(a.models):
                scale = a.scale_4k if resolution_height(res) >= 2160 else 1.0
                r = time_model(name, res, precision, device, a.frames, a.warmup, scale, a.tile)
                rows.append(r)
                print(f"{name:<8} {r['width']:>5}x{r['height']:<4} {precision:>9} {device.type:>7} "
                      f"{r['frames_per_s']:>9.3f} {r['ms_median']:>10.1f}", flush=True)
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"threads": torch.get_num_threads(), "rows": rows}, indent=1))
    print(f"wrote {out}")
    return 0


cli = entry_point(main, interrupted="no results were written")

if __name__ == "__main__":
    raise SystemExit(cli())
