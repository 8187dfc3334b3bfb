"""The Ray engine of the executor: the same scene jobs as the local engine (tools/preparation/local.py),
run as Ray tasks on a cluster whose nodes all see DATA_DIR and the sources on a shared file system.

One task per scene (every tier in one ffmpeg process, the one encode: local.encode_scene), one per
source for scene detection; each task declares its CPUs (the encoder threads) and, with NVENC, one
unit of the custom resource "NVENC" (start GPU nodes with `--resources '{"NVENC": 1}'`), so Ray packs
a heterogeneous cluster. Workers write clips under temporary names; this driver renames each
finished scene's clips into place and is the only writer of manifest.json and summary.json. A task
whose worker or node dies is resubmitted (at most RETRIES times, the reason kept in `retries`); bad
input raises the task's own one-line error here. Ray is optional: `pip install -e ".[ray]"`.
"""
from __future__ import annotations

import os
import signal
import socket
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Callable, Sequence

from vsrvfi.core.errors import UsageError
from vsrvfi.core.ffmpeg import ffmpeg_binary, ffmpeg_encoders
from vsrvfi.tools.encoding.command import SceneJob
from vsrvfi.tools.encoding.encoders import Backend
from vsrvfi.tools.encoding.sizing import Parallelism
from vsrvfi.tools.preparation.local import SceneWriter, _Running, _tmp_name, encode_scene
from vsrvfi.tools.preparation.scenes import SplitOptions, detect

RETRIES = 2                 # resubmissions of a scene whose worker or node died
NVENC_RESOURCE = "NVENC"    # custom resource of nodes whose GPU encodes (ray start --resources '{"NVENC": 1}')
KILL_ONCE_ENV = "VSRVFI_RAY_KILL_ONCE"  # tests: a worker exits hard once (the file named here marks it done)
_address: list[str] = []    # set by connect()


def import_ray():
    """The ray module, or one line saying how to install it."""
    try:
        import ray
    except ImportError:
        raise UsageError('--engine ray: Ray is not installed; install it with: pip install -e ".[ray]"') from None
    return ray


def connect(address: str = "auto") -> None:
    """Join the Ray cluster at `address` ('auto': the one started on this machine, or RAY_ADDRESS)."""
    ray = import_ray()
    if ray.is_initialized():
        return
    handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        ray.init(address=address, logging_level="ERROR", log_to_driver=False, configure_logging=False)
    except (ConnectionError, RuntimeError, ValueError) as e:
        raise UsageError(f"--ray-address {address}: no Ray cluster to join ({str(e).splitlines()[0]}); "
                         "start one with `ray start --head` or name it HOST:PORT") from None
    finally:  # ray.init installs its own SIGTERM handler (exit 15, no clean-up): the CLI's own comes back
        if threading.current_thread() is threading.main_thread():
            for sig, h in handlers.items():
                if h is not None:
                    signal.signal(sig, h)
    _address[:] = [address]


# ------------------------------------------------------------------------------- tasks (on workers)

def _encode_task(data_dir: Path, job: SceneJob, temps: Sequence[Path], backend: Backend, scaler: str,
                 par: Parallelism) -> str:
    """One scene on a worker: its tiers written to `temps` (removed again if anything fails)."""
    marker = os.environ.get(KILL_ONCE_ENV)
    if marker:
        try:
            fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            os.close(fd)
            os._exit(1)  # the test's fault: this worker dies without a word, once per cluster
        except FileExistsError:
            pass
    try:
        encode_scene(data_dir, job, temps, backend, scaler, par)
    except BaseException:
        for t in temps:
            Path(t).unlink(missing_ok=True)
        raise
    return socket.gethostname()


def _detect_task(src: Path, opts: SplitOptions, fps: float) -> list[tuple[int, int]]:
    return detect(src, opts, fps, False)


def _probe_task(marker: Path, token: str) -> dict:
    """What a node sees: the driver's marker in DATA_DIR (and one of its own, read back), its ffmpeg."""
    host = socket.gethostname()
    try:
        seen = marker.read_text() == token
        own = marker.with_name(f"{marker.name}.{host}.{os.getpid()}")
        own.write_text(token)
        seen = seen and own.read_text() == token
        own.unlink()
    except OSError as e:
        return {"host": host, "error": f"{e.strerror or e}"}
    if not seen:
        return {"host": host, "error": "sees another file there (not the same file system)"}
    binary = ffmpeg_binary()
    encoders = sorted(e for e in ffmpeg_encoders() if e.startswith(("libx26", "libvpx", "h264_nvenc", "hevc_nvenc")))
    return {"host": host, "ffmpeg": os.path.basename(binary), "encoders": encoders}


# ------------------------------------------------------------------------------ requirements check

