"""The planner of data preparation: sources, frame folders and an existing manifest in, a typed plan out.

Pure: it reads the manifest, probes and fingerprints sources and looks at what is on disk, but never
writes. A plan lists what the executor (tools/preparation/executor.py) is to do: the files to
remove, the manifest changes to commit (core/manifest.py's PutSource, DropSource, SetOptions, ...)
and the scene jobs (tools/encoding/command.SceneJob) to run.

- `plan_run`: the sources of a vsr-prepare run, their keys (a file already prepared keeps its key,
  found by its content even when moved), the data set's tiers and options, what --force redoes.
- `plan_source`: one video source: its tiers, and on a rerun the scenes whose tier clips are missing.
- `plan_transcode`: vsr-transcode: the missing tier clips of every scene of a data set.
- `plan_frames`: an import of frame folders (tools/import_frames.py lists and checks the folders).
"""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence

from vsrvfi.core import layout
from vsrvfi.core.errors import MediaError, UsageError
from vsrvfi.core.manifest import (Change, DatasetOptions, DropSource, Manifest, Scene, SetOptions, SourceRecord,
                                  describe_changes)
from vsrvfi.core.media import VideoInfo, probe
from vsrvfi.tools.encoding.codecs import AUTO, DATASET_FLAGS, TranscodeOptions, dataset_options, encoding_options
from vsrvfi.tools.encoding.command import SceneJob, Tier, image_sequence_job, make_tiers, missing_tiers
from vsrvfi.tools.encoding.encoders import Backend, choose_backend, nvdec_works
from vsrvfi.tools.encoding.normalize import needs_normalizing
from vsrvfi.tools.preparation.scenes import SPLIT_FLAGS, SplitOptions, check_source, fingerprint


def even(n: int) -> int:
    """`n` rounded down to even (yuv420p sizes)."""
    return n - n % 2


# ------------------------------------------------------------------------------------ the run

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
    removals: list[Path] = field(default_factory=list)   # files and folders to delete before encoding
    changes: list[Change] = field(default_factory=list)  # manifest changes to commit before encoding


def record_conflict(video: Path, data_dir: Path, record: SourceRecord, fp: str, opts: SplitOptions) -> str | None:
    """Why `video` cannot resume from its manifest `record` (the file changed, or its scene options),
    as the one-line error, naming the options that differ; None when it can."""
    if record.fingerprint != fp:
        return (f"{video}: changed since {data_dir} was prepared from it; --force prepares it again (its old "
                "scenes are removed)")
    if record.options != asdict(opts):
        changes = describe_changes(record.options, asdict(opts), SPLIT_FLAGS)
        return (f"{video}: {data_dir} was prepared from it with other options ({'; '.join(changes)}); use "
                "those, or --force to detect its scenes again")
    return None


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


def _named_sources(data_dir: Path, manifest: Manifest, infos: dict[Path, VideoInfo], s_opts: SplitOptions,
                   force: bool) -> tuple[list[Source], list[str]]:
    """The run's sources with their keys, and the keys of prepared sources that changed (--force redoes them)."""
    records = manifest.sources
    by_fp = {rec.fingerprint: key for key, rec in records.items()}
    by_path = {rec.path: key for key, rec in records.items()}
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
    return out, stale


def _run_tiers(manifest: Manifest, infos: dict[Path, VideoInfo], t_opts: TranscodeOptions) -> list[str]:
    """The data set's own tiers on a later run ('auto'); on the first run the standard tiers that fit
    every source (so every tier holds every clip), else the smallest source's height."""
    if tuple(t_opts.resolutions) != (AUTO,):
        return list(t_opts.resolutions)
    if manifest.options:
        return list(manifest.options.resolutions)
    heights = [even(i.height) for i in infos.values()] + [even(r.info["height"]) for r in manifest.sources.values()]
    return layout.standard_tiers_for(min(heights))


