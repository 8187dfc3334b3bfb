"""Packed import: many short frame folders (Vimeo-90K's septuplets) per clip file, one ffmpeg per shard.

Importing one clip per 7-frame sequence costs one ffmpeg start-up per sequence (about 1.5 sequences/s
on 2 cores, measured): the 64,612 septuplets of Vimeo-90K's training list would take most of a day.
Packed, sequences of the same length, split and image type are cut into shards of `pack` sequences;
each shard is one ffmpeg process reading the shard's frames in order (an image2 input over a folder of
numbered links to the real frames) and writing every tier, with a fixed GOP of the sequence length, so
every sequence starts on a keyframe and a read of one sequence decodes only its own frames.
DATA_DIR/sequences.json (core/seqindex.py) maps each sequence to (shard, first frame, frames, split,
source); the loaders read it instead of probing clips, and sample inside one sequence only.

Shards are written by the scene writer (tools/preparation/local.SceneWriter: temporary names, checked
frame counts, renamed when complete), several at once to keep every core busy. A rerun writes only the
shards without a complete file at every tier (resume); sequences new to the index (a folder added to
the root) go into new shards after the existing ones, which stay byte-identical (incremental).
Sequences longer than `max_frames` (REDS' 100-frame clips) are not packed: they stay one clip each.
"""
from __future__ import annotations

import math
import os
import shutil
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Sequence

from vsrvfi.core import layout
from vsrvfi.core.seqindex import SequenceIndex, load_index, save_index
from vsrvfi.tools.encoding.codecs import TranscodeOptions
from vsrvfi.tools.encoding.command import Tier, image_sequence_job, make_tiers
from vsrvfi.tools.encoding.encoders import Backend
from vsrvfi.tools.encoding.sizing import Parallelism
from vsrvfi.tools.preparation.local import SceneWriter

DEFAULT_PACK = 256        # sequences per shard
MIN_PACK = 32             # smaller shards only when asked for (--pack)
SHARDS_PER_JOB = 4        # a small import is cut into at least this many shards per process
MAX_PACK_FRAMES = 32      # longer sequences stay one clip each
TMP_DIR = ".pack"         # DATA_DIR/.pack/<shard>/: numbered links to a shard's frames while it is encoded
LINK_PATTERN = "%07d"


@dataclass
class PackResult:
    shards: int = 0               # shards in the index for this source
    shards_written: int = 0
    sequences: int = 0            # sequences in the index for this source
    sequences_written: int = 0
    frames_written: int = 0
    encode_seconds: float = 0.0


def packable(folder, max_frames: int = MAX_PACK_FRAMES) -> bool:
    return folder.count <= max_frames


def shard_tiers(transcode: TranscodeOptions, backend: Backend, width: int, height: int,
                length: int) -> list[Tier]:
    """The data set's tiers with a GOP of `length` frames: a keyframe at every sequence's first frame."""
    tiers, _ = make_tiers(replace(transcode, gop=length), backend, width, height)
    return tiers


def plan_shards(index: SequenceIndex, key: str, root: Path, folders: Sequence, pack: int,
                min_shards: int = 1) -> list[int]:
    """Add the sequences of `folders` (kept FrameFolders of source `key`) that the index lacks, in new
    shards of at most `pack` sequences each (grouped by split, length and image type, in name order);
    the positions of the new shards in `index.files`. A group is cut into at least `min_shards` shards
    when that leaves MIN_PACK sequences or more in each (a small import still keeps every core busy)."""
    known = set(index.sequences["name"])
    groups: dict[tuple[str, int, str], list] = {}
    for f in folders:
        if f.clip in known:
            continue
        ext = os.path.splitext(f.pattern)[1].lower()
        groups.setdefault((f.split, f.count, ext), []).append(f)
    taken = set(index.files["name"])
    new: list[int] = []
    for (split, count, ext), members in sorted(groups.items()):
        members.sort(key=lambda f: f.clip)
        size = min(pack, max(MIN_PACK, math.ceil(len(members) / max(1, min_shards))))
        stem = f"{key}-{split}-{count}f{ext.replace('.', '-')}"
        n = 0
        for i in range(0, len(members), size):
            while f"{stem}-{n:05d}" in taken:
                n += 1
            name = f"{stem}-{n:05d}"
            taken.add(name)
            fi = index.add_file(name, split)
            for f in members[i:i + size]:
                index.add_sequence(fi, f.clip, f.count, key, str(f.folder.relative_to(root)), f.pattern, f.start)
            new.append(fi)
    return new


def shard_complete(data_dir: Path, index: SequenceIndex, file: int, tiers: Sequence[str]) -> bool:
    """Whether shard `file` exists at every tier (a shard has its final name only once complete)."""
    name, split = index.files["name"][file], index.files["split"][file]
    return all(layout.clip_path(data_dir, t, split, name).exists() for t in tiers)


