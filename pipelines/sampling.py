"""Which sequences an epoch visits, in which order, on which shard: one plan for both loaders.

The DALI loader hands the plan to its reader as a file list (one line per sequence, read in order),
and the PNG loader indexes it directly, so with the same options both loaders visit the same
sequences in the same order. Shuffling is global (a permutation per (seed, epoch)), not DALI's
local shuffle buffer; with `clip_run` > 1 the permutation is made of runs of adjacent sequences
spread over consecutive batches (adjacent_runs), which a video reader decodes without seeking.

A sequence of L frames `stride` apart may start at frame s of an n-frame clip when
s + L * stride <= n (the rule of DALI's video readers; the last stride - 1 frames never end a
sequence). A clip too short for one sequence is skipped with a warning.
"""
from __future__ import annotations

import math
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from vsrvfi.core import layout
from vsrvfi.core.errors import DataError
from vsrvfi.core.media import probe
from vsrvfi.core.seqindex import SequenceIndex, load_index


class ShortClipWarning(UserWarning):
    """A clip has too few frames for one sequence and is left out."""


@dataclass(frozen=True)
class Clip:
    """One clip as a loader sees it: the mp4 file (DALI) or the PNG frame folder (PNG).

    A sequence of a packed data set (core/seqindex.py) is a clip too: frames [first, first +
    num_frames) of its shard file, so a sample never reaches into the next sequence. A PNG clip
    read in place (an imported frame folder) names its frames `frame_pattern % (frame_start + i)`.
    """

    name: str
    path: Path
    num_frames: int
    width: int
    height: int
    lr_path: Path | None = None     # the same scene at the LR resolution (SR with lr_res)
    lr_size: tuple[int, int] | None = None  # its (width, height)
    codec: str = ""                 # the video codec ("png" for frame folders)
    first: int = 0                  # the clip's first frame in its file (a sequence in a shard)
    frame_pattern: str = layout.FRAME_PATTERN  # PNG frame names inside `path` (printf pattern)
    frame_start: int = 1            # the number of frame 0 in frame_pattern


def frames_needed(length: int, stride: int) -> int:
    """Frames a clip needs for one sequence of `length` frames `stride` apart."""
    return length * stride


def sequence_starts(num_frames: int, length: int, stride: int = 1, step: int = 1) -> range:
    """First frames (0-based) of the sequences of an n-frame clip, in order."""
    return range(0, num_frames - frames_needed(length, stride) + 1, step)


def _png_info(folder: Path) -> tuple[int, int, int, str]:
    """(frames, width, height, "png") of a PNG frame folder (size from the first frame's header)."""
    names = sorted(e.name for e in os.scandir(folder) if e.name.endswith(".png"))
    if not names:
        return 0, 0, 0, "png"
    expected = layout.FRAME_PATTERN % 1
    if names[0] != expected or names[-1] != layout.FRAME_PATTERN % len(names):
        raise DataError(folder, f"frames must be numbered {expected} .. {layout.FRAME_PATTERN % len(names)} "
                                 f"without gaps (found {names[0]} .. {names[-1]})")
    from PIL import Image

    with Image.open(folder / names[0]) as im:
        w, h = im.size
    return len(names), w, h, "png"


def _video_info(path: Path) -> tuple[int, int, int, str]:
    info = probe(path)
    return info.num_frames, info.width, info.height, info.codec


def _no_data(data_dir: str | os.PathLike, res: str, split: str, kind: str) -> DataError:
    where = layout.scenes_dir(data_dir, res, split) if kind == "dali" else Path(data_dir) / res / "frames" / split
    what = "clips (*.mp4)" if kind == "dali" else "PNG frame folders"
    tiers = layout.existing_tiers(data_dir, kind, split)
    have = (f"it has {', '.join(tiers)}: set data.res={tiers[0]} (vsr-evaluate: --res {tiers[0]})" if tiers
            else "prepare the data set with vsr-prepare")
    return DataError(where, f"no {what} for resolution {res}, split {split}; {have}")


