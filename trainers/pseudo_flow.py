"""IFRNet's pseudo flow read from files, laid out as the official training reads them.

IFRNet's generate_flow.py runs LiteFlowNet once over the data set and writes, for every triplet
`<name>`, `DIR/flow/<name>/flow_t0.flo` (middle frame -> first) and `flow_t1.flo` (middle -> last)
in the Middlebury .flo format (b'PIEH', int32 width, height, then float32 (u, v) per pixel, rows
first); train_vimeo90k.py reads them beside the images. Here a triplet is a group of the training
clips: `<name>` is `<clip>/<first frame, 6 digits>` (the group is frames start, start + stride,
start + 2 x stride of the clip, as in the batch's `clip` and `start`), and the flow covers the
whole frame of data.res. A batch's flows are cut at its crops and put through its augmentations
(pipelines.batch AUG_FLAGS) the way datasets.py transforms them: flips negate the flipped component,
rot90 turns the vectors with the image, a temporal reversal swaps t0 and t1.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from vsrvfi.core.errors import DataError, UsageError

FLO_MAGIC = b"PIEH"


def flow_dir(root: str | os.PathLike, clip: str, start: int) -> Path:
    """The folder of one group's two .flo files."""
    return Path(root) / "flow" / clip / f"{int(start):06d}"


def read_flo(path: str | os.PathLike) -> np.ndarray:
    """A Middlebury .flo file as (H, W, 2) float32; DataError naming the file when it is not one."""
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise DataError(path, f"cannot be read ({exc.strerror or exc})") from None
    if raw[:4] != FLO_MAGIC or len(raw) < 12:
        raise DataError(path, "not a .flo file (no PIEH header)")
    w, h = (int(v) for v in np.frombuffer(raw, np.int32, 2, 4))
    if w <= 0 or h <= 0 or len(raw) != 12 + 8 * w * h:
        raise DataError(path, f"truncated or malformed .flo file ({w}x{h} in {len(raw)} bytes)")
    return np.frombuffer(raw, np.float32, 2 * w * h, 12).reshape(h, w, 2).copy()


def write_flo(path: str | os.PathLike, flow: np.ndarray) -> None:
    """Write (H, W, 2) flow as a .flo file (under a temporary name, then renamed)."""
    path = Path(path)
    flow = np.asarray(flow, np.float32)
    if flow.ndim != 3 or flow.shape[2] != 2:
        raise ValueError(f"flow must be (H, W, 2), got {flow.shape}")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(FLO_MAGIC + np.array([flow.shape[1], flow.shape[0]], np.int32).tobytes() + flow.tobytes())
    tmp.replace(path)


def augment_flow(flow: torch.Tensor, flags: Sequence[int]) -> torch.Tensor:
    """Flow (4, H, W) = [t->0 (u, v) | t->1 (u, v)] of an un-augmented sample, transformed as the
    sample's frames are by AUG_FLAGS `flags` (hflip, vflip, rot90, reverse, swap_rgb)."""
    hflip, vflip, rot90, reverse, _ = (bool(int(f)) for f in flags)
    f = flow.clone()
    if hflip:
        f = f.flip(-1)
        f[0::2] = -f[0::2]
    if vflip:
        f = f.flip(-2)
        f[1::2] = -f[1::2]
    if rot90:  # torch.rot90(x, 1, dims=(-2, -1)): new (y, x) = old (x, W-1-y), so (u, v) -> (v, -u)
        f = torch.rot90(f, 1, dims=(-2, -1))
        u, v = f[0::2].clone(), f[1::2].clone()
        f[0::2], f[1::2] = v, -u
    if reverse:  # I0 and I1 swap: so do the flows to them
        f = torch.cat([f[2:], f[:2]])
    return f


class FlowFiles:
    """Pseudo flow labels of training batches from `root` (task.pseudo_flow=files:DIR)."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        if not (self.root / "flow").is_dir():
            raise UsageError(f"task.pseudo_flow: {self.root}: no flow/ folder (IFRNet's layout: "
                             f"DIR/flow/<clip>/<first frame>/flow_t0.flo and flow_t1.flo)")

    def count(self) -> int:
        """Groups with flow files (for the line printed at start)."""
        return sum(1 for _ in (self.root / "flow").glob("*/*/flow_t0.flo"))

    def sample(self, clip: str, start: int) -> torch.Tensor:
        """The whole-frame flow (4, H, W) of one group."""
        d = flow_dir(self.root, clip, start)
        t0, t1 = read_flo(d / "flow_t0.flo"), read_flo(d / "flow_t1.flo")
        if t0.shape != t1.shape:
            raise DataError(d, f"flow_t0.flo is {t0.shape[1]}x{t0.shape[0]}, flow_t1.flo {t1.shape[1]}x{t1.shape[0]}")
        return torch.from_numpy(np.concatenate([t0, t1], 2)).permute(2, 0, 1)

    def batch(self, batch: dict, clip_names: Sequence[str]) -> torch.Tensor:
        """(B, 4, h, w) labels of a VFI batch with one target: each sample's flow cut at its crop and
        augmented as its frames were; on the frames' device."""
        frames = batch["frames"]
        if batch["target"].shape[1] != 1:
            raise UsageError("task.pseudo_flow=files:DIR holds one middle frame per group: use task.targets=1")
        h, w = frames.shape[-2:]
        out = []
        for i in range(frames.shape[0]):
            clip, start = clip_names[int(batch["clip"][i])], int(batch["start"][i])
            flow = self.sample(clip, start)
            y, x = (int(v) for v in batch["crop"][i])
            flags = [int(v) for v in batch["aug"][i]]
            ch, cw = (w, h) if flags[2] else (h, w)  # rot90 turned an (h, w) crop the other way
            if y + ch > flow.shape[1] or x + cw > flow.shape[2]:
                raise DataError(flow_dir(self.root, clip, start),
                                f"flow is {flow.shape[2]}x{flow.shape[1]}, smaller than the frames it labels "
                                f"(crop {cw}x{ch} at x={x}, y={y}): write it at data.res")
            out.append(augment_flow(flow[:, y:y + ch, x:x + cw], flags))
        return torch.stack(out).to(frames.device, torch.float32)