def _link_frames(index: SequenceIndex, file: int, root: Path, folder: Path) -> str:
    """Numbered links (from 0) to the shard's frames in order; the image2 pattern over them."""
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    seq = index.sequences
    n = 0
    ext = ""
    for i in _members(index, file):
        src = root / seq["folder"][i]
        pattern, start = seq["pattern"][i], seq["start_number"][i]
        ext = os.path.splitext(pattern)[1]
        for k in range(seq["frames"][i]):
            os.symlink(src / (pattern % (start + k)), folder / (LINK_PATTERN % n + ext))
            n += 1
    return str(folder / (LINK_PATTERN + ext))


def _members(index: SequenceIndex, file: int) -> list[int]:
    cache = getattr(index, "_members", None)
    if cache is None or len(cache[1]) != len(index):
        by_file: dict[int, list[int]] = {}
        for i, f in enumerate(index.sequences["file"]):
            by_file.setdefault(f, []).append(i)
        cache = (by_file, list(index.sequences["file"]))
        index._members = cache  # type: ignore[attr-defined]
    return cache[0].get(file, [])


def index_singles(index: SequenceIndex, key: str, root: Path, folders: Sequence) -> None:
    """Add the long clips of `folders` (one clip file each, written by the scene writer) to the index as
    files of one sequence, so the loaders read them without probing too."""
    known = set(index.sequences["name"])
    for f in sorted(folders, key=lambda f: f.clip):
        if f.clip not in known:
            fi = index.add_file(f.clip, f.split)
            index.add_sequence(fi, f.clip, f.count, key, str(f.folder.relative_to(root)), f.pattern, f.start)


def pack_frames(data_dir: str | os.PathLike, key: str, root: str | os.PathLike, folders: Sequence,
                width: int, height: int, fps: float, transcode: TranscodeOptions, backend: Backend,
                par: Parallelism, pack: int = DEFAULT_PACK, show_progress: bool = True,
                singles: Sequence = (), tiers: Sequence[Tier] = ()) -> PackResult:
    """Write `folders` (kept FrameFolders of one source, all packable) as shards of `pack` sequences;
    `singles` (written one clip each by the caller, at `tiers`) are only indexed.

    The index is updated with the new sequences and saved before any shard is written; then every
    shard of this source without a complete file at every tier is encoded (all of them on a first run,
    the missing ones on a rerun, the new ones after folders were added).
    """
    data_dir, given = Path(data_dir), Path(root)  # folders are under `given`; the index records it resolved
    root = given.resolve()
    index = load_index(data_dir) or SequenceIndex()
    lengths = sorted({f.count for f in folders})
    tiers_of = {n: shard_tiers(transcode, backend, width, height, n) for n in lengths}
    tiers = tiers_of[lengths[0]] if lengths else [t for t in tiers if t.name != layout.ORIG]
    for t in tiers:
        index.tiers[t.name] = {"width": t.width, "height": t.height, "codec": t.codec}
    own = next((t.name for t in tiers if (t.width, t.height) == (width, height)), None)
    index.sources[key] = {"root": str(root), "width": width, "height": height, "frames_res": own, "fps": fps}
    plan_shards(index, key, given, folders, pack, SHARDS_PER_JOB * par.jobs)
    index_singles(index, key, given, singles)
    save_index(data_dir, index)

    single_names = {f.clip for f in singles}
    mine = [fi for fi in range(index.num_files) if index.sequences["source"][_members(index, fi)[0]] == key
            and index.files["name"][fi] not in single_names]
    names = [t.name for t in tiers]
    todo = [fi for fi in mine if not shard_complete(data_dir, index, fi, names)]
    result = PackResult(shards=len(mine), sequences=sum(len(_members(index, fi)) for fi in mine))
    tmp = data_dir / TMP_DIR
    t0 = time.perf_counter()
    try:
        with SceneWriter(data_dir, backend, par, transcode.scaler, show_progress and bool(todo),
                         desc=f"pack {backend.encoder}") as writer:
            if lengths and len(lengths) == 1:  # the bar counts sequences (rate and ETA in sequences/s)
                writer._bar.unit, writer._bar.unit_scale = "seq", 1.0 / lengths[0]
            for fi in todo:
                members = _members(index, fi)
                length = index.sequences["frames"][members[0]]
                pattern = _link_frames(index, fi, root, tmp / index.files["name"][fi])
                frames = index.files["frames"][fi]
                job = image_sequence_job(Path(pattern), index.files["name"][fi], 0, frames, fps, tiers_of[length],
                                         index.files["split"][fi])
                writer.submit(job)
                result.shards_written += 1
                result.sequences_written += len(members)
                result.frames_written += frames
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    result.encode_seconds = time.perf_counter() - t0 if todo else 0.0
    return result
