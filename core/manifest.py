"""DATA_DIR/manifest.json, typed: every source and its scenes (frames, times, fps, split) and the data
set's encoding options. The only module that reads or writes the file.

Written by data preparation (tools/preparation/executor.py commits the planner's changes through
`update_manifest`), read by vsr-transcode, the planner, the loaders' tests and the summary. Scenes
keep their source's name and path, so a data set made from many sources says where each clip came
from. The JSON is the one earlier versions wrote (same keys, same order), so old data sets load and
rewriting a manifest changes no byte that a field did not change.
"""
from __future__ import annotations

import json
import os
import threading
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Callable, Iterable, Union

from vsrvfi.core import layout
from vsrvfi.core.atomic import atomic_path
from vsrvfi.core.errors import DataError

MANIFEST_VERSION = 1
VIDEO, FRAMES = "video", "frames"  # SourceRecord.kind
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
class FrameNumbering:
    """Where an imported clip's frames are: `pattern` (printf, e.g. "im%d.png") in the scene's source
    folder, numbered from `start_number`."""

    pattern: str
    start_number: int


@dataclass
class SourceRecord:
    """One source of the data set: a video file (kind "video") or a root of frame folders ("frames")."""

    path: str                          # the source, resolved
    fingerprint: str                   # its identity (size, mtime, first MiB; frames: the folders' listing)
    info: dict                         # video: VideoInfo.as_dict() of the file cut from; frames: size, fps, counts
    options: dict                      # what decided its scenes (scene options / import options)
    normalized: bool                   # scenes are cut from a normalised copy (orig/normalized/<key>.mp4)
    scenes: list[Scene] = field(default_factory=list)
    cut_from: str | None = None        # video: the file the scenes are cut from (the source or its copy)
    kind: str = VIDEO
    frames: dict[str, FrameNumbering] = field(default_factory=dict)  # frames: per clip

    @property
    def is_frames(self) -> bool:
        return self.kind == FRAMES

    def kept(self) -> list[Scene]:
        return [s for s in self.scenes if not s.dropped]

    def to_dict(self) -> dict:
        d = {"path": self.path, "fingerprint": self.fingerprint, "info": self.info, "options": self.options,
             "normalized": self.normalized, "scenes": [asdict(s) for s in self.scenes]}
        if self.cut_from is not None:
            d["cut_from"] = self.cut_from
        if self.kind != VIDEO:
            d["kind"] = self.kind
            d["frames"] = {clip: asdict(f) for clip, f in self.frames.items()}
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "SourceRecord":
        return cls(path=d["path"], fingerprint=d["fingerprint"], info=d["info"], options=d["options"],
                   normalized=d["normalized"], scenes=[Scene(**s) for s in d["scenes"]], cut_from=d.get("cut_from"),
                   kind=d.get("kind", VIDEO), frames={c: FrameNumbering(**f) for c, f in d.get("frames", {}).items()})


@dataclass
class DatasetOptions:
    """How every clip of the data set is encoded, its tiers and its orig/ cuts (recorded on the first run;
    a later run that would change them is refused unless --force)."""

    codec: str
    crf: int
    gop: int
    bframes: int
    scaler: str
    resolutions: list[str]
    keep_orig: bool
    orig_crf: int | None = None        # with keep_orig

    def to_dict(self) -> dict:
        d = asdict(self)
        if self.orig_crf is None:
            del d["orig_crf"]
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "DatasetOptions":
        return cls(**{f.name: d[f.name] for f in fields(cls) if f.name in d})


