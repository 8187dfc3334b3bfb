"""Augmentations do what they say, in both loaders: an augmented sample equals the reference
transform (pipelines.augment.apply_flags) of the same sample read without augmentation."""
from __future__ import annotations

import pytest
import torch

from vsrvfi.pipelines import AUG_FLAGS, AugmentOptions, build_loader
from vsrvfi.pipelines.augment import apply_flags

KINDS = ("dali", "png")
ALL = AugmentOptions(hflip=0.5, vflip=0.5, rot90=0.5, reverse=0.5, swap_rgb=0.5)


def loader(data_dir, kind: str, **kw):
    base = dict(kind=kind, data_dir=str(data_dir), res="144p", split="train", device="cpu", batch_size=8,
                workers=1, shuffle=False, step=3, last_batch="partial")
    base.update(kw)
    return build_loader(**base)


def samples(ld) -> list[dict]:
    return [{k: v[i] for k, v in b.items()} for b in ld for i in range(len(b["clip"]))]


def crop(x: torch.Tensor, y: int, x0: int, h: int, w: int) -> torch.Tensor:
    return x[..., y:y + h, x0:x0 + w]


@pytest.mark.parametrize("kind", KINDS)
def test_forced_horizontal_flip_is_the_flipped_batch(tiny_data_dir, kind):
    plain = next(iter(loader(tiny_data_dir, kind, task="vfi", training=True, augment=AugmentOptions.off())))
    flipped = next(iter(loader(tiny_data_dir, kind, task="vfi", training=True,
                               augment=AugmentOptions(hflip=1.0, vflip=0, rot90=0, reverse=0))))
    assert torch.equal(flipped["frames"], plain["frames"].flip(-1))
    assert torch.equal(flipped["target"], plain["target"].flip(-1))
    assert (flipped["aug"][:, 0] == 1).all() and (flipped["aug"][:, 1:] == 0).all()


@pytest.mark.parametrize("kind", KINDS)
def test_vfi_augmentations_match_the_reference(tiny_data_dir, kind):
    ref = samples(loader(tiny_data_dir, kind, task="vfi", targets=3, training=False, crop=None))
    aug = samples(loader(tiny_data_dir, kind, task="vfi", targets=3, training=True, crop=64, augment=ALL))
    assert len(ref) == len(aug) > 20
    for r, a in zip(ref, aug):
        assert (int(r["clip"]), int(r["start"])) == (int(a["clip"]), int(a["start"]))
        y, x = (int(v) for v in a["crop"])
        expected = apply_flags({"frames": crop(r["frames"], y, x, 64, 64), "target": crop(r["target"], y, x, 64, 64),
                                "timesteps": r["timesteps"]}, a["aug"], "vfi")
        for k, v in expected.items():
            assert torch.equal(a[k], v), (k, a["aug"].tolist())
    flags = torch.stack([a["aug"] for a in aug])
    assert ((flags.float().mean(0) > 0.15) & (flags.float().mean(0) < 0.85)).all(), flags.float().mean(0)
    crops = {tuple(a["crop"].tolist()) for a in aug}
    assert len(crops) > len(aug) // 2  # random positions, not one


@pytest.mark.parametrize("kind", KINDS)
def test_sr_augmentations_match_the_reference(tiny_data_dir, kind):
    scale, size = 4, 64
    ref = samples(loader(tiny_data_dir, kind, task="sr", neighbors=1, scale=scale, training=False, crop=None))
    aug = samples(loader(tiny_data_dir, kind, task="sr", neighbors=1, scale=scale, training=True, crop=size,
                         augment=ALL))
    assert len(ref) == len(aug) > 20
    for r, a in zip(ref, aug):
        y, x = (int(v) for v in a["crop"])
        assert y % scale == 0 and x % scale == 0  # LR crops fall on whole LR pixels
        expected = apply_flags({"hr": crop(r["hr"], y, x, size, size),
                                "lr": crop(r["lr"], y // scale, x // scale, size // scale, size // scale)},
                               a["aug"], "sr")
        assert torch.equal(a["hr"], expected["hr"]), a["aug"].tolist()
        # the LR crop is the crop of the whole frame's LR, up to one level at rounding ties
        diff = (a["lr"] - expected["lr"]).abs()
        assert float(diff.max()) <= 1.01 / 255 and float(diff.mean()) < 0.01 / 255, a["aug"].tolist()
    flags = torch.stack([a["aug"] for a in aug]).float().mean(0)
    assert ((flags > 0.15) & (flags < 0.85)).all(), dict(zip(AUG_FLAGS, flags.tolist()))


@pytest.mark.parametrize("kind", KINDS)
def test_reversal_swaps_vfi_inputs_and_mirrors_timesteps(tiny_data_dir, kind):
    plain = next(iter(loader(tiny_data_dir, kind, task="vfi", targets=7, training=True, augment=AugmentOptions.off())))
    rev = next(iter(loader(tiny_data_dir, kind, task="vfi", targets=7, training=True,
                           augment=AugmentOptions(hflip=0, vflip=0, rot90=0, reverse=1.0))))
    assert torch.equal(rev["frames"], plain["frames"].flip(1))
    assert torch.equal(rev["target"], plain["target"])
    assert torch.allclose(rev["timesteps"], 1 - plain["timesteps"])
    assert torch.allclose(plain["timesteps"][0], torch.arange(1, 8) / 8.0)


def test_rotation_is_off_for_non_square_crops(tiny_data_dir):
    ld = loader(tiny_data_dir, "dali", task="vfi", training=True, crop=(48, 64),
                augment=AugmentOptions(rot90=1.0))
    b = next(iter(ld))
    assert (b["aug"][:, 2] == 0).all() and tuple(b["frames"].shape[-2:]) == (48, 64)
