"""The executor of data preparation: does what the planner (tools/preparation/planner.py) decided.

It removes the files a plan lists, commits the plan's manifest changes through `commit` (the one
writer of manifest.json during preparation, via core/manifest.update_manifest), runs scene
detection and hands the scene jobs to an engine. The engine is the seam for other ways of running
jobs: `SceneEngine` is the interface, `ENGINES` names the implementations; today's is "local"
(tools/preparation/local.py: ffmpeg processes on this machine's pool); a Ray engine (issue 24)
registers beside it.
"""
from __future__ import annotations

import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping, Protocol, Sequence

from tqdm import tqdm

from vsrvfi.core import layout
from vsrvfi.core.errors import UsageError
from vsrvfi.core.manifest import Change, Manifest, PutSource, Scene, apply_changes, load_manifest, update_manifest
from vsrvfi.core.media import VideoInfo, probe
from vsrvfi.tools.encoding.codecs import TranscodeOptions
from vsrvfi.tools.encoding.command import SceneJob, Tier, make_tiers, raw_input_args
from vsrvfi.tools.encoding.encoders import Backend, nvdec_works
from vsrvfi.tools.encoding.normalize import normalize_source
from vsrvfi.tools.encoding.sizing import Parallelism, job_memory, machine_cpus, plan_parallelism
from vsrvfi.tools.preparation.decode_once import FrameFeed, Router, stream_tags
from vsrvfi.tools.preparation.local import SceneWriter
from vsrvfi.tools.preparation.ray_engine import RayEngine, check_nodes, connect
from vsrvfi.tools.preparation.planner import RunPlan, Source, SourcePlan, even, new_record, plan_source
from vsrvfi.tools.preparation.scenes import SplitOptions, detect, parse_min_len, plan_scene, plan_scenes


class SceneEngine(Protocol):
    """Runs SceneJobs and puts their clips in place; used as a context manager (leaving it with an
    error stops the jobs and removes their temporaries, finished clips stay).

    Jobs may be submitted before their train/val split is known (scene detection still running):
    their clips wait until `set_splits`; `discard` drops a submitted job (its scene changed).
    """

    par: Parallelism
    written: dict[str, int]          # clips put in place, per tier

    def submit(self, job: SceneJob) -> object: ...
    def discard(self, handle: object) -> None: ...
    def set_splits(self, splits: Mapping[str, str]) -> None: ...
    def __enter__(self) -> "SceneEngine": ...
    def __exit__(self, exc_type, exc, tb) -> None: ...


ENGINES: dict[str, type] = {"local": SceneWriter, "ray": RayEngine}
_selected = ["local"]  # the engine of this process's runs (use_engine), so every stage tool's path gets it
NODES: list[dict] = []  # what use_engine("ray") found on each node (for the summary)
RETRIED: list[dict] = []  # scene tasks resubmitted after a lost worker or node, with the reason (for the summary)
ENGINE_PAR: list[str] = []  # the last engine's own sizing (a Ray engine's differs from this machine's)
DECODE_MODES = ("auto", "once", "per-scene")
_decode = ["auto"]  # how new sources are decoded: "once" (detection feeds the encoders), "per-scene", or "auto"
DECODED_ONCE: list[str] = []  # clips of this process's runs written from detection's decode (for the summary)


def engine_report() -> dict:
    """The engine of this process's runs, its nodes and retries, for summary.json."""
    return {"engine": _selected[0], "decode": _decode[0], "scenes_decoded_once": len(DECODED_ONCE), "engine_parallelism": ENGINE_PAR[0] if ENGINE_PAR else None,
            "nodes": list(NODES), "retries": list(RETRIED)}