def _reencoded_sources(data_dir: Path, manifest: Manifest, skip: set[str]) -> list[Source]:
    """Every other source of the data set, to be encoded again with new options (--force)."""
    out = []
    for key, rec in manifest.sources.items():
        if key in skip:
            continue
        path = Path(rec.path)
        if rec.is_frames:
            raise UsageError(f"{path}: imported frame folders are not re-encoded by --force; import them into "
                             "a DATA_DIR of their own (vsr-prepare ROOT DATA_DIR --from-frames)")
        if not path.exists():
            raise UsageError(f"{path}: needed to re-encode {data_dir} with new options (--force), but it is gone")
        if fingerprint(path) != rec.fingerprint:
            raise UsageError(f"{path}: changed since {data_dir} was prepared from it; --force cannot re-encode "
                             "its scenes with new options (name it on the command line to prepare it anew)")
        out.append(Source(path, key, probe(path), SplitOptions(**rec.options)))
    return out


def source_files(data_dir: Path, key: str, record: SourceRecord) -> list[Path]:
    """Every clip and frame folder of a source, and its normalised copy: what preparing it anew removes."""
    clips = {s.clip for s in record.scenes}
    out = []
    for res_dir in sorted(p for p in data_dir.iterdir() if p.is_dir()):
        for split in layout.SPLITS:
            for clip in sorted(clips):
                out += [layout.clip_path(data_dir, res_dir.name, split, clip),
                        layout.frames_dir(data_dir, res_dir.name, split, clip)]
    out.append(data_dir / layout.ORIG / "normalized" / f"{key}.mp4")
    return [p for p in out if p.exists()]


def _reencode_removals(data_dir: Path, stored: DatasetOptions, tiers: Sequence[str], keep_orig: bool) -> list[Path]:
    """What re-encoding with new options makes stale: dropped tiers, orig/ cuts no longer kept, PNG frames."""
    out = [data_dir / res for res in sorted(set(stored.resolutions) - set(tiers))]
    if stored.keep_orig and not keep_orig:
        out.append(data_dir / layout.ORIG / "scenes")
    out += [data_dir / res / "frames" for res in tiers]
    return [p for p in out if p.exists()]


def plan_run(data_dir: Path, manifest: Manifest, infos: dict[Path, VideoInfo], s_opts: SplitOptions,
             t_opts: TranscodeOptions, keep_orig: bool, force: bool) -> RunPlan:
    """Keys, tiers, option checks and, with `force`, what the run removes to redo it.

    Refuses (one line naming the option) a run whose options would change clips already on disk, a
    source file that changed since it was prepared, and a source too small for the data set's tiers.
    """
    if manifest.force_pending and not force:
        raise UsageError(f"{data_dir}: a --force run that rewrites every clip was interrupted; run it again with "
                         "--force to finish")
    sources, stale = _named_sources(data_dir, manifest, infos, s_opts, force)
    tiers = _run_tiers(manifest, infos, t_opts)
    wanted = dataset_options(t_opts, tiers, keep_orig, s_opts.crf)
    stored = manifest.options
    reencode = bool(stored and stored != wanted and manifest.sources)
    if reencode and not force:
        changes = describe_changes(stored.to_dict(), wanted.to_dict(), DATASET_FLAGS)
        raise UsageError(f"{data_dir}: prepared with other options ({'; '.join(changes)}); use those, or "
                         "--force to re-encode every clip with the new ones")
    if reencode:  # every source of the data set is encoded again, not only the ones named now
        sources += _reencoded_sources(data_dir, manifest, {s.key for s in sources} | set(stale))
    for src in sources:
        if not any(layout.resolution_height(t) <= even(src.info.height) for t in tiers):
            raise UsageError(f"{src.path}: {src.info.width}x{src.info.height} is below every tier of {data_dir} "
                             f"({', '.join(tiers)}; no upscaling); prepare it into another DATA_DIR or add "
                             f"--resolutions {even(src.info.height)}p")
    removals = [p for key in stale for p in source_files(data_dir, key, manifest.sources[key])]
    if reencode:
        removals += _reencode_removals(data_dir, stored, tiers, keep_orig)
    changes: list[Change] = [DropSource(key) for key in stale] + [SetOptions(wanted, reencode)]
    alone = len(sources) == 1 and all(k == sources[0].key for k in manifest.sources)
    return RunPlan(sources, tiers, alone, reencode, removals, changes)


