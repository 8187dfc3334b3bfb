"""How much room a clip leaves a VFI model above frame blending: is it a fair overfit target?

    python -m benchmarks.vfi_headroom data/demo/data/540p/frames/val/demo4k-s0000 data/demo/data/540p/frames/train/demo4k-s0001

For triplets (i, i+1, i+2) of each folder of PNG frames: the motion between the outer frames (mean and
95th percentile of OpenCV DIS flow, px), the blend's PSNR against the middle frame (the baseline), and
the PSNR of an oracle warp: both outer frames backward-warped to the middle one by DIS flow computed
*from the true middle frame* and averaged, roughly the best a warp-and-blend model with DIS-quality
flow could do (RGB, full frames, 8-bit rounded). Where the oracle warp does not beat the blend, the
blend is at the ceiling of warping on that clip and a short overfit run says little about learning.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import torch

from benchmarks.rife_parts import read_triplets
from vsrvfi.core.cli import ArgumentParser, entry_point
from vsrvfi.models.losses.pseudo_flow import dis_flow
from vsrvfi.models.metrics import psnr
from vsrvfi.models.warp import backward_warp


def headroom(img0: torch.Tensor, gt: torch.Tensor, img1: torch.Tensor) -> dict[str, float]:
    """Motion (px), blend PSNR and oracle DIS-warp PSNR (dB) of one triplet, (1, 3, H, W) in [0, 1] each."""
    motion = dis_flow(img0, img1).norm(dim=1)
    oracle = (backward_warp(img0, dis_flow(gt, img0)) + backward_warp(img1, dis_flow(gt, img1))) / 2
    return {"motion_mean_px": float(motion.mean()), "motion_p95_px": float(motion.quantile(0.95)),
            "blend_db": float(psnr((img0 + img1) / 2, gt)[0]), "oracle_warp_db": float(psnr(oracle.clamp(0, 1), gt)[0])}


def main(argv: Sequence[str] | None = None) -> int:
    ap = ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folders", nargs="+", help="folders of a clip's PNG frames, in order")
    ap.add_argument("--gaps", default="5,10,20,30", help="first frame index of each triplet")
    ap.add_argument("--out", default=None, help="write the rows as JSON here")
    a = ap.parse_args(argv)
    rows = []
    print(f"{'clip':<16} {'gap':>4} {'motion px':>9} {'p95 px':>7} {'blend dB':>8} {'oracle warp dB':>14}")
    for folder in a.folders:
        for g, frames in read_triplets(folder, a.gaps).items():
            r = {"clip": Path(folder).name, "gap": g, **headroom(*frames)}
            rows.append(r)
            print(f"{r['clip']:<16} {g:>4} {r['motion_mean_px']:>9.2f} {r['motion_p95_px']:>7.2f} {r['blend_db']:>8.2f} "
                  f"{r['oracle_warp_db']:>14.2f}", flush=True)
    print("motion: DIS flow between the outer frames (2 frame intervals); oracle warp: the outer frames warped to "
          "the middle by DIS flow from the true middle frame, averaged; RGB, full frames, 8-bit rounded")
    if a.out:
        Path(a.out).write_text(json.dumps(rows, indent=1))
    return 0


cli = entry_point(main, interrupted="nothing written")

if __name__ == "__main__":
    raise SystemExit(cli())