@dataclass
class Manifest:
    sources: dict[str, SourceRecord] = field(default_factory=dict)  # by key (the clips' name prefix)
    options: DatasetOptions | None = None   # None: a data set of imported frames only, or not yet recorded
    force_pending: bool | None = None       # True while a --force run that rewrites every clip is unfinished
    version: int = MANIFEST_VERSION

    def scenes(self, kept_only: bool = True) -> list[Scene]:
        """All scenes of all sources (kept ones only by default)."""
        return [s for rec in self.sources.values() for s in rec.scenes if not kept_only or not s.dropped]

    def to_dict(self) -> dict:
        d: dict = {"version": self.version, "sources": {k: r.to_dict() for k, r in self.sources.items()}}
        if self.options is not None:
            d["options"] = self.options.to_dict()
        if self.force_pending is not None:
            d["force_pending"] = self.force_pending
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "Manifest":
        return cls(sources={k: SourceRecord.from_dict(r) for k, r in d.get("sources", {}).items()},
                   options=DatasetOptions.from_dict(d["options"]) if d.get("options") else None,
                   force_pending=d.get("force_pending"), version=d.get("version", MANIFEST_VERSION))


# ------------------------------------------------------------------- changes (planned, then committed)

@dataclass(frozen=True)
class PutSource:
    """Record a source (replacing its old record in place)."""
    key: str
    record: SourceRecord


@dataclass(frozen=True)
class DropSource:
    """Forget a source (its files are removed by the executor)."""
    key: str


@dataclass(frozen=True)
class SetOptions:
    """Record the data set's options at the start of a run; `force_pending` while a --force run rewrites
    every clip."""
    options: DatasetOptions
    force_pending: bool


@dataclass(frozen=True)
class AddResolutions:
    """Tiers added to the data set (vsr-transcode --resolutions)."""
    names: tuple[str, ...]


@dataclass(frozen=True)
class EndForce:
    """The run finished: a rerun without --force is allowed again."""


Change = Union[PutSource, DropSource, SetOptions, AddResolutions, EndForce]


def apply_changes(manifest: Manifest, changes: Iterable[Change]) -> None:
    """Apply planned changes to a manifest in memory (the executor writes it: update_manifest)."""
    for c in changes:
        if isinstance(c, PutSource):
            manifest.sources[c.key] = c.record
        elif isinstance(c, DropSource):
            manifest.sources.pop(c.key, None)
        elif isinstance(c, SetOptions):
            manifest.options, manifest.force_pending = c.options, c.force_pending
        elif isinstance(c, AddResolutions):
            if manifest.options is not None:
                manifest.options.resolutions = sorted(set(manifest.options.resolutions) | set(c.names),
                                                      key=layout.resolution_height, reverse=True)
        elif isinstance(c, EndForce):
            manifest.force_pending = None
        else:
            raise TypeError(f"not a manifest change: {c!r}")


def manifest_path(data_dir: str | os.PathLike) -> Path:
    return Path(data_dir) / layout.MANIFEST


def load_manifest(data_dir: str | os.PathLike) -> Manifest:
    """The manifest of `data_dir`, or an empty one when there is none yet."""
    path = manifest_path(data_dir)
    if not path.exists():
        return Manifest()
    try:
        return Manifest.from_dict(json.loads(path.read_text()))
    except json.JSONDecodeError:
        raise DataError(path, "corrupt manifest (not JSON); move it away to start over") from None
    except (KeyError, TypeError, AttributeError) as exc:
        raise DataError(path, f"not a manifest of this project (missing or wrong field {exc}); move it away to "
                              "start over") from None


def save_manifest(data_dir: str | os.PathLike, manifest: Manifest) -> None:
    with atomic_path(manifest_path(data_dir)) as tmp:
        tmp.write_text(json.dumps(manifest.to_dict(), indent=2) + "\n")


def update_manifest(data_dir: str | os.PathLike, change: Callable[[Manifest], object]) -> Manifest:
    """Re-read the manifest, apply `change(manifest)` and write it back atomically, one thread at a time."""
    with _UPDATE:
        manifest = load_manifest(data_dir)
        change(manifest)
        save_manifest(data_dir, manifest)
        return manifest


def describe_changes(stored: dict, wanted: dict, flags: dict[str, str]) -> list[str]:
    """'--seed 0 -> 3' for each option whose value differs, named by its flag in `flags`."""
    return [f"{flags.get(k, k)} {stored.get(k)!r} -> {v!r}" for k, v in wanted.items() if stored.get(k) != v]
