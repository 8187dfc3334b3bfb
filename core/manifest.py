"""DATA_DIR/manifest.json: every source and its scenes (frames, times, fps, split), in one reader/writer.

Written by the scene splitter, read by the transcoder, the frame extractor, the loaders' tests and
the summary. Scenes keep their source's name and path, so a data set made from many sources says
where each clip came from.
"""
from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

from vsrvfi.core import layout
from vsrvfi.core.atomic import atomic_path
from vsrvfi.core.errors import DataError

MANIFEST_VERSION = 1
_UPDATE = threading.Lock()  # sources prepared side by side in threads update one manifest


@dataclass
class Scene:
    clip: str
    source: str
    index: int
    start_frame: int                   # 0-based, inclusive
    end_frame: int                     # exclusive
    start_time: float
    end_time: float
    fps: float
    num_frames: int
    split: str | None = None           # "train" / "val"; None when dropped
    dropped: str | None = None         # reason when dropped


@dataclass
class SourceRecord:
    path: str
    fingerprint: str
    info: dict
    options: dict
    normalized: bool
    scenes: list[Scene] = field(default_factory=list)


def manifest_path(data_dir: str | os.PathLike) -> Path:
    return Path(data_dir) / layout.MANIFEST


def load_manifest(data_dir: str | os.PathLike) -> dict:
    """The manifest of `data_dir`, or an empty one when there is none yet."""
    path = manifest_path(data_dir)
    if not path.exists():
        return {"version": MANIFEST_VERSION, "sources": {}}
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError:
        raise DataError(path, "corrupt manifest (not JSON); move it away to start over") from None


def save_manifest(data_dir: str | os.PathLike, manifest: dict) -> None:
    with atomic_path(manifest_path(data_dir)) as tmp:
        tmp.write_text(json.dumps(manifest, indent=2) + "\n")


def update_manifest(data_dir: str | os.PathLike, change) -> dict:
    """Re-read the manifest, apply `change(manifest)` and write it back atomically, one thread at a time."""
    with _UPDATE:
        manifest = load_manifest(data_dir)
        change(manifest)
        save_manifest(data_dir, manifest)
        return manifest


def describe_changes(stored: dict, wanted: dict, flags: dict[str, str]) -> list[str]:
    """'--seed 0 -> 3' for each option whose value differs, named by its flag in `flags`."""
    return [f"{flags.get(k, k)} {stored.get(k)!r} -> {v!r}" for k, v in wanted.items() if stored.get(k) != v]


def manifest_scenes(manifest: dict, kept_only: bool = True) -> list[Scene]:
    """All scenes of all sources in a manifest, as Scene objects."""
    out = []
    for rec in manifest.get("sources", {}).values():
        for d in rec["scenes"]:
            sc = Scene(**d)
            if not kept_only or not sc.dropped:
                out.append(sc)
    return out