def check_nodes(data_dir: Path) -> list[dict]:
    """Run a probe task on every alive node: each must read and write a marker file in `data_dir`
    (a node that cannot is one line naming it); returns each node's host, ffmpeg and encoders."""
    ray = import_ray()
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    data_dir.mkdir(parents=True, exist_ok=True)
    token = uuid.uuid4().hex
    marker = data_dir / f".ray-probe.{token[:8]}"
    marker.write_text(token)
    try:
        nodes = [n for n in ray.nodes() if n.get("Alive")]
        refs = [ray.remote(_probe_task).options(
            num_cpus=0, scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False)).remote(marker, token)
            for n in nodes]
        found = ray.get(refs, timeout=300)
    finally:
        marker.unlink(missing_ok=True)
    rows = []
    for n, r in zip(nodes, found):
        if "error" in r:
            raise UsageError(f"{data_dir}: Ray node {n['NodeManagerAddress']} ({r['host']}) cannot use it: "
                             f"{r['error']}; DATA_DIR and the sources must be on a file system every node sees")
        rows.append({"node": n["NodeManagerAddress"], **r})
    if len({tuple(r["encoders"]) for r in rows}) > 1:
        raise UsageError("Ray nodes have different ffmpeg encoders: " + "; ".join(
            f"{r['node']}: {', '.join(r['encoders'])}" for r in rows) + " (install the same ffmpeg on every node)")
    return rows


# ------------------------------------------------------------------------------------------ engine

def _is_lost_worker(e: BaseException) -> bool:
    ray = import_ray()
    ex = ray.exceptions
    lost = tuple(c for c in (getattr(ex, n, None) for n in
                             ("WorkerCrashedError", "NodeDiedError", "LocalRayletDiedError", "ObjectLostError",
                              "OwnerDiedError", "RaySystemError")) if c is not None)
    return isinstance(e, lost)


class RayEngine(SceneWriter):
    """SceneWriter whose encodes run as Ray tasks (a driver thread waits on each); renames, splits,
    discards and temporaries are the local engine's. Use as a context manager, like SceneWriter."""

    accepts_feeds = False  # scene tasks decode their own frames (decode-once needs the encoder beside the decoder)

    def __init__(self, data_dir: str | os.PathLike, backend: Backend, parallelism: Parallelism,
                 scaler: str = "lanczos", show_progress: bool = True, desc: str | None = None):
        ray = import_ray()
        if not ray.is_initialized():
            connect(_address[0] if _address else "auto")
        cpus = int(ray.cluster_resources().get("CPU", 1))
        self.task_cpus = max(1, min(parallelism.threads or 1, cpus))
        slots = max(1, cpus // self.task_cpus)  # scene tasks the cluster runs at once
        super().__init__(data_dir, backend, replace(parallelism, jobs=slots, cpus=cpus), scaler, show_progress,
                         desc=(desc or f"encode {backend.encoder}") + " on Ray")
        self._pool.shutdown()
        self.driver_threads = 2 * slots  # a driver thread per task; twice the slots are queued so no freed CPU waits
        self._pool = ThreadPoolExecutor(self.driver_threads)
        self.detect_slots = 64      # sources whose detection tasks are in flight at once
        self.retries: list[dict] = []
        self._refs: dict[int, object] = {}
        resources = {NVENC_RESOURCE: 1} if backend.hw else {}
        self._remote = ray.remote(_encode_task).options(num_cpus=self.task_cpus, resources=resources, max_retries=0)

    def _encode(self, run: _Running) -> None:
        ray = import_ray()
        job = run.job
        for attempt in range(RETRIES + 1):
            if self.stop.is_set():
                raise KeyboardInterrupt
            ref = self._remote.remote(self.data_dir, job, list(run.temps), self.backend, self.scaler, self.par)
            with self._lock:
                self._refs[id(run)] = ref
            try:
                ray.get(ref)
                break
            except ray.exceptions.RayTaskError as e:  # the task's own failure: its one-line error
                cause = getattr(e, "cause", None)
                raise cause if isinstance(cause, BaseException) else e
            except Exception as e:  # noqa: BLE001 - a lost worker or node is retried, anything else raised
                if not _is_lost_worker(e) or attempt == RETRIES or self.stop.is_set():
                    raise
                reason = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
                with self._lock:
                    self.retries.append({"clip": job.clip, "attempt": attempt + 1,
                                         "reason": f"{type(e).__name__}: {reason}"})
                    self._remove(run.temps)  # what the dead worker left; the retry writes new names
                    run.temps = [_tmp_name(self.data_dir, t.name, job.split, job.clip) for t in job.tiers]
            finally:
                with self._lock:
                    self._refs.pop(id(run), None)
        self._update(job.num_frames)

    def detect(self, src: Path, opts: SplitOptions, fps: float, show_progress: bool = False,
               on_cut: Callable[[int], None] | None = None) -> list[tuple[int, int]]:
        """Scene detection of one source as a Ray task (one CPU); cuts come at the end, all at once."""
        ray = import_ray()
        try:
            return ray.get(ray.remote(_detect_task).options(num_cpus=1, max_retries=RETRIES).remote(src, opts, fps))
        except ray.exceptions.RayTaskError as e:
            cause = getattr(e, "cause", None)
            raise cause if isinstance(cause, BaseException) else e

    def _abort(self) -> None:
        """Cancel every outstanding task (their ffmpeg is killed, their temporaries removed), then clean up."""
        ray = import_ray()
        self.stop.set()
        with self._lock:
            refs = list(self._refs.values())
        for ref in refs:
            ray.cancel(ref)
        if refs:
            _, left = ray.wait(refs, num_returns=len(refs), timeout=20)
            for ref in left:
                ray.cancel(ref, force=True)
        super()._abort()