# --------------------------------------------------------------------------------- one source

@dataclass
class SourcePlan:
    """One video source of a run: its tiers and, on a rerun, the tier clips each scene lacks."""

    video: Path
    key: str
    data_dir: Path
    info: VideoInfo                  # the source's probe
    opts: SplitOptions
    fingerprint: str
    backend: Backend
    tiers: list[Tier]
    record: SourceRecord | None      # the manifest's (a rerun), or None: its scenes are to be detected
    todo: list[tuple[Scene, tuple[Tier, ...]]] = field(default_factory=list)
    normalize: list[str] = field(default_factory=list)   # why the source is normalised first (empty: it is not)
    warnings: list[str] = field(default_factory=list)
    width: int = 0                   # of the file the scenes are cut from
    height: int = 0

    @property
    def normalized_path(self) -> Path:
        return self.data_dir / layout.ORIG / "normalized" / f"{self.key}.mp4"

    @property
    def cut_from(self) -> Path:
        """The file the scenes are cut from (before normalising a new source)."""
        return self.normalized_path if self.record is not None and self.record.normalized else self.video


def plan_source(video: Path, data_dir: Path, manifest: Manifest, opts: SplitOptions, transcode: TranscodeOptions,
                keep_orig: bool, key: str, force: bool, info: VideoInfo) -> SourcePlan:
    """The plan of one source: refuses a source that changed or whose scene options did (one line)."""
    check_source(video, info)
    fp = fingerprint(video)
    record = manifest.sources.get(key)
    problem = record_conflict(video, data_dir, record, fp, opts) if record is not None else None
    if problem:
        raise UsageError(problem)
    if transcode.resolutions:
        backend = choose_backend(transcode.codec, transcode.encoder)
    else:  # orig/ only: the near-lossless cut is x264 on the CPU
        backend = Backend("cpu", "h264", "libx264", "full-resolution cuts only")
        transcode = TranscodeOptions(resolutions=(), codec="h264")
    if record is not None:  # the manifest has the size of the file the scenes were cut from
        width, height = record.info["width"], record.info["height"]
    else:
        width, height = even(info.width), even(info.height)
    tiers, warnings = make_tiers(transcode, backend, width, height, opts.crf if keep_orig else None, opts.preset)
    todo = []
    if record is not None:
        todo = [(sc, t) for sc in record.kept()
                for t in [tuple(tiers) if force else missing_tiers(data_dir, sc, tiers)] if t]
    return SourcePlan(video, key, data_dir, info, opts, fp, backend, tiers, record, todo, needs_normalizing(info),
                      [f"{video.name}: {w}" for w in warnings], width, height)


def new_record(plan: SourcePlan, info: VideoInfo, cut_from: Path, scenes: list[Scene]) -> SourceRecord:
    """The manifest record of a source whose scenes were just detected in `cut_from` (probed as `info`)."""
    return SourceRecord(path=str(plan.video.resolve()), fingerprint=plan.fingerprint, info=info.as_dict(),
                        options=asdict(plan.opts), normalized=cut_from != plan.video, scenes=scenes,
                        cut_from=str(cut_from.resolve()))


# ------------------------------------------------------------------------------ vsr-transcode

@dataclass
class TranscodePlan:
    jobs: list[tuple[SceneJob, int, int]]   # each job with its source's width and height (for sizing)
    warnings: list[str]
    added: set[str]                         # tier names the data set's options do not list yet


def frames_job(record: SourceRecord, scene: Scene, tiers: Sequence[Tier]) -> SceneJob:
    """The SceneJob writing `tiers` of one imported clip from its frames."""
    f = record.frames[scene.clip]
    return image_sequence_job(Path(scene.source) / f.pattern, scene.clip, f.start_number, scene.num_frames,
                              scene.fps, tiers, scene.split)


