"""How many scene processes and encoder threads a run uses, sized to the machine's cores and memory."""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Sequence

from vsrvfi.tools.encoding.command import Tier

def machine_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def _available_memory() -> int | None:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def job_memory(width: int, height: int, tiers: Sequence[Tier]) -> int:
    """Rough peak memory of one scene process: decoder frame pool plus each encoder's lookahead."""
    frame = lambda w, h: w * h * 3 // 2  # noqa: E731 - yuv420p bytes
    return 24 * frame(width, height) + sum(48 * frame(t.width, t.height) for t in tiers) + (64 << 20)


@dataclass(frozen=True)
class Parallelism:
    jobs: int              # scene processes at once
    threads: int           # encoder threads per tier (0: the encoder's own choice for the machine)
    decoder_threads: int   # decoder threads per scene process (0: ffmpeg's choice)
    cpus: int

    def describe(self) -> str:
        enc = f"{self.threads} encoder threads per tier" if self.threads else "encoder threads auto"
        dec = f"{self.decoder_threads} decoder threads" if self.decoder_threads else "decoder threads auto"
        return f"{self.jobs} scene process{'es' if self.jobs > 1 else ''} at once, {enc}, {dec}, {self.cpus} cores"


def plan_parallelism(n_tiers: int, jobs: int = 0, threads: int = 0, cpus: int | None = None,
                     memory_per_job: int | None = None, hw: bool = False) -> Parallelism:
    """Scene processes and threads sized to the machine: sources x scenes x encoder threads.

    One scene process already runs its decoder, scalers and tier encoders concurrently (ffmpeg
    threads each), so it keeps about 2 + tiers cores busy; more cores get more scene processes, as
    many as the memory allows. With one process at a time its encoders and decoder pick their own
    thread counts (as a single ffmpeg command would); with several, each process's cores are shared
    out between its tier encoders, 1.5 threads a core (x264's own ratio) so none waits on another.
    With NVENC (`hw`) the GPU does the work: at most 8 encode sessions at once (consumer GPUs cap
    them), so jobs x tiers <= 8.
    """
    cpus = cpus or machine_cpus()
    n_tiers = max(n_tiers, 1)
    if not jobs:
        jobs = max(1, cpus // (2 + n_tiers))
        if hw:
            jobs = max(1, min(jobs, 8 // n_tiers))
        avail = _available_memory()
        if memory_per_job and avail:
            jobs = max(1, min(jobs, int(avail * 0.6) // memory_per_job))
    if jobs == 1:
        return Parallelism(jobs=1, threads=threads, decoder_threads=0, cpus=cpus)
    per_job = max(1, cpus // jobs)
    return Parallelism(jobs=jobs, threads=threads or max(2, math.ceil(1.5 * per_job / n_tiers)),
                       decoder_threads=min(per_job, 16), cpus=cpus)

