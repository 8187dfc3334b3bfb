"""Where a RIFE checkpoint loses to frame blending: its flow and fusion mask, or its refinement residual?

    python -m benchmarks.rife_parts CKPT [CKPT ...] --frames data/demo/data/540p/frames/val/demo4k-s0000 --gaps 10,30

For each checkpoint and each gap (frames i and i+2 in, frame i+1 the target), full frames, RGB, 8-bit
rounded PSNR of: the blend (the baseline), RIFE's mask-blended warps before refinement (`merged`: what
the flow and mask alone give), the privileged teacher's blend (flow refined with the target in view),
and the final output (merged + the U-Net's residual); and the mean |residual| (8-bit levels), mean |flow|
(px) and mean fusion mask. An untrained RIFE starts with random flows and a noise residual; this says
which of the two still costs more than blending after some training.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import torch
from torch import nn

from vsrvfi.core.cli import ArgumentParser, entry_point, parse_list
from vsrvfi.core.errors import PathError, UsageError
from vsrvfi.models.load import load_model
from vsrvfi.models.metrics import psnr
from vsrvfi.pipelines import png_frames


def rife_parts(net: nn.Module, img0: torch.Tensor, gt: torch.Tensor, img1: torch.Tensor) -> dict[str, float]:
    """PSNR (dB) of blend, merged warps, teacher and output against `gt`, with residual, flow and mask sizes."""
    with torch.no_grad():
        out = net(img0, img1, 0.5, gt=gt)
    db = {name: float(psnr(x.clamp(0, 1), gt)[0]) for name, x in
          (("blend", (img0 + img1) / 2), ("merged", out.merged[-1]), ("teacher", out.teacher_pred), ("pred", out.pred))}
    return {**{f"{k}_db": v for k, v in db.items()},
            "residual_levels": float((out.pred - out.merged[-1]).abs().mean()) * 255,
            "flow_px": float(out.flows[-1].abs().mean()), "mask_mean": float(out.mask.mean())}


def read_png(path: Path) -> torch.Tensor:
    """A PNG frame as float RGB in [0, 1], (1, 3, H, W)."""
    return torch.from_numpy(png_frames.read_png(str(path))).permute(2, 0, 1)[None].float() / 255


def read_triplets(folder: str, gaps_text: str) -> dict[int, tuple[torch.Tensor, ...]]:
    """Frames (g, g + 1, g + 2) of a folder of PNG frames for each first index g in `gaps_text` ("10,30"),
    read once; one-line errors for bad indices or too few frames."""
    try:
        gaps = [int(g) for g in parse_list(gaps_text)]
    except ValueError:
        raise UsageError(f"--gaps {gaps_text!r}: expected frame indices") from None
    files = sorted(Path(folder).glob("*.png"))
    if not files or any(g < 0 or g + 2 >= len(files) for g in gaps):
        raise PathError(folder, f"{len(files)} PNG frames: too few for gaps {gaps}")
    return {g: tuple(read_png(files[g + i]) for i in range(3)) for g in gaps}


def main(argv: Sequence[str] | None = None) -> int:
    ap = ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkpoints", nargs="+", help="RIFE checkpoints (this project's, e.g. a run's last.pth)")
    ap.add_argument("--frames", required=True, help="a folder of a clip's PNG frames, in order")
    ap.add_argument("--gaps", default="10,30", help="first frame index of each triplet scored")
    ap.add_argument("--out", default=None, help="write the rows as JSON here")
    a = ap.parse_args(argv)
    triplets = read_triplets(a.frames, a.gaps)
    torch.set_grad_enabled(False)
    rows = []
    print(f"{'checkpoint':<28} {'step':>5} {'gap':>4} {'blend dB':>8} {'merged dB':>9} {'teacher dB':>10} {'output dB':>9} "
          f"{'|res| lvl':>9} {'|flow| px':>9} {'mask':>6}")
    for ck in a.checkpoints:
        net, meta = load_model(ck, "rife")
        step = meta.step if meta.step is not None else -1
        for g, frames in triplets.items():
            r = {"checkpoint": ck, "step": step, "gap": g, **rife_parts(net, *frames)}
            rows.append(r)
            print(f"{Path(ck).name[-28:]:<28} {step:>5} {g:>4} {r['blend_db']:>8.2f} {r['merged_db']:>9.2f} "
                  f"{r['teacher_db']:>10.2f} {r['pred_db']:>9.2f} {r['residual_levels']:>9.2f} {r['flow_px']:>9.2f} "
                  f"{r['mask_mean']:>6.3f}", flush=True)
    print("full frames, RGB, 8-bit rounded; merged: the mask-blended warps (flow + mask alone); output: merged + "
          "the U-Net residual; |res| lvl: mean |output - merged| in 8-bit levels")
    if a.out:
        Path(a.out).write_text(json.dumps(rows, indent=1))
    return 0


cli = entry_point(main, interrupted="nothing written")

if __name__ == "__main__":
    raise SystemExit(cli())