def discover_clips(data_dir: str | os.PathLike, res: str, split: str, kind: str, length: int, stride: int,
                   lr_res: str | None = None, exclude: Sequence[str] = ()) -> list[Clip]:
    """The clips of one resolution and split that can give a sequence, sorted by name.

    kind "dali" lists DATA_DIR/<res>/scenes/<split>/*.mp4, kind "png" DATA_DIR/<res>/frames/<split>/*/.
    Raises DataError (one line) when there is nothing to read; warns (ShortClipWarning) about each
    clip too short for one sequence and skips it.
    """
    if not Path(data_dir).is_dir():
        raise DataError(data_dir, "data directory not found")
    index = load_index(data_dir)
    if index is not None:
        clips = clips_from_index(index, data_dir, res, split, kind, length, stride, lr_res, exclude)
        if clips is not None:
            return clips
    if kind == "dali":
        paths = layout.list_clips(data_dir, res, split)
        info = _video_info
    else:
        paths = layout.list_frame_dirs(data_dir, res, split)
        info = _png_info
    if not paths:
        raise _no_data(data_dir, res, split, kind)
    need = frames_needed(length, stride)
    clips: list[Clip] = []
    for path in paths:
        name = path.stem if kind == "dali" else path.name
        if name in exclude:  # known to be bad (never probed again)
            continue
        n, w, h, codec = info(path)
        if n < need:
            warnings.warn(f"{path}: {n} frames, fewer than the {need} that one sequence of {length} frames "
                          f"{stride} apart needs; clip skipped", ShortClipWarning, stacklevel=2)
            continue
        lr_path, lr_size = None, None
        if lr_res is not None:
            lr_path = (layout.clip_path(data_dir, lr_res, split, name) if kind == "dali"
                       else layout.frames_dir(data_dir, lr_res, split, name))
            if not lr_path.exists():
                raise DataError(lr_path, f"missing: lr_res={lr_res} needs every {res} clip at {lr_res} too")
            ln, lw, lh, _ = info(lr_path)
            if ln != n:
                raise DataError(lr_path, f"{ln} frames, but the {res} clip has {n}")
            lr_size = (lw, lh)
        clips.append(Clip(name, path, n, w, h, lr_path, lr_size, codec))
    if not clips:
        raise DataError(paths[0].parent, f"every clip is shorter than the {need} frames one sequence needs")
    return clips


def clips_from_index(index: SequenceIndex, data_dir: str | os.PathLike, res: str, split: str, kind: str,
                     length: int, stride: int, lr_res: str | None = None,
                     exclude: Sequence[str] = ()) -> list[Clip] | None:
    """The clips of a packed data set from its index alone: one per sequence, no probe, one stat per shard.

    kind "dali": frames [first, first + frames) of each complete shard at `res` (sequences of shards
    not written yet are left out). kind "png": the sequences' own frame folders, read in place, when
    `res` is the tier of the frames' own size and no PNG frames were extracted for it. None when the
    index does not cover `res` for this kind (the caller then lists and probes clips as usual).
    `exclude` takes sequence or shard names.
    """
    need = frames_needed(length, stride)
    seq, files = index.sequences, index.files
    if kind == "dali":
        tier = index.tiers.get(res)
        if tier is None:
            return None
        lr_tier = None
        if lr_res is not None:
            lr_tier = index.tiers.get(lr_res)
            if lr_tier is None:
                raise DataError(Path(data_dir) / lr_res, f"missing: lr_res={lr_res} needs every {res} shard at "
                                                         f"{lr_res} too (the index has {', '.join(index.tiers)})")
        paths: dict[int, Path | None] = {}  # shard -> its file when complete at res (one stat each)

        def shard(f: int) -> Path | None:
            if f not in paths:
                p = layout.clip_path(data_dir, res, files["split"][f], files["name"][f])
                lr = None if lr_res is None else layout.clip_path(data_dir, lr_res, files["split"][f], files["name"][f])
                paths[f] = p if p.exists() and (lr is None or lr.exists()) else None
            return paths[f]
        w, h, codec = tier["width"], tier["height"], tier["codec"]
        lr_size = None if lr_tier is None else (lr_tier["width"], lr_tier["height"])
        clips = []
        excluded = set(exclude)
        for i, (name, f, first, n) in enumerate(zip(seq["name"], seq["file"], seq["first"], seq["frames"])):
            if files["split"][f] != split or n < need or name in excluded or files["name"][f] in excluded:
                continue
            path = shard(f)
            if path is None:
                continue
            lr_path = None if lr_res is None else layout.clip_path(data_dir, lr_res, split, files["name"][f])
            clips.append(Clip(name, path, n, w, h, lr_path, lr_size, codec, first=first))
        if not clips:
            longest = max((n for f, n in zip(seq["file"], seq["frames"]) if files["split"][f] == split), default=0)
            why = (f"every sequence is shorter than the {need} frames one sample needs ({longest})" if longest < need
                   else "no complete shard (rerun the import to finish it)")
            raise DataError(layout.scenes_dir(data_dir, res, split), f"split {split}: {why}")
        return clips
    if layout.list_frame_dirs(data_dir, res, split) or lr_res is not None:
        return None  # extracted PNG frames (or an LR tier) are read the usual way
    roots = {name: src for name, src in index.sources.items() if src.get("frames_res") == res and src.get("root")}
    if not roots:
        return None
    clips = []
    for i, (name, f, n, source) in enumerate(zip(seq["name"], seq["file"], seq["frames"], seq["source"])):
        src = roots.get(source)
        if src is None or files["split"][f] != split or n < need or name in exclude:
            continue
        clips.append(Clip(name, Path(src["root"]) / seq["folder"][i], n, src["width"], src["height"], codec="png",
                          frame_pattern=seq["pattern"][i], frame_start=seq["start_number"][i]))
    if not clips:
        raise DataError(next(iter(roots.values()))["root"], f"no frame folder of split {split} with {need} frames")
    return clips