def _scene_job(data_dir: Path, rec: SourceRecord, sc: Scene, todo: tuple[Tier, ...], backend: Backend,
               cache: dict) -> SceneJob:
    """A job cutting `sc` from the file it was detected in, or from its orig/ cut when that file is gone."""
    if rec.is_frames:
        return frames_job(rec, sc, todo)
    src = Path(rec.cut_from or rec.path)
    if src.exists():
        if src not in cache:
            cache[src] = (probe(src).start_time, backend.hw and nvdec_works(src))
        start, hw = cache[src]
        return SceneJob(src, sc.clip, sc.start_frame, sc.num_frames, sc.fps, todo, sc.split, hw, start)
    orig = layout.clip_path(data_dir, layout.ORIG, sc.split, sc.clip)
    if not orig.exists():
        raise MediaError(src, f"source of {sc.clip} is gone and {orig} does not exist; "
                              "rerun vsr-split-scenes with the source")
    return SceneJob(orig, sc.clip, 0, sc.num_frames, sc.fps, todo, sc.split, backend.hw and nvdec_works(orig),
                    probe(orig).start_time)


def plan_transcode(data_dir: Path, manifest: Manifest, opts: TranscodeOptions, backend: Backend) -> TranscodePlan:
    """Every missing tier clip of the scenes in the manifest. Scenes are cut from the file they were
    detected in (the source, or its normalised copy); when that file is gone, from orig/ if it is there."""
    if not manifest.scenes():
        raise UsageError(f"{data_dir}: no scenes in {layout.MANIFEST}; run vsr-split-scenes first")
    stored = manifest.options
    if stored:  # tiers are added with the data set's own encoding (vsr-prepare --force changes it)
        changes = describe_changes(stored.to_dict(), encoding_options(opts), DATASET_FLAGS)
        if changes:
            raise UsageError(f"{data_dir}: its clips were encoded with other options ({'; '.join(changes)}); use "
                             "those (vsr-prepare --force re-encodes every clip with new ones)")
    plan = TranscodePlan([], [], set())
    warnings: set[str] = set()
    cache: dict = {}
    for rec in manifest.sources.values():
        width, height = rec.info["width"], rec.info["height"]
        tiers, warn = make_tiers(opts, backend, width, height)
        plan.added.update(t.name for t in tiers)
        warnings.update(f"{Path(rec.path).name}: {w}" for w in warn)
        for sc in rec.kept():
            todo = missing_tiers(data_dir, sc, tiers)
            if todo:
                plan.jobs.append((_scene_job(data_dir, rec, sc, todo, backend, cache), width, height))
    plan.warnings = sorted(warnings)
    if stored:
        plan.added -= set(stored.resolutions)
    else:
        plan.added = set()
    return plan


# ---------------------------------------------------------------------------- frame-folder imports

@dataclass
class FramesPlan:
    """An import of frame folders: the record to commit (None: the manifest has it), the tiers, the jobs."""

    record: SourceRecord
    commit: bool                     # a first import: the record is written before the clips
    backend: Backend
    tiers: list[Tier]
    jobs: list[SceneJob]
    warnings: list[str]              # tiers above the frames' size, skipped


def plan_frames(data_dir: Path, manifest: Manifest, key: str, record: SourceRecord, transcode: TranscodeOptions,
                keep_orig: bool, orig_crf: int) -> FramesPlan:
    """The tier clips an import of frame folders (`record`, as tools/import_frames.py found them) still
    needs; refuses a DATA_DIR whose record of `key` was made from other frames or options (one line)."""
    old = manifest.sources.get(key)
    if old is not None and (not old.is_frames or old.fingerprint != record.fingerprint
                            or old.options != record.options):
        what = ("a video" if not old.is_frames else
                "other frames" if old.fingerprint != record.fingerprint else "different options")
        raise UsageError(f"{data_dir}: already holds clips of {old.path} made from {what}; "
                         f"use another DATA_DIR or remove {data_dir / layout.MANIFEST}")
    record = old or record
    backend = choose_backend(transcode.codec, transcode.encoder)
    tiers, warnings = make_tiers(transcode, backend, record.info["width"], record.info["height"],
                                 orig_crf if keep_orig else None)
    jobs = [frames_job(record, sc, todo) for sc in record.kept() for todo in [missing_tiers(data_dir, sc, tiers)]
            if todo]
    return FramesPlan(record, old is None, backend, tiers, jobs, warnings)
