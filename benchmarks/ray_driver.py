"""How many scenes a minute the Ray engine's driver sustains when encoding costs nothing (issue 24: the driver
must never be the limit up to ~1000 scenes/min).

    python -m benchmarks.ray_driver --scenes 600                          # a Ray instance of its own
    python -m benchmarks.ray_driver --scenes 600 --ray-address HOST:PORT  # an existing cluster

The real RayEngine (tools/preparation/ray_engine.py: one task and one driver thread per scene, the
renames into DATA_DIR/<tier>/scenes/<split>/) runs SceneJobs whose task only creates its temporary
files (no ffmpeg), so what is measured is Ray's scheduling, the driver's threads and the renames.
Prints a table and writes JSON. The machine may be shared: say so with the numbers.
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Sequence

from vsrvfi.core.cli import run_cli
from vsrvfi.tools.encoding.command import SceneJob, Tier
from vsrvfi.tools.encoding.encoders import Backend
from vsrvfi.tools.encoding.sizing import Parallelism
from vsrvfi.tools.preparation import ray_engine


def _noop_task(data_dir, job, temps, backend, scaler, par) -> str:
    """A scene task that encodes nothing: its temporaries appear empty, as if ffmpeg had written them."""
    for t in temps:
        Path(t).parent.mkdir(parents=True, exist_ok=True)
        Path(t).touch()
    return "noop"


def run(n: int, task_cpus: float, address: str | None) -> dict:
    ray = ray_engine.import_ray()
    if address:
        ray_engine.connect(address)
    else:
        ray.init(num_cpus=os.cpu_count(), logging_level="ERROR", log_to_driver=False, include_dashboard=False)
    tiers = (Tier("54p", 96, 54, "h264", (), True), Tier("108p", 192, 108, "h264", (), True))
    backend = Backend("cpu", "h264", "libx264", "no-op benchmark")
    with tempfile.TemporaryDirectory() as tmp:
        engine = ray_engine.RayEngine(Path(tmp), backend, Parallelism(1, 1, 0, os.cpu_count() or 1), show_progress=False)
        engine._remote = ray.remote(_noop_task).options(num_cpus=task_cpus, max_retries=0)
        t0 = time.perf_counter()
        with engine:
            for i in range(n):
                engine.submit(SceneJob(Path(tmp) / "src.mp4", f"s{i:05d}", 0, 1, 24.0, tiers, "train"))
        seconds = time.perf_counter() - t0
        written = dict(engine.written)
    return {"scenes": n, "seconds": seconds, "scenes_per_min": 60 * n / seconds, "task_cpus": task_cpus,
            "driver_threads": engine.driver_threads, "clips_written": written, "cpus": os.cpu_count()}


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenes", type=int, default=600)
    ap.add_argument("--task-cpus", type=float, default=1.0, help="CPUs each no-op task declares")
    ap.add_argument("--ray-address", default=None, help="an existing cluster (default: start one in-process)")
    ap.add_argument("--out", default="data/bench/ray_driver.json")
    a = ap.parse_args(argv)
    r = run(a.scenes, a.task_cpus, a.ray_address)
    print(f"{'scenes':>7} {'seconds':>8} {'scenes/min':>11} {'task CPUs':>10} {'driver threads':>15} {'CPUs':>5}")
    print(f"{r['scenes']:>7} {r['seconds']:>8.1f} {r['scenes_per_min']:>11.0f} {r['task_cpus']:>10g} "
          f"{r['driver_threads']:>15} {r['cpus']:>5}")
    print(f"(no-op scene tasks: Ray scheduling, driver threads and renames only; clips renamed: {r['clips_written']})")
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"command": "python -m benchmarks.ray_driver " + " ".join(argv or []), **r}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