def all_sequences(clips: Sequence[Clip], length: int, stride: int, step: int) -> list[tuple[int, int]]:
    """(clip index, start frame) of every sequence, clip by clip, in order."""
    return [(c, s) for c, clip in enumerate(clips) for s in sequence_starts(clip.num_frames, length, stride, step)]


def adjacent_runs(sequences: Sequence[tuple[int, int]], span: int, run: int, batch_size: int,
                  rng: np.random.Generator) -> np.ndarray:
    """A permutation of all sequences in batch order, built from runs of `run` adjacent sequences.

    Adjacent sequences of a clip follow each other without a gap (starts `span` frames apart), so a
    video reader decodes a run straight through, with one seek for the whole run. Runs are shuffled
    and taken `batch_size` at a time: batch k of such a group holds the k-th sequence of each run,
    so a batch still holds `batch_size` different runs, and a run is spread over `run` consecutive
    batches. Each chain's runs start at a random offset (run boundaries move between epochs); the
    shorter pieces left at a chain's two ends are grouped at the end of the epoch.
    """
    chains: dict[tuple[int, int], list[int]] = {}
    for i, (clip, start) in enumerate(sequences):  # clip by clip, starts ascending
        chains.setdefault((clip, start % span), []).append(i)
    full, short = [], []
    for chain in chains.values():
        offset = int(rng.integers(run))
        pieces = [chain[:offset]] + [chain[i:i + run] for i in range(offset, len(chain), run)]
        for piece in pieces:
            if piece:
                (full if len(piece) == run else short).append(piece)
    runs = [full[i] for i in rng.permutation(len(full))] + [short[i] for i in rng.permutation(len(short))]
    order = []
    for g in range(0, len(runs), batch_size):
        group = runs[g:g + batch_size]
        order += [r[k] for k in range(run) for r in group if k < len(r)]
    return np.asarray(order, dtype=np.int64)


def plan_epoch(num_sequences: int, *, shuffle: bool, seed: int, epoch: int, epoch_size: int | None,
               shard_id: int, num_shards: int, sequences: Sequence[tuple[int, int]] | None = None,
               span: int = 1, run: int = 1, batch_size: int = 1) -> list[int]:
    """Indices into all_sequences() that shard `shard_id` visits this epoch, in order.

    The epoch has `epoch_size` samples (default: every sequence once), drawn from successive
    permutations seeded by (seed, epoch) when shuffling, in order otherwise. It is split into
    `num_shards` contiguous, equal parts; when it does not divide evenly the last part is padded
    from the epoch's start (every shard sees the same number of samples, so DDP ranks stay in step).
    With `run` > 1 (and shuffling) each permutation is adjacent_runs() of `sequences` (the
    all_sequences() list, sequences `span` frames long).
    """
    total = epoch_size or num_sequences
    if shuffle:
        rng = np.random.default_rng([int(seed), int(epoch)])
        if run > 1 and sequences is not None:
            def draw():
                return adjacent_runs(sequences, span, run, batch_size, rng)
        else:
            def draw():
                return rng.permutation(num_sequences)
        parts = [draw() for _ in range(math.ceil(total / num_sequences))]
        order = np.concatenate(parts)[:total]
    else:
        order = np.resize(np.arange(num_sequences), total)
    per_shard = math.ceil(total / num_shards)
    padded = np.resize(order, per_shard * num_shards)  # np.resize repeats from the start
    return padded[shard_id * per_shard:(shard_id + 1) * per_shard].tolist()


def num_batches(num_samples: int, batch_size: int, last_batch: str) -> int:
    """Batches per epoch for a last-batch policy: drop (full batches only), partial or fill."""
    if last_batch == "drop":
        return num_samples // batch_size
    return math.ceil(num_samples / batch_size)
