"""Where a DALI loader pipeline's CPU time goes: the video reader alone against the whole pipeline.

    python -m benchmarks.dali_stages --data DATA_DIR --preset seed --clip-run 1,2,4

Both run the loader's own file list for one epoch (the training plan, windows in read order) on one
thread with the loader's batch size, so CPU milliseconds per delivered frame is their cost; the
difference is what the operators after the reader (crop, LR resize, augmentation, float
conversion) cost. The DataLoader-side work (DALIGenericIterator's copy into torch, reordering a
window) is not included: benchmarks.dataloader measures the whole loader.
"""
from __future__ import annotations

import dataclasses
import statistics
import time
from typing import Sequence

from nvidia.dali import pipeline_def

from benchmarks.dali_reader import cpu_seconds
from benchmarks.dataloader import PRESETS
from vsrvfi.pipelines import LoaderOptions, build_loader
from vsrvfi.pipelines.dali_video import READER, _read, build_pipeline
from vsrvfi.core.cli import ArgumentParser, entry_point, parse_list


def measure(pipe, frames_per_run: int, runs: int) -> float:
    """CPU ms per delivered frame of `runs` pipeline runs after two warm-up runs."""
    pipe.build()
    for _ in range(2):
        pipe.run()
    c = cpu_seconds()
    for _ in range(runs):
        pipe.run()
    return 1000 * (cpu_seconds() - c) / (runs * frames_per_run)


def stages(opts: LoaderOptions, frames: int) -> dict:
    """Reader-only and whole-pipeline CPU ms/frame over about `frames` delivered frames for one loader
    setting (one thread, one reader)."""
    ld = build_loader(opts)
    (hr_list, lr_list), = ld.reader_lists(1)
    batch = ld.window_samples()
    per_run = batch * opts.sequence_length
    runs = max(1, min(frames // per_run, len(ld) * opts.batch_size // batch - 3))

    @pipeline_def(batch_size=batch, num_threads=1, device_id=None, seed=0)
    def reader_only():
        video, _, _ = _read(ld.opts, hr_list, READER)
        return video

    reader = measure(reader_only(), per_run, runs)
    whole = measure(build_pipeline(ld.opts, hr_list, lr_list, 0, 1, batch_size=batch), per_run, runs)
    return {"reader_ms": reader, "pipeline_ms": whole, "operators_ms": whole - reader}


def main(argv: Sequence[str] | None = None) -> int:
    ap = ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, help="a prepared DATA_DIR with VP9 clips")
    ap.add_argument("--preset", choices=sorted(PRESETS), default="seed")
    ap.add_argument("--res", default=None, help="override the preset's resolution")
    ap.add_argument("--crop", type=int, default=None, help="override the preset's crop (square)")
    ap.add_argument("--task", choices=["sr", "vfi"], default=None)
    ap.add_argument("--targets", type=int, default=1)
    ap.add_argument("--clip-run", default="1", help="comma list of clip_run values")
    ap.add_argument("--no-augment", action="store_true")
    ap.add_argument("--frames", type=int, default=500, help="frames delivered per measurement")
    ap.add_argument("--repeats", type=int, default=2)
    a = ap.parse_args(argv)
    base = LoaderOptions(kind="dali", data_dir=a.data, split="train", training=True, device="cpu", workers=1,
                         readers=1, targets=a.targets, epoch_size=a.frames, **PRESETS[a.preset])
    for name in ("res", "crop", "task"):
        if getattr(a, name) is not None:
            base = dataclasses.replace(base, **{name: getattr(a, name)})
    if a.no_augment:
        from vsrvfi.pipelines.augment import AugmentOptions

        base = dataclasses.replace(base, augment=AugmentOptions.off())
    results: dict[int, list[dict]] = {int(r): [] for r in parse_list(a.clip_run)}
    t = time.perf_counter()
    for _ in range(a.repeats):  # interleaved, so background load hits every setting alike
        for run in results:
            results[run].append(stages(dataclasses.replace(base, clip_run=run), a.frames))
    print(f"{base.task} {base.res} crop {base.crop_hw} batch {base.batch_size} x {base.sequence_length} frames, "
          f"one thread, medians of {a.repeats} ({time.perf_counter() - t:.0f} s)")
    print(f"{'clip_run':>8} {'reader ms/frame':>16} {'pipeline ms/frame':>18} {'operators ms/frame':>19}")
    for run, rows in results.items():
        med = {k: statistics.median(r[k] for r in rows) for k in rows[0]}
        print(f"{run:>8} {med['reader_ms']:>16.1f} {med['pipeline_ms']:>18.1f} {med['operators_ms']:>19.1f}")
    return 0


cli = entry_point(main, interrupted="no results were written")

if __name__ == "__main__":
    raise SystemExit(cli())
