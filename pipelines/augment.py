"""Augmentation parameters and their torch reference implementation.

The DALI pipelines draw the same flags with DALI's RNG and apply them with DALI operators; the PNG
loader draws them with torch and applies them here. Tests compare the two through `apply_flags`.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from vsrvfi.pipelines.batch import AUG_FLAGS


@dataclass
class AugmentOptions:
    """Probability of each augmentation (0 switches it off, true/false mean 0.5/0); used only in training.

    rot90 applies to square crops only (it would change a non-square frame's shape). swap_rgb turns RGB
    into BGR (off by default: a colour model should usually see RGB).
    """

    hflip: float = 0.5
    vflip: float = 0.5
    rot90: float = 0.5
    reverse: float = 0.5
    swap_rgb: float = 0.0

    def __post_init__(self) -> None:
        # YAML switches: true means "half the time", false means never
        for name in AUG_FLAGS:
            value = getattr(self, name)
            if isinstance(value, bool):
                setattr(self, name, 0.5 if value else 0.0)

    def probabilities(self) -> tuple[float, ...]:
        return tuple(float(getattr(self, name)) for name in AUG_FLAGS)

    def validate(self) -> None:
        for name, p in zip(AUG_FLAGS, self.probabilities()):
            if not 0.0 <= p <= 1.0:
                raise ValueError(f"augment.{name}={p}: a probability must be in [0, 1]")

    @classmethod
    def off(cls) -> "AugmentOptions":
        return cls(0.0, 0.0, 0.0, 0.0, 0.0)


def draw_flags(probs: tuple[float, ...], generator: torch.Generator) -> torch.Tensor:
    """One sample's flags, int64 (len(AUG_FLAGS),), each 1 with its probability."""
    u = torch.rand(len(probs), generator=generator, dtype=torch.float64)
    return (u < torch.tensor(probs, dtype=torch.float64)).to(torch.int64)


def apply_spatial(x: torch.Tensor, hflip: bool, vflip: bool, rot90: bool) -> torch.Tensor:
    """Flip, then rotate, the last two (H, W) dimensions of `x`."""
    if hflip:
        x = x.flip(-1)
    if vflip:
        x = x.flip(-2)
    if rot90:
        x = torch.rot90(x, 1, dims=(-2, -1))
    return x


def apply_flags(sample: dict[str, torch.Tensor], flags, task: str) -> dict[str, torch.Tensor]:
    """Apply AUG_FLAGS `flags` to one un-augmented sample (no batch dimension) of `task`.

    SR sample: 'hr_seq' (T, 3, H, W), the whole high-resolution sequence (the LR is made after this),
    or 'lr' (T, 3, h, w) and 'hr' (3, H, W). VFI sample: 'frames' (2, 3, H, W), 'target' (K, 3, H, W),
    'timesteps' (K,). Returns a new dict with the same keys.
    """
    h, v, r, rev, swap = (bool(int(f)) for f in flags)
    out = {}
    for key, t in sample.items():
        if key == "timesteps":
            out[key] = 1.0 - t if rev else t
            continue
        t = apply_spatial(t, h, v, r)
        if rev and key in ("hr_seq", "lr"):
            t = t.flip(0)
        elif rev and key == "frames":
            t = t.flip(0)
        if swap:
            t = t.flip(-3)
        out[key] = t
    return out
