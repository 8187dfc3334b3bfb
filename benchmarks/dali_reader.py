"""Where a DALI CPU video reader spends its time: one bare reader (decode + RGB), three read orders.

    python -m benchmarks.dali_reader --data DATA_DIR --res 720p --length 3

The reader decodes on a single thread, so CPU milliseconds per delivered frame is its cost, and it
separates three things the loader benchmark lumps together:
  in-order   consecutive sequences back to back: no seeking, every decoded frame is delivered;
  aligned    random order, every sequence starting on a keyframe: a seek per sequence, no waste;
  random     random order and start (what training does): a seek plus decoding from the preceding
             keyframe (or forward, for a jump of up to 10 frames) per sequence.
"""
from __future__ import annotations

import os
import random
import statistics
import tempfile
from pathlib import Path
from typing import Sequence

from nvidia.dali import fn, pipeline_def

from vsrvfi.pipelines.sampling import sequence_starts
from vsrvfi.core import layout
from vsrvfi.core.cli import ArgumentParser, entry_point, parse_list
from vsrvfi.core.errors import UsageError
from vsrvfi.core.media import probe

ORDERS = ("in-order", "aligned", "random")


def plan(clips: list[tuple[Path, int, int]], length: int, order: str, limit: int, seed: int = 0):
    """(clip path, label, start) lines for `order`; clips are (path, frames, gop)."""
    if order == "in-order":
        return [(p, i, s) for i, (p, n, _) in enumerate(clips) for s in sequence_starts(n, length, 1, length)][:limit]
    if order == "aligned":
        lines = [(p, i, s) for i, (p, n, g) in enumerate(clips) for s in sequence_starts(n, length, 1, g)]
    else:
        lines = [(p, i, s) for i, (p, n, _) in enumerate(clips) for s in sequence_starts(n, length, 1, 1)]
    random.Random(seed).shuffle(lines)
    return lines[:limit]


def cpu_seconds() -> float:
    t = os.times()
    return t.user + t.system


def measure(lines, length: int, batch: int, workdir: Path) -> tuple[float, float]:
    """(frames/s, CPU ms per delivered frame) of a one-thread CPU reader over `lines`."""
    file_list = workdir / "list.txt"
    file_list.write_text("".join(f"{p} {i} {s} {s + length}\n" for p, i, s in lines))

    @pipeline_def(batch_size=batch, num_threads=1, device_id=None, seed=0)
    def pipe():
        video, _, _ = fn.experimental.readers.video(
            device="cpu", file_list=str(file_list), file_list_format="frames", file_list_include_end=False,
            sequence_length=length, step=1 << 30, enable_frame_num=True, name="reader")
        return video

    p = pipe()
    p.build()
    for _ in range(2):
        p.run()
    n = len(lines) // batch - 3
    import time

    t, c = time.perf_counter(), cpu_seconds()
    for _ in range(n):
        p.run()
    wall, cpu = time.perf_counter() - t, cpu_seconds() - c
    frames = n * batch * length
    return frames / wall, 1000 * cpu / frames


def main(argv: Sequence[str] | None = None) -> int:
    ap = ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, nargs="+", help="one or more DATA_DIRs (e.g. one per GOP)")
    ap.add_argument("--res", default="720p")
    ap.add_argument("--split", default="train")
    ap.add_argument("--length", type=int, default=3, help="frames per sequence")
    ap.add_argument("--batch-size", type=int, default=3)
    ap.add_argument("--sequences", type=int, default=120, help="sequences read per measurement")
    ap.add_argument("--orders", default=",".join(ORDERS))
    ap.add_argument("--repeats", type=int, default=2)
    a = ap.parse_args(argv)
    orders = parse_list(a.orders)
    print(f"{'data':<28} {'GOP':>4} {'order':<9} {'frames/s':>9} {'CPU ms/frame':>13}")
    for data in a.data:
        paths = layout.list_clips(data, a.res, a.split)
        if not paths:
            raise UsageError(f"{data}: no {a.res} {a.split} clips")
        infos = [probe(p) for p in paths]
        clips = [(p, i.num_frames, i.gop) for p, i in zip(paths, infos)]
        gop = max(i.gop for i in infos)
        results = {o: [] for o in orders}
        with tempfile.TemporaryDirectory() as tmp:
            for _ in range(a.repeats):  # interleaved, so background load hits every order alike
                for o in orders:
                    results[o].append(measure(plan(clips, a.length, o, a.sequences), a.length, a.batch_size, Path(tmp)))
        for o in orders:
            fps = statistics.median(r[0] for r in results[o])
            ms = statistics.median(r[1] for r in results[o])
            print(f"{str(data)[-28:]:<28} {gop:>4} {o:<9} {fps:>9.1f} {ms:>13.1f}")
    return 0


cli = entry_point(main, interrupted="no results were written")

if __name__ == "__main__":
    raise SystemExit(cli())
