"""The on-disk layout of a prepared data set, in one place for the tools, loaders and trainers.

    DATA_DIR/
      manifest.json                              scenes: source, frames, times, fps, split
      orig/scenes/{train,val}/<clip>.mp4         the cut scenes at source resolution (optional)
      <res>/scenes/{train,val}/<clip>.mp4        res in RESOLUTIONS: short-GOP H.264 or VP9
      <res>/frames/{train,val}/<clip>/%06d.png   lossless PNG frames for the baseline loader

Clip names are `<source stem>-s<scene index, 4 digits>`. Every resolution holds the same clips.
"""
from __future__ import annotations

import os
from pathlib import Path

RESOLUTIONS: dict[str, int] = {"4k": 2160, "1080p": 1080, "720p": 720, "540p": 540}
SPLITS = ("train", "val")
ORIG = "orig"
MANIFEST = "manifest.json"
CLIP_EXT = ".mp4"
FRAME_PATTERN = "%06d.png"


def resolution_height(name: str) -> int:
    """Height in pixels for a resolution name ('4k', '1080p', ..., or any '<N>p')."""
    key = name.lower()
    if key in RESOLUTIONS:
        return RESOLUTIONS[key]
    if key.endswith("p") and key[:-1].isdigit() and int(key[:-1]) >= 16:
        return int(key[:-1])
    raise ValueError(f"unknown resolution {name!r}: use one of {', '.join(RESOLUTIONS)} or '<height>p'")


def standard_tiers_for(height: int) -> list[str]:
    """The tiers a source `height` pixels high gets by default: the standard ones that fit (never
    upscaled), or the source's own height (e.g. '272p') when none does."""
    fit = [name for name, h in RESOLUTIONS.items() if h <= height]
    return fit or [f"{height - height % 2}p"]


def existing_tiers(data_dir: str | os.PathLike, kind: str = "dali", split: str = "train") -> list[str]:
    """Resolutions of `data_dir` that have clips (kind 'dali') or PNG frame folders ('png') in `split`,
    highest first."""
    if not data_dir or not Path(data_dir).is_dir():
        return []
    d = Path(data_dir)
    names = []
    for sub in d.iterdir():
        try:
            resolution_height(sub.name)
        except ValueError:
            continue
        if (list_clips(d, sub.name, split) if kind == "dali" else list_frame_dirs(d, sub.name, split)):
            names.append(sub.name)
    return sorted(names, key=resolution_height, reverse=True)


def pick_tier(tiers: list[str], preferred: str = "540p") -> str | None:
    """`preferred` when present, else the tier nearest to it in height (the smaller on a tie)."""
    if not tiers:
        return None
    if preferred in tiers:
        return preferred
    want = resolution_height(preferred)
    return min(tiers, key=lambda t: (abs(resolution_height(t) - want), resolution_height(t)))


def clip_name(source: str | os.PathLike, scene_index: int, key: str | None = None) -> str:
    """`<key>-s<index>`; the key is the source's stem unless the data set gave it another (two sources
    with one stem)."""
    return f"{key or Path(source).stem}-s{scene_index:04d}"


def scenes_dir(data_dir: str | os.PathLike, res: str, split: str) -> Path:
    return Path(data_dir) / res / "scenes" / split


def clip_path(data_dir: str | os.PathLike, res: str, split: str, clip: str) -> Path:
    return scenes_dir(data_dir, res, split) / f"{clip}{CLIP_EXT}"


def frames_dir(data_dir: str | os.PathLike, res: str, split: str, clip: str) -> Path:
    return Path(data_dir) / res / "frames" / split / clip


def list_clips(data_dir: str | os.PathLike, res: str, split: str) -> list[Path]:
    """Complete clips of one resolution and split, sorted by name (temporaries are skipped)."""
    d = scenes_dir(data_dir, res, split)
    if not d.is_dir():
        return []
    return sorted(p for p in d.glob(f"*{CLIP_EXT}") if not p.name.startswith("."))


def list_frame_dirs(data_dir: str | os.PathLike, res: str, split: str) -> list[Path]:
    """Complete PNG frame folders of one resolution and split, sorted by name."""
    d = Path(data_dir) / res / "frames" / split
    if not d.is_dir():
        return []
    return sorted(p for p in d.iterdir() if p.is_dir() and not p.name.startswith("."))