def use_engine(kind: str = "local", address: str = "auto", data_dir: Path | None = None,
               decode: str = "auto") -> None:
    """Run this process's scene jobs on `kind`; for "ray", join the cluster at `address` and check that
    every node sees `data_dir` and has the same encoders (ray_engine.check_nodes). `decode`: "once"
    pipes the frames scene detection decodes to the scene encoders where the engine runs them beside
    the detector (local); "per-scene" has each scene's process decode its own frames; "auto" decodes
    once where that costs no parallelism (decodes_once)."""
    if kind not in ENGINES:
        raise UsageError(f"--engine {kind}: unknown engine; one of {', '.join(ENGINES)}")
    if decode not in DECODE_MODES:
        raise UsageError(f"--decode {decode}: unknown mode; one of {', '.join(DECODE_MODES)}")
    _decode[:] = [decode]
    DECODED_ONCE.clear()
    NODES.clear()
    RETRIED.clear()
    ENGINE_PAR.clear()
    if kind == "ray":
        connect(address)
        if data_dir is not None:
            NODES[:] = check_nodes(Path(data_dir))
    _selected[:] = [kind]


def open_engine(data_dir: Path, backend: Backend, par: Parallelism, scaler: str, show_progress: bool = True,
                kind: str | None = None) -> SceneEngine:
    """An engine of `kind` (ENGINES; default the one use_engine chose) writing into `data_dir` with
    `backend`, sized by `par`."""
    return ENGINES[kind or _selected[0]](data_dir, backend, par, scaler, show_progress,
                                         desc=f"encode {backend.encoder}")


# ----------------------------------------------------------------------------- files and manifest

def commit(data_dir: Path, changes: Sequence[Change]) -> Manifest:
    """Apply manifest changes (re-read, changed, written atomically, one thread at a time)."""
    return update_manifest(data_dir, lambda m: apply_changes(m, changes))


def remove(paths: Iterable[Path]) -> None:
    """Delete files and folders (those already gone are fine)."""
    for p in paths:
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)


def start_run(data_dir: Path, plan: RunPlan) -> None:
    """What a run does before encoding: remove what it redoes, record the data set's options."""
    remove(plan.removals)
    commit(data_dir, plan.changes)


# ------------------------------------------------------------------------------------- one source

@dataclass
class PrepareResult:
    """What preparing a source did: every scene (kept and dropped), the encoder and the time spent."""

    scenes: list[Scene]
    backend: Backend | None = None
    parallelism: Parallelism | None = None
    tiers: list[str] = field(default_factory=list)
    clips_written: dict[str, int] = field(default_factory=dict)
    detect_seconds: float = 0.0        # 0 when the manifest already had the scenes
    encode_seconds: float = 0.0        # from the first scene job to the last (overlaps detection)
    first_job_at: float | None = None  # time.perf_counter() of the first scene job (a shared engine ends later)
    warnings: list[str] = field(default_factory=list)


class _Submitter:
    """Makes one source's scene jobs (cut from `src`) and hands them to the engine, noting the first."""

    def __init__(self, engine: SceneEngine, src: Path, fps: float, hw_decode: bool, start_time: float):
        self.engine, self.src, self.fps, self.hw_decode, self.start_time = engine, src, fps, hw_decode, start_time
        self.first_at: float | None = None

    def __call__(self, sc: Scene, tiers: Sequence[Tier]) -> object:
        if self.first_at is None:
            self.first_at = time.perf_counter()
        return self.engine.submit(SceneJob(self.src, sc.clip, sc.start_frame, sc.num_frames, self.fps, tuple(tiers),
                                           sc.split, self.hw_decode, self.start_time))

    def piped(self, clip: str, start: int, tiers: Sequence[Tier], raw: tuple[str, ...], sar: str,
              feed: FrameFeed) -> object:
        """A scene whose frames come from `feed` (decode-once); its length is known when the feed ends."""
        if self.first_at is None:
            self.first_at = time.perf_counter()
        return self.engine.submit(SceneJob(self.src, clip, start, 0, self.fps, tuple(tiers), None, False,
                                           self.start_time, raw, piped=True, sar=sar), feed)


