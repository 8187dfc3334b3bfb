"""The local engine of the executor: scene jobs (tools/encoding/command.SceneJob) run as ffmpeg processes
on this machine, a thread per running process, sized by tools/encoding/sizing.Parallelism.

Every tier is written under a temporary name and renamed to DATA_DIR/<tier>/scenes/<split>/<clip>.mp4
when the scene's tiers are complete and checked. It implements tools/preparation/executor.SceneEngine.
"""
from __future__ import annotations

import os
import threading
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Iterable, Mapping, Sequence

from tqdm import tqdm

from vsrvfi.core import layout
from vsrvfi.core.errors import MediaError
from vsrvfi.core.ffmpeg import run_ffmpeg
from vsrvfi.core.media import probe
from vsrvfi.tools.encoding.command import SceneJob, Tier, scene_command
from vsrvfi.tools.encoding.encoders import Backend
from vsrvfi.tools.encoding.sizing import Parallelism, machine_cpus
from vsrvfi.tools.preparation.decode_once import FrameFeed


def _tmp_name(data_dir: Path, tier: str, split: str | None, clip: str) -> Path:
    folder = layout.scenes_dir(data_dir, tier, split) if split else Path(data_dir) / tier / "scenes"
    return folder / f".{clip}.tmp.{uuid.uuid4().hex[:8]}{layout.CLIP_EXT}"


def encode_scene(data_dir: Path, job: SceneJob, temps: Sequence[Path], backend: Backend, scaler: str,
                 par: Parallelism, on_frames: Callable[[int], None] | None = None,
                 stop: threading.Event | None = None, feed: FrameFeed | None = None) -> None:
    """Write every tier of `job` to `temps` with one ffmpeg process, checked to hold the scene's frames
    (decoding from the start when the seek missed); the one encode of preparation, used by every engine.

    A piped job (decode-once) reads its frames from `feed`; when the feed is aborted the clips are
    left for the caller to drop, and when they come out short the scene is encoded from the file.
    """
    for tmp in temps:
        tmp.parent.mkdir(parents=True, exist_ok=True)
    label = layout.clip_path(data_dir, job.tiers[0].name, job.split or "<split>", job.clip)
    if job.piped:
        if feed is None:
            raise ValueError(f"{job.clip}: a piped scene job needs its frame feed")
        args = scene_command(job, temps, scaler, par.threads, par.decoder_threads, hw=backend.hw)
        run_ffmpeg(args, label, on_frames=on_frames, stop=stop, stdin=feed)
        feed.wait_ended()
        if feed.aborted:
            return
        job = replace(job, piped=False, num_frames=feed.count)
        if not _short_outputs(job, temps):
            return
    for seek in (True, False) if job.start_frame > 0 else (True,):
        args = scene_command(job, temps, scaler, par.threads, par.decoder_threads, hw=backend.hw, seek=seek)
        run_ffmpeg(args, label, on_frames=on_frames, stop=stop)
        short = _short_outputs(job, temps)
        if not short:
            return
        # The seek did not land on a keyframe before the scene: decode from the start instead.
    tier, got = short[0]
    raise MediaError(layout.clip_path(data_dir, tier.name, job.split or "<split>", job.clip),
                     f"wrote {got} frames, expected {job.num_frames}")


def _short_outputs(job: SceneJob, temps: Sequence[Path]) -> list[tuple[Tier, int]]:
    """The tiers whose clip does not hold exactly the scene's frames, with the count they hold."""
    short = []
    for tier, tmp in zip(job.tiers, temps):
        try:
            got = probe(tmp).num_frames
        except MediaError:
            got = 0
        if got != job.num_frames:
            short.append((tier, got))
    return short


@dataclass
class _Running:
    job: SceneJob
    temps: list[Path]
    future: Future | None = None
    done: bool = False
    discarded: bool = False
    feed: FrameFeed | None = None


