"""Extract lossless PNG frames of every clip: the data set of the PNG baseline loader.

DATA_DIR/<res>/scenes/<split>/<clip>.mp4 -> DATA_DIR/<res>/frames/<split>/<clip>/000001.png ...
(1-based, so frame i of the clip, 0-based as the DALI reader counts, is file i + 1). Each clip's
folder is written under a temporary name and renamed when complete; complete folders are skipped.
"""
from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Callable, Sequence

from vsrvfi.core import layout
from vsrvfi.core.lock import folder_lock
from vsrvfi.core.cli import ArgumentParser, entry_point, parse_list
from vsrvfi.core.errors import UsageError
from vsrvfi.core.atomic import atomic_path
from vsrvfi.core.ffmpeg import DALI_RGB_ARGS, run_ffmpeg, run_ffmpeg_jobs
from vsrvfi.core.media import probe


def frame_count(folder: Path) -> int:
    return sum(1 for _ in folder.glob("*.png")) if folder.is_dir() else 0


def extract_clip(clip: Path, out: Path, threads: int, on_frames: Callable[[int], None]) -> None:
    """All frames of `clip` as rgb24 PNGs in `out`, atomically."""
    expected = probe(clip).num_frames
    with atomic_path(out) as tmp:
        tmp.mkdir(parents=True)
        # DALI's YUV->RGB conversion, so PNG frames equal what the DALI loader decodes.
        run_ffmpeg(["-y", "-i", str(clip), "-map", "0:v:0", "-fps_mode", "passthrough", "-start_number", "1",
                    *DALI_RGB_ARGS, "-f", "image2", str(tmp / layout.FRAME_PATTERN)], out,
                   on_frames=on_frames, threads=threads, rgb=True)
        got = frame_count(tmp)
        if got != expected:
            raise UsageError(f"{out}: extracted {got} frames, expected {expected}")


def extract(data_dir: str | os.PathLike, resolutions: Sequence[str], jobs: int = 0,
            show_progress: bool = True) -> dict[str, int]:
    """Extract every clip of each resolution that has no complete frame folder; returns folders per res."""
    data_dir = Path(data_dir)
    todo: list[tuple[Path, Path, int]] = []
    for res in resolutions:
        clips = [(split, c) for split in layout.SPLITS for c in layout.list_clips(data_dir, res, split)]
        if not clips:
            have = layout.existing_tiers(data_dir)
            raise UsageError(f"{data_dir / res}: no clips; " + (f"this data set has {', '.join(have)}" if have else
                                                                 "prepare it with vsr-prepare first"))
        for split, clip in clips:
            n = probe(clip).num_frames
            out = layout.frames_dir(data_dir, res, split, clip.stem)
            if frame_count(out) != n:
                todo.append((clip, out, n))
    run_ffmpeg_jobs([functools.partial(extract_clip, clip, out) for clip, out, _ in todo],
                    sum(n for *_, n in todo), "extract png", jobs, show_progress)
    return {res: sum(len(layout.list_frame_dirs(data_dir, res, s)) for s in layout.SPLITS) for res in resolutions}


def main(argv: Sequence[str] | None = None) -> int:
    ap = ArgumentParser(description="Extract PNG frames of every clip (baseline loader data).")
    ap.add_argument("data_dir")
    ap.add_argument("--resolutions", default="720p,540p", help="comma list (PNG is ~40x the size of the clips)")
    ap.add_argument("--jobs", type=int, default=0)
    a = ap.parse_args(argv)
    with folder_lock(a.data_dir, "the data set", create=False):
        counts = extract(a.data_dir, [r.lower() for r in parse_list(a.resolutions)], a.jobs)
    print(", ".join(f"{res}: {n} clips" for res, n in counts.items()))
    return 0


cli = entry_point(main, interrupted="complete outputs are kept; a rerun resumes")

if __name__ == "__main__":
    raise SystemExit(cli())
