"""Which sources a prepare run reads, under which names, and with which data-set options.

`vsr-prepare a.mp4 b.mkv footage/ DATA_DIR` reads files and folders of videos into one data set.
Everything here runs before (or around) the encoding in tools/split_scenes.py:

- the command line: the last positional is DATA_DIR; folders contribute every video file inside;
  every source is probed first, so a bad one is a one-line error before DATA_DIR exists;
- names: each source gets a key (its stem, or `<folder>-<stem>` when two share one) that names its
  scenes (`<key>-s0003`) and its manifest record; a file already in the manifest (same content,
  even when moved) keeps its key, so adding a video later touches nothing that is there;
- options: the data set's tiers and encoding options are recorded in the manifest on the first run;
  a later run that would change what is on disk is refused naming the option, unless `--force`,
  which re-encodes every source (or re-detects a source whose scene options changed).
"""
from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from tqdm import tqdm

from vsrvfi.core import layout
from vsrvfi.core.errors import UsageError
from vsrvfi.core.manifest import describe_changes, load_manifest, update_manifest
from vsrvfi.core.media import VideoInfo, probe
from vsrvfi.tools.split_scenes import SplitOptions, check_source, fingerprint, record_conflict
from vsrvfi.tools.encoding.codecs import AUTO, DATASET_FLAGS, TranscodeOptions, dataset_options
from vsrvfi.tools.encoding.command import make_tiers
from vsrvfi.tools.encoding.encoders import Backend
from vsrvfi.tools.encoding.sizing import Parallelism, job_memory, machine_cpus, plan_parallelism

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


# ------------------------------------------------------------------------------------ planning

@dataclass
class Source:
    path: Path
    key: str
    info: VideoInfo
    split_options: SplitOptions | None = None   # None: the run's (a re-encoded old source keeps its own)


@dataclass
class RunPlan:
    sources: list[Source]
    tiers: list[str]                 # the data set's tier names
    alone: bool                      # the data set has one source (it keeps at least one val scene)
    reencode: bool = False           # --force with changed data-set options: every clip is rewritten


def _even(n: int) -> int:
    return n - n % 2


def _clean(name: str) -> str:
    return re.sub(r"[^\w.-]+", "_", name).strip("._")


def _key_for(path: Path, taken: set[str]) -> str:
    stem = _clean(path.stem) or "source"
    for key in (stem, f"{_clean(path.parent.name) or 'root'}-{stem}"):
        if key not in taken:
            return key
    n = 2
    while f"{stem}-{n}" in taken:
        n += 1
    return f"{stem}-{n}"


def remove_source(data_dir: Path, key: str, record: dict) -> None:
    """Delete every clip and frame folder of a source and its manifest record (before preparing it anew)."""
    clips = {d["clip"] for d in record.get("scenes", [])}
    for res_dir in [p for p in data_dir.iterdir() if p.is_dir()]:
        for split in layout.SPLITS:
            for clip in clips:
                layout.clip_path(data_dir, res_dir.name, split, clip).unlink(missing_ok=True)
                shutil.rmtree(layout.frames_dir(data_dir, res_dir.name, split, clip), ignore_errors=True)
    (data_dir / layout.ORIG / "normalized" / f"{key}.mp4").unlink(missing_ok=True)
    update_manifest(data_dir, lambda m: m["sources"].pop(key, None))