class SceneWriter:
    """Runs scene jobs in parallel under one progress bar; use as a context manager.

    Each job writes its tiers under temporary names and, once every tier is complete and checked,
    renames them to DATA_DIR/<tier>/scenes/<split>/<clip>.mp4. Jobs may be submitted before the
    train/val split is known (scene detection still running): their clips wait under temporary names
    until `set_splits`. Leaving the block with an error (or Ctrl-C) kills the running ffmpeg
    processes, drops the queued jobs and removes every temporary; finished clips stay.

    Piped jobs (decode-once: `submit(job, feed)`) run beside the pool, not in it: their frames arrive
    as the source is decoded, so they must not wait behind queued jobs.
    """

    accepts_feeds = True  # runs piped SceneJobs (tools/preparation/decode_once.py) on this machine
    FED_AT_ONCE = 8       # piped scenes running at once, at least (a source feeds one at a time, plus the last one's tail)

    def __init__(self, data_dir: str | os.PathLike, backend: Backend, parallelism: Parallelism,
                 scaler: str = "lanczos", show_progress: bool = True, desc: str | None = None):
        self.data_dir = Path(data_dir)
        self.backend = backend
        self.par = parallelism
        self.scaler = scaler
        self.stop = threading.Event()
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(parallelism.jobs)
        self._fed_pool = ThreadPoolExecutor(max(self.FED_AT_ONCE, 2 * machine_cpus()))
        self._jobs: list[_Running] = []
        self._splits: dict[str, str] = {}
        self.written: dict[str, int] = {}
        self._bar = tqdm(total=0, unit="frame", desc=desc or f"encode {backend.encoder}",
                         disable=not show_progress)

    # -- submitting
    def check(self) -> None:
        """Raise the first failure of a finished job now (so a long detection does not run on in vain)."""
        for run in list(self._jobs):
            f = run.future
            if f is not None and f.done() and not f.cancelled() and f.exception() is not None:
                raise f.exception()

    def submit(self, job: SceneJob, feed: FrameFeed | None = None) -> _Running:
        self.check()
        temps = [_tmp_name(self.data_dir, t.name, job.split, job.clip) for t in job.tiers]
        run = _Running(job, temps, feed=feed)
        with self._lock:
            if job.split:
                self._splits[job.clip] = job.split
            self._jobs.append(run)
            self._bar.total += job.num_frames
            self._bar.refresh()
        run.future = (self._fed_pool if feed is not None else self._pool).submit(self._run, run)
        return run

    def discard(self, run: _Running) -> None:
        """Drop a submitted job's clips (its scene turned out different); waits for it to end."""
        with self._lock:
            run.discarded = True
        if run.future is not None:
            run.future.cancel()
            try:
                run.future.result()
            except Exception:  # noqa: BLE001 - its clips are dropped anyway
                pass
        with self._lock:
            self._remove(run.temps)
            self._jobs.remove(run)

    def set_splits(self, splits: Mapping[str, str]) -> None:
        """The split of each clip, once known: finished clips waiting for it are renamed now."""
        with self._lock:
            self._splits.update(splits)
            for run in list(self._jobs):  # _finalize removes finished jobs from the list
                if run.done and not run.discarded and run.job.clip in self._splits:
                    self._finalize(run)

    # -- work
    def _update(self, n: int) -> None:
        with self._lock:
            self._bar.update(n)

    def _run(self, run: _Running) -> None:
        if self.stop.is_set() or run.discarded:
            return
        try:
            self._encode(run)
        except BaseException:
            with self._lock:
                self._remove(run.temps)
            raise
        with self._lock:
            run.done = True
            if not run.discarded and run.job.clip in self._splits:
                self._finalize(run)

    def _encode(self, run: _Running) -> None:
        """Write the job's tiers to its temporaries (the seam another engine overrides: tools/preparation/ray.py)."""
        encode_scene(self.data_dir, run.job, run.temps, self.backend, self.scaler, self.par, self._update, self.stop,
                     run.feed)

    def _finalize(self, run: _Running) -> None:
        """Rename a finished job's temporaries to their final names (called with the lock held)."""
        split = self._splits[run.job.clip]
        for tier, tmp in zip(run.job.tiers, run.temps):
            final = layout.clip_path(self.data_dir, tier.name, split, run.job.clip)
            final.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp, final)
            self.written[tier.name] = self.written.get(tier.name, 0) + 1
        run.temps = []
        self._jobs.remove(run)

    @staticmethod
    def _remove(paths: Iterable[Path]) -> None:
        for p in paths:
            try:
                p.unlink()
            except FileNotFoundError:
                pass

    # -- ending
    def close(self) -> None:
        """Wait for every job; the first failure is raised. Every clip must have its split by now."""
        for run in list(self._jobs):
            if run.future is not None:
                run.future.result()
        with self._lock:
            left = [r.job.clip for r in self._jobs if not r.discarded]
        if left:
            raise RuntimeError(f"no train/val split was set for {', '.join(left)}")

    def __enter__(self) -> "SceneWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if exc_type is None:
                self.close()
        except BaseException:
            self._abort()
            raise
        else:
            if exc_type is not None:
                self._abort()
        finally:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._fed_pool.shutdown(wait=True, cancel_futures=True)
            self._bar.close()

    def _abort(self) -> None:
        self.stop.set()
        with self._lock:
            feeds = [r.feed for r in self._jobs if r.feed is not None]
        for feed in feeds:  # a piped encoder waiting for frames that will not come
            feed.abort()
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._fed_pool.shutdown(wait=True, cancel_futures=True)
        with self._lock:
            for run in self._jobs:
                self._remove(run.temps)
