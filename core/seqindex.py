"""DATA_DIR/sequences.json: where every sequence of a packed data set lives, so loaders never probe clips.

A frame import with packing (tools/pack_frames.py) writes many short sequences (Vimeo-90K's
septuplets) into one clip file, a *shard*, each sequence starting on a keyframe. This index maps
every sequence to (shard file, first frame in it, frames, split, source name) and records, per tier,
the size and codec of every shard, and, per source, the root of its frame folders (the PNG loader
reads a set's own frames in place). It is written once per import (before any shard, so a rerun
knows the plan) and read once by a loader: cost and memory grow with the number of sequences only
as one JSON load of flat columns (no per-clip object until a loader asks for one, no probe).

    {"version": 1,
     "tiers":   {"256p": {"width": 448, "height": 256, "codec": "vp9"}},
     "sources": {"vimeo90k": {"root": "/data/vimeo/sequences", "width": 448, "height": 256,
                              "frames_res": "256p"}},
     "files":     {"name": [...], "split": [...], "frames": [...]},           # shards, by stem
     "sequences": {"name": [...], "file": [...], "first": [...], "frames": [...], "source": [...],
                   "folder": [...], "pattern": [...], "start_number": [...]}}

A shard is `DATA_DIR/<res>/scenes/<split>/<name>.mp4` at every tier (layout.clip_path); it exists
under that name only once complete (written under a temporary name and renamed).
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from vsrvfi.core.atomic import atomic_path
from vsrvfi.core.errors import DataError

INDEX = "sequences.json"
INDEX_VERSION = 1
SEQ_COLUMNS = ("name", "file", "first", "frames", "source", "folder", "pattern", "start_number")
FILE_COLUMNS = ("name", "split", "frames")


@dataclass
class SequenceIndex:
    """The index as flat columns (lists of equal length); see the module docstring."""

    tiers: dict[str, dict] = field(default_factory=dict)
    sources: dict[str, dict] = field(default_factory=dict)
    files: dict[str, list] = field(default_factory=lambda: {k: [] for k in FILE_COLUMNS})
    sequences: dict[str, list] = field(default_factory=lambda: {k: [] for k in SEQ_COLUMNS})

    def __len__(self) -> int:
        return len(self.sequences["name"])

    @property
    def num_files(self) -> int:
        return len(self.files["name"])

    def add_file(self, name: str, split: str) -> int:
        """A new shard (no sequence yet); its position in `files`."""
        self.files["name"].append(name)
        self.files["split"].append(split)
        self.files["frames"].append(0)
        return self.num_files - 1

    def add_sequence(self, file: int, name: str, frames: int, source: str, folder: str, pattern: str,
                     start_number: int) -> None:
        """Append a sequence at the end of shard `file` (its first frame is the shard's frame count so far)."""
        s = self.sequences
        for key, value in zip(SEQ_COLUMNS, (name, file, self.files["frames"][file], frames, source, folder,
                                            pattern, start_number)):
            s[key].append(value)
        self.files["frames"][file] += frames

    def split_of(self, i: int) -> str:
        return self.files["split"][self.sequences["file"][i]]


def index_path(data_dir: str | os.PathLike) -> Path:
    return Path(data_dir) / INDEX


def load_index(data_dir: str | os.PathLike) -> SequenceIndex | None:
    """The index of `data_dir`, or None when the data set has none (clips are then probed)."""
    path = index_path(data_dir)
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise DataError(path, "corrupt sequence index (not JSON); rerun the import to write it again") from None
    if not isinstance(raw, dict) or raw.get("version") != INDEX_VERSION:
        raise DataError(path, f"unknown sequence index version {raw.get('version') if isinstance(raw, dict) else '?'}"
                              f" (this version reads {INDEX_VERSION})")
    idx = SequenceIndex(raw.get("tiers", {}), raw.get("sources", {}), raw["files"], raw["sequences"])
    if len({len(v) for v in idx.sequences.values()}) > 1 or len({len(v) for v in idx.files.values()}) > 1:
        raise DataError(path, "corrupt sequence index (columns of different lengths)")
    return idx


def save_index(data_dir: str | os.PathLike, idx: SequenceIndex) -> Path:
    """Write the index atomically (a temporary name, then renamed)."""
    path = index_path(data_dir)
    body = {"version": INDEX_VERSION, "tiers": idx.tiers, "sources": idx.sources, "files": idx.files,
            "sequences": idx.sequences}
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(body, separators=(",", ":")) + "\n")
    return path