def _cut_from(plan: SourcePlan) -> tuple[Path, VideoInfo]:
    """The file the scenes are cut from and its probe: normalised first when the source needs it."""
    src, info = plan.cut_from, plan.info
    if plan.normalize and (plan.record is None or plan.todo):
        if not plan.normalized_path.exists():
            tqdm.write(f"{plan.video}: converting ({', '.join(plan.normalize)}) to constant-rate 8-bit yuv420p first")
        src = normalize_source(info, plan.normalized_path, plan.opts.crf, plan.opts.preset)
        info = probe(src)
    return src, info


def decodes_once(plan: SourcePlan, info: VideoInfo, engine: SceneEngine, detections: int = 1) -> bool:
    """Whether a new source's scene encoders are fed by detection's decode (decode-once): with
    --decode once, or auto when the engine runs no more scene processes at once than the run detects
    sources at once (a piped source encodes its scenes one after another, so on a machine sized for
    more scene processes the per-scene decode keeps them busy); an engine running encoders beside the
    detector, CPU encoders, and a plain 8-bit constant-rate yuv420p source of even size."""
    mode = _decode[0]
    wanted = mode == "once" or (mode == "auto" and engine.par.jobs <= max(1, detections))
    return (wanted and getattr(engine, "accepts_feeds", False) and not plan.backend.hw
            and bool(plan.tiers) and info.pix_fmt == "yuv420p" and info.bit_depth == 8 and not info.is_vfr
            and info.width % 2 == 0 and info.height % 2 == 0)


def _router(plan: SourcePlan, src: Path, info: VideoInfo, submit: _Submitter,
            pipes: dict[int, tuple[str, int, object, FrameFeed]], last: list[int]) -> Router:
    """The decode-once router of a new source: each scene it starts becomes a piped job, noted in `pipes`;
    `last[1]` is the index of the scene after the last cut reported (an earlier scene is not piped)."""
    sar, colour = stream_tags(src)
    raw = raw_input_args(info.width, info.height, str(info.fps), colour)

    def open_scene(index: int, start: int) -> FrameFeed | None:
        if index < last[1]:  # its cut came before its first frame was routed: it is encoded per scene
            return None
        clip, feed = layout.clip_name(plan.video, index, plan.key), FrameFeed()
        pipes[index] = (clip, start, submit.piped(clip, start, plan.tiers, raw, sar, feed), feed)
        return feed

    return Router(open_scene, lambda i, feed: feed.close(), lambda i, feed: feed.abort(), plan.opts.trim,
                  (info.width, info.height))


def _keep_piped(pipes: dict[int, tuple[str, int, object, FrameFeed]], kept: Mapping[str, Scene],
                early: dict[str, tuple[int, int, object]], engine: SceneEngine) -> None:
    """Piped scenes join the early jobs (checked against the final scenes next); aborted ones, and
    those of scenes not kept, are discarded."""
    for clip, start, handle, feed in pipes.values():
        feed.wait_ended()
        if feed.aborted or kept.get(clip) is None or clip in early:
            engine.discard(handle)
        else:
            early[clip] = (start, feed.count, handle)