def plan_run(data_dir: Path, infos: dict[Path, VideoInfo], s_opts: SplitOptions, t_opts: TranscodeOptions,
             keep_orig: bool, force: bool) -> RunPlan:
    """Keys, tiers and option checks for a run; with `force`, removes what the run will redo.

    Refuses (one line naming the option) a run whose options would change clips already on disk, a
    source file that changed since it was prepared, and a source too small for the data set's tiers.
    """
    manifest = load_manifest(data_dir)
    records: dict[str, dict] = manifest["sources"]
    stored = manifest.get("options")
    if manifest.get("force_pending") and not force:
        raise UsageError(f"{data_dir}: a --force run that rewrites every clip was interrupted; run it again with "
                         "--force to finish")

    # Keys: a file already prepared keeps its key (matched by content, so a moved file is found).
    by_fp = {rec.get("fingerprint"): key for key, rec in records.items()}
    by_path = {rec.get("path"): key for key, rec in records.items()}
    taken, out, stale, seen = set(records), [], [], set()
    for path, info in infos.items():
        fp = fingerprint(path)
        if fp in seen:
            continue  # the same content given twice (a copy, or a link)
        seen.add(fp)
        # a file already prepared is found by its content (even when moved), a replaced one by its path
        key = by_fp.get(fp) or by_path.get(str(path.resolve()))
        problem = record_conflict(path, data_dir, records[key], fp, s_opts) if key is not None else None
        if problem and not force:
            raise UsageError(problem)
        if problem:
            stale.append(key)
        if key is None:
            key = _key_for(path, taken)
        taken.add(key)
        out.append(Source(path, key, info))

    # Tiers: the data set's own on a later run ('auto'); on the first run the standard tiers that fit
    # every source (so every tier holds every clip), else the smallest source's height.
    if tuple(t_opts.resolutions) == (AUTO,):
        if stored:
            tiers = list(stored["resolutions"])
        else:
            heights = [_even(i.height) for i in infos.values()]
            heights += [_even(r["info"]["height"]) for r in records.values()]
            tiers = layout.standard_tiers_for(min(heights))
    else:
        tiers = list(t_opts.resolutions)
    wanted = dataset_options(t_opts, tiers, keep_orig, s_opts.crf)
    reencode = False
    if stored and stored != wanted and records:
        changes = describe_changes(stored, wanted, DATASET_FLAGS)
        if not force:
            raise UsageError(f"{data_dir}: prepared with other options ({'; '.join(changes)}); use those, or "
                             "--force to re-encode every clip with the new ones")
        reencode = True
    if reencode:  # every source of the data set is encoded again, not only the ones named now
        named = {s.key for s in out}
        for key, rec in records.items():
            if key in named or key in stale:
                continue
            path = Path(rec["path"])
            if rec.get("kind") == "frames":
                raise UsageError(f"{path}: imported frame folders are not re-encoded by --force; import them into "
                                 "a DATA_DIR of their own (vsr-prepare ROOT DATA_DIR --from-frames)")
            if not path.exists():
                raise UsageError(f"{path}: needed to re-encode {data_dir} with new options (--force), but it is gone")
            if fingerprint(path) != rec.get("fingerprint"):
                raise UsageError(f"{path}: changed since {data_dir} was prepared from it; --force cannot re-encode "
                                 "its scenes with new options (name it on the command line to prepare it anew)")
            out.append(Source(path, key, probe(path), SplitOptions(**rec["options"])))
    for src in out:
        if not any(layout.resolution_height(t) <= _even(src.info.height) for t in tiers):
            raise UsageError(f"{src.path}: {src.info.width}x{src.info.height} is below every tier of {data_dir} "
                             f"({', '.join(tiers)}; no upscaling); prepare it into another DATA_DIR or add "
                             f"--resolutions {_even(src.info.height)}p")
    for key in stale:
        remove_source(data_dir, key, records[key])
    if reencode:
        for res in set(stored.get("resolutions", [])) - set(tiers):
            shutil.rmtree(data_dir / res, ignore_errors=True)
        if stored.get("keep_orig") and not keep_orig:
            shutil.rmtree(data_dir / layout.ORIG / "scenes", ignore_errors=True)
        for res in tiers:  # PNG frames of re-encoded clips are made again
            shutil.rmtree(data_dir / res / "frames", ignore_errors=True)

    def record(m: dict) -> None:
        m["options"] = wanted
        m["force_pending"] = reencode

    update_manifest(data_dir, record)
    alone = len(out) == 1 and all(k == out[0].key for k in records)
    return RunPlan(out, tiers, alone, reencode)


def finish_run(data_dir: Path) -> None:
    """Mark a --force run complete (a rerun without --force is allowed again)."""
    update_manifest(data_dir, lambda m: m.pop("force_pending", None))


def writer_parallelism(plan: RunPlan, t_opts: TranscodeOptions, backend: Backend, keep_orig: bool) -> Parallelism:
    """Scene processes at once for the run's shared writer, sized by its largest source."""
    n_tiers, memory = 1, 0
    for src in plan.sources:
        tiers, _ = make_tiers(t_opts, backend, _even(src.info.width), _even(src.info.height),
                              0 if keep_orig else None)
        n_tiers = max(n_tiers, len(tiers))
        memory = max(memory, job_memory(_even(src.info.width), _even(src.info.height), tiers))
    return plan_parallelism(n_tiers, t_opts.jobs, t_opts.threads, memory_per_job=memory, hw=backend.hw)


def detect_jobs(n_sources: int) -> int:
    """Sources whose scenes are detected at once: one per four cores (decoding and the detector use
    more than one each), never more than the sources."""
    return max(1, min(n_sources, machine_cpus() // 4))


def source_table(manifest: dict) -> list[dict]:
    """Per source of the data set: key, path, size, rate and its scenes (kept, train, val, frames)."""
    rows = []
    for key, rec in manifest.get("sources", {}).items():
        kept = [d for d in rec["scenes"] if not d.get("dropped")]
        info = rec.get("info", {})
        rows.append({"key": key, "path": rec.get("path"), "size": f"{info.get('width')}x{info.get('height')}",
                     "fps": round(float(info.get("fps", 0)), 3), "scenes": len(rec["scenes"]), "kept": len(kept),
                     "train": sum(d.get("split") == "train" for d in kept),
                     "val": sum(d.get("split") == "val" for d in kept),
                     "frames": sum(d["num_frames"] for d in kept)})
    return rows
