"""Which sources a vsr-prepare run reads, and the per-run pieces around the planner and executor.

`vsr-prepare a.mp4 b.mkv footage/ DATA_DIR` reads files and folders of videos into one data set:
the last positional is DATA_DIR; folders contribute every video file inside; every source is
probed first, so a bad one is a one-line error before DATA_DIR exists. Keys, tiers, option checks
and what --force redoes are the planner's (tools/preparation/planner.plan_run); here are the
command-line pieces, the PNG tiers and the summary's source table.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

from tqdm import tqdm

from vsrvfi.core import layout
from vsrvfi.core.errors import UsageError
from vsrvfi.core.manifest import Manifest
from vsrvfi.core.media import VideoInfo, probe
from vsrvfi.tools.encoding.codecs import AUTO
from vsrvfi.tools.preparation.scenes import check_source

VIDEO_EXTENSIONS = {".mp4", ".mkv", ".mov", ".avi", ".webm", ".m4v", ".ts", ".mts", ".m2ts", ".mxf", ".y4m",
                    ".flv", ".wmv", ".mpg", ".mpeg", ".3gp", ".ogv", ".vob", ".dv"}


# ------------------------------------------------------------------------------- command line

def split_inputs(inputs: Sequence[str]) -> tuple[list[str], Path]:
    """(sources, DATA_DIR) from the positionals: the last is DATA_DIR unless there is only one."""
    if len(inputs) == 1:
        return [inputs[0]], Path("data")
    data_dir = Path(inputs[-1])
    if data_dir.is_file():
        raise UsageError(f"{data_dir}: is a file; the last argument is DATA_DIR, the folder the data set goes to")
    return list(inputs[:-1]), data_dir


def collect_videos(paths: Sequence[str | os.PathLike]) -> list[Path]:
    """The video files named or inside the folders named (sorted, each once)."""
    out: list[Path] = []
    for item in paths:
        p = Path(item)
        if not p.exists():
            raise UsageError(f"{p}: no such file or folder")
        if p.is_dir():
            found = sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in VIDEO_EXTENSIONS
                           and not any(part.startswith(".") for part in f.relative_to(p).parts))
            if not found:
                raise UsageError(f"{p}: no videos in this folder (looked for {', '.join(sorted(VIDEO_EXTENSIONS))})")
            out += found
        else:
            out.append(p)
    seen: set[Path] = set()
    return [p for p in out if not (p.resolve() in seen or seen.add(p.resolve()))]


def probe_sources(videos: Sequence[Path]) -> dict[Path, VideoInfo]:
    """Probe every source and check it can be trained on (one-line error naming the first bad one)."""
    infos = {}
    for v in tqdm(videos, desc="probe sources", unit="file", disable=len(videos) < 4):
        info = probe(v)
        check_source(v, info)
        infos[v] = info
    return infos


def parse_frame_resolutions(text: str) -> tuple[str, ...]:
    names = tuple(r.strip().lower() for r in text.split(",") if r.strip())
    if names == (AUTO,):
        return names
    for n in names:
        try:
            layout.resolution_height(n)
        except ValueError:
            raise UsageError(f"--frame-resolutions {text!r}: {n!r} is not a resolution; use auto, '' or names "
                             "such as 720p,540p") from None
    return names


def frame_tiers(requested: Sequence[str], tiers: Sequence[str]) -> list[str]:
    """The tiers to extract PNG frames for: 'auto' is 720p and 540p where present, else the smallest tier."""
    if tuple(requested) == (AUTO,):
        chosen = [t for t in ("720p", "540p") if t in tiers]
        return chosen or sorted(tiers, key=layout.resolution_height)[:1]
    return [t for t in requested if t in tiers]


def source_table(manifest: Manifest) -> list[dict]:
    """Per source of the data set: key, path, size, rate and its scenes (kept, train, val, frames)."""
    rows = []
    for key, rec in manifest.sources.items():
        kept = rec.kept()
        info = rec.info
        rows.append({"key": key, "path": rec.path, "size": f"{info.get('width')}x{info.get('height')}",
                     "fps": round(float(info.get("fps", 0)), 3), "scenes": len(rec.scenes), "kept": len(kept),
                     "train": sum(s.split == "train" for s in kept), "val": sum(s.split == "val" for s in kept),
                     "frames": sum(s.num_frames for s in kept)})
    return rows