def _detect_and_encode(plan: SourcePlan, src: Path, info: VideoInfo, submit: _Submitter, engine: SceneEngine,
                       alone: bool, show_progress: bool, result: PrepareResult, detections: int = 1) -> list[Scene]:
    """Detect the scenes of a new source, encoding each as soon as the cut after it is found (or, with
    decode-once, as soon as it starts, from the frames detection decodes); then record the source (its
    split is known only now) and encode the scenes not yet submitted (or that came out otherwise)."""
    fps, total, tiers = float(info.fps), info.num_frames, plan.tiers
    early: dict[str, tuple[int, int, object]] = {}
    last = [0, 0]  # previous cut, scene index
    pipes: dict[int, tuple[str, int, object, FrameFeed]] = {}  # decode-once: scene index -> clip, start, job, feed
    router = _router(plan, src, info, submit, pipes, last) if decodes_once(plan, info, engine, detections) else None

    def on_cut(frame: int) -> None:
        if router is not None:
            router.on_cut(frame)
        if frame <= last[0]:
            return
        sc = plan_scene(last[1], last[0], frame, plan.video, fps, plan.opts, total, plan.key)
        last[:] = [frame, last[1] + 1]
        if not sc.dropped and tiers and sc.index not in pipes:
            early[sc.clip] = (sc.start_frame, sc.num_frames, submit(sc, tiers))

    hooks = {} if router is None else {"on_frame": router.on_frame, "on_progress": router.on_progress}
    t0 = time.perf_counter()
    try:
        ranges = getattr(engine, "detect", detect)(src, plan.opts, fps, show_progress, on_cut=on_cut, **hooks)
        if router is not None:
            router.finish(total)
    except BaseException:
        if router is not None:
            router.stop("interrupted")
        raise
    result.detect_seconds = time.perf_counter() - t0
    scenes = plan_scenes(ranges, plan.video, fps, plan.opts, total, plan.key, alone)
    kept = {s.clip: s for s in scenes if not s.dropped}
    if not kept:
        for _, _, handle, _ in pipes.values():
            engine.discard(handle)
        raise UsageError(f"{plan.video}: no scene is at least {parse_min_len(plan.opts.min_scene_len, fps)} "
                         f"frames long ({len(scenes)} found); lower --min-scene-len")
    _keep_piped(pipes, kept, early, engine)
    if router is not None and router.broken:
        result.warnings.append(f"{plan.video.name}: decode-once stopped ({router.broken}); the rest was encoded "
                               "per scene")
    for clip, (start, n, handle) in list(early.items()):
        sc = kept.get(clip)
        if sc is None or (sc.start_frame, sc.num_frames) != (start, n):  # the detector changed its mind
            engine.discard(handle)
            del early[clip]
    commit(plan.data_dir, [PutSource(plan.key, new_record(plan, info, src, scenes))])
    DECODED_ONCE.extend(clip for clip, _, _, _ in pipes.values() if clip in early)
    for sc in kept.values():
        if sc.clip not in early and tiers:
            submit(sc, tiers)
    engine.set_splits({clip: sc.split for clip, sc in kept.items()})
    return scenes


def run_source(plan: SourcePlan, engine: SceneEngine | None = None, alone: bool = True, show_progress: bool = True,
               jobs: int = 0, threads: int = 0, scaler: str = "lanczos", detections: int = 1) -> PrepareResult:
    """Write one source's clips as planned: on its first run, its scenes are detected (and encoded while
    detection runs ahead) and recorded; on a rerun, the missing tier clips are written.

    `engine`: one shared by the run's sources (so one source's scenes encode while the next one's
    detection runs); without one, a local engine sized by `jobs`, `threads` is opened for this source.
    `detections`: sources the run detects at once (for --decode auto).
    """
    src, info = _cut_from(plan)
    new = plan.record is None
    fps = float(info.fps) if new else float(plan.record.info["fps"])
    start = (info if Path(info.path) == src else probe(src)).start_time if new or plan.todo else 0.0
    par = engine.par if engine is not None else plan_parallelism(
        len(plan.tiers), jobs, threads, memory_per_job=job_memory(plan.width, plan.height, plan.tiers),
        hw=plan.backend.hw)
    hw_decode = plan.backend.hw and bool(plan.tiers) and (new or bool(plan.todo)) and nvdec_works(src)
    result = PrepareResult(scenes=[], backend=plan.backend, parallelism=par, tiers=[t.name for t in plan.tiers],
                           warnings=plan.warnings)
    for w in result.warnings:
        tqdm.write(f"warning: {w}")
    own = engine is None
    with (open_engine(plan.data_dir, plan.backend, par, scaler, show_progress and bool(plan.tiers)) if own
          else nullcontext(engine)) as eng:
        submit = _Submitter(eng, src, fps, hw_decode, start)
        if new:
            result.scenes = _detect_and_encode(plan, src, info, submit, eng, alone, show_progress, result, detections)
        else:
            result.scenes = list(plan.record.scenes)
            for sc, missing in plan.todo:
                submit(sc, missing)
    result.first_job_at = submit.first_at
    result.encode_seconds = time.perf_counter() - submit.first_at if submit.first_at else 0.0
    result.clips_written = dict(eng.written) if own else {}
    return result


# ------------------------------------------------------------------------------------ a whole run

def writer_parallelism(plan: RunPlan, t_opts: TranscodeOptions, backend: Backend, keep_orig: bool) -> Parallelism:
    """Scene processes at once for the run's shared writer, sized by its largest source."""
    n_tiers, memory = 1, 0
    for src in plan.sources:
        tiers, _ = make_tiers(t_opts, backend, even(src.info.width), even(src.info.height),
                              0 if keep_orig else None)
        n_tiers = max(n_tiers, len(tiers))
        memory = max(memory, job_memory(even(src.info.width), even(src.info.height), tiers))
    return plan_parallelism(n_tiers, t_opts.jobs, t_opts.threads, memory_per_job=memory, hw=backend.hw)


def detect_jobs(n_sources: int) -> int:
    """Sources whose scenes are detected at once: one per four cores (decoding and the detector use
    more than one each), never more than the sources."""
    return max(1, min(n_sources, machine_cpus() // 4))


def run_sources(data_dir: Path, plan: RunPlan, s_opts: SplitOptions, t_run: TranscodeOptions, keep_orig: bool,
                backend: Backend, par: Parallelism) -> tuple[list[PrepareResult], dict[str, int]]:
    """Every source of a run through one shared engine (several detections at once on machines with many
    cores, so one source's scenes encode while the next one's detection runs); returns each source's
    result and the clips written per tier."""
    manifest = load_manifest(data_dir)
    with open_engine(data_dir, backend, par, t_run.scaler) as engine:
        n_detect = min(len(plan.sources), getattr(engine, "detect_slots", 0)) or detect_jobs(len(plan.sources))
        def one(src: Source) -> PrepareResult:
            sp = plan_source(src.path, data_dir, manifest, src.split_options or s_opts, t_run, keep_orig, src.key,
                             plan.reencode, src.info)
            return run_source(sp, engine, plan.alone, show_progress=n_detect == 1, detections=n_detect)

        if n_detect == 1:
            results = [one(src) for src in plan.sources]
        else:
            with ThreadPoolExecutor(n_detect) as pool:
                results = list(pool.map(one, plan.sources))
    RETRIED.extend(getattr(engine, "retries", []))
    ENGINE_PAR[:] = [engine.par.describe()]
    return results, dict(engine.written)  # read once the engine has finished every job


def run_jobs(data_dir: Path, backend: Backend, par: Parallelism, jobs: Sequence[SceneJob], scaler: str,
             show_progress: bool = True) -> dict[str, int]:
    """Run scene jobs whose splits are known on the selected engine (use_engine); returns the clips written per tier."""
    if not jobs:
        return {}
    with open_engine(data_dir, backend, par, scaler, show_progress) as engine:
        for job in jobs:
            engine.submit(job)
    RETRIED.extend(getattr(engine, "retries", []))
    ENGINE_PAR[:] = [engine.par.describe()]
    return dict(engine.written)


def jobs_parallelism(jobs: Sequence[tuple[SceneJob, int, int]], backend: Backend, jobs_at_once: int = 0,
                     threads: int = 0) -> Parallelism:
    """Sizing for jobs of sources of different sizes (each job with its source's width and height)."""
    mem = max(job_memory(w, h, j.tiers) for j, w, h in jobs)
    return plan_parallelism(max(len(j.tiers) for j, _, _ in jobs), jobs_at_once, threads, memory_per_job=mem,
                            hw=backend.hw)
