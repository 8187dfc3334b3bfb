"""Data loading benchmark: the DALI and PNG loaders on the same clips, side by side, in one run.

    python -m benchmarks.dataloader --data DATA_DIR --preset seed
    python -m benchmarks.dataloader --preset seed --gop 4            # builds a 720p VP9 set first

Everything is measured `--repeats` times, interleaved, and reported as medians (the machine may be
shared). For each loader: data time per iteration (the wait in next(); mean, median, p95), frames/s
delivered, CPU use (cores, this process and its workers), peak host memory (PSS of the process
tree: shared pages counted once), GPU memory when on the GPU, and the bytes on disk of what it reads (clips or PNGs). As the
ceiling it decodes the same clips with ffmpeg to null (decode only, and decode plus DALI's RGB
conversion; NVDEC too on a GPU) and reports each loader's share of it. It also reports the decode
amplification of random access: frames decoded per frame delivered when every sequence is decoded
from its preceding keyframe (the GOP's cost). Prints a table, writes JSON and a PNG plot.

The "seed" preset is the DALI video super-resolution example's setting: 720p clips, 540p random
crops (540x960), batch 3, VSRNet's 3-frame sequences, x4.
"""
from __future__ import annotations

import json
import os
import platform
import resource
import statistics
import subprocess
import time
from pathlib import Path
from typing import Sequence

import torch

from benchmarks.procfs import Sampler, cpu_seconds, pss_bytes, tree
from vsrvfi.pipelines import LoaderOptions, build_loader
from vsrvfi.pipelines.augment import AugmentOptions
from vsrvfi.pipelines.sampling import discover_clips
from vsrvfi.core.cli import ArgumentParser, entry_point, parse_list
from vsrvfi.core.atomic import dir_bytes
from vsrvfi.core.ffmpeg import DALI_RGB_ARGS, rgb_ffmpeg_binary
from vsrvfi.core.media import probe

PRESETS = {
    "seed": dict(res="720p", crop=(540, 960), batch_size=3, task="sr", neighbors=1, scale=4),
}


# --------------------------------------------------------------------------- process-tree monitor

class TreeMonitor(Sampler):
    """Samples the memory (PSS) of this process and its descendants, and the GPU memory in use."""

    def __init__(self, interval: float = 0.1):
        super().__init__(interval)
        self.peak_rss = 0
        self.peak_gpu = 0
        self.gpu_base = self._gpu_used()

    @staticmethod
    def _gpu_used() -> int:
        if not torch.cuda.is_available():
            return 0
        free, total = torch.cuda.mem_get_info()
        return total - free

    def cpu_seconds(self) -> float:
        return sum(cpu_seconds(p) for p in tree(os.getpid()))

    def sample(self) -> None:
        self.peak_rss = max(self.peak_rss, sum(pss_bytes(p) for p in tree(os.getpid())))
        if self.gpu_base or torch.cuda.is_available():
            self.peak_gpu = max(self.peak_gpu, self._gpu_used() - self.gpu_base)


# ----------------------------------------------------------------------------------- measures

def measure_loader(label: str, opts: LoaderOptions, iters: int, warmup: int, step_ms: float) -> dict:
    """Time `iters` batches after `warmup`; `step_ms` of simulated training between batches."""
    per_epoch = (iters + warmup) * opts.batch_size * (opts.num_shards or 1)
    opts = LoaderOptions(**{**opts.__dict__, "epoch_size": per_epoch, "last_batch": "drop"})
    with TreeMonitor() as mon:
        t0 = time.perf_counter()
        loader = build_loader(opts)
        it = iter(loader)
        for _ in range(warmup):
            next(it)
        setup = time.perf_counter() - t0
        frames_per_batch = opts.batch_size * opts.sequence_length
        waits = []
        cpu0, w0 = mon.cpu_seconds(), time.perf_counter()
        for _ in range(iters):
            t = time.perf_counter()
            batch = next(it)
            if batch[loader.keys[0]].is_cuda:
                torch.cuda.synchronize()
            waits.append(time.perf_counter() - t)
            if step_ms:
                time.sleep(step_ms / 1000)
        wall = time.perf_counter() - w0
        cpu = mon.cpu_seconds() - cpu0
        del batch, it, loader
    ms = sorted(w * 1000 for w in waits)
    return {
        "loader": label, "kind": opts.kind, "device": opts.device, "workers": opts.workers,
        "readers": opts.num_readers if opts.kind == "dali" else None,
        "gpu_reader": opts.gpu_reader if opts.kind == "dali" and opts.device == "gpu" else None,
        "clip_run": opts.clip_run if opts.kind == "dali" else None,
        "data_ms_mean": statistics.fmean(ms), "data_ms_median": statistics.median(ms),
        "data_ms_p95": ms[min(len(ms) - 1, int(round(0.95 * (len(ms) - 1))))],
        "frames_per_s": iters * frames_per_batch / wall, "cpu_cores": cpu / wall,
        "cpu_ms_per_frame": 1000 * cpu / (iters * frames_per_batch),
        "peak_rss_mb": mon.peak_rss / 2 ** 20, "peak_gpu_mb": mon.peak_gpu / 2 ** 20 if mon.peak_gpu else None,
        "setup_s": setup, "iters": iters,
    }


def raw_decode(clips: Sequence[Path], threads: int, rgb: bool = False, nvdec: bool = False) -> dict:
    """ffmpeg decoding every frame of `clips` to null, one clip after another: frames/s and CPU cores."""
    frames = sum(probe(c).num_frames for c in clips)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    for c in clips:
        cmd = [rgb_ffmpeg_binary(), "-hide_banner", "-nostdin", "-loglevel", "error", "-threads", str(threads)]
        if nvdec:  # frames stay in GPU memory: the decoder's own rate
            cmd += ["-hwaccel", "cuda", "-hwaccel_output_format", "cuda"]
        cmd += ["-i", str(c), "-map", "0:v:0"]
        if rgb:
            cmd += ["-filter_threads", str(threads), *DALI_RGB_ARGS]
        subprocess.run(cmd + ["-f", "null", "-"], check=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    what = "NVDEC" if nvdec else "ffmpeg decode" + (" + RGB" if rgb else "")
    return {"loader": f"{what} ({threads} thr)", "kind": "ceiling", "frames_per_s": frames / wall,
            "cpu_cores": cpu / wall, "cpu_ms_per_frame": 1000 * cpu / frames, "frames": frames}


def decode_amplification(clips: Sequence[Path], opts: LoaderOptions) -> dict:
    """Frames decoded per frame delivered when each sequence is decoded from its preceding keyframe."""
    infos = [probe(c) for c in clips]
    span = (opts.sequence_length - 1) * opts.stride + 1
    decoded = delivered = 0
    for info in infos:
        keys = list(info.keyframes)
        for s in range(0, info.num_frames - opts.sequence_length * opts.stride + 1, opts.step):
            k = max(kf for kf in keys if kf <= s)
            decoded += s - k + span
            delivered += opts.sequence_length
    return {"gop": max(i.gop for i in infos), "amplification": decoded / max(delivered, 1)}


# ------------------------------------------------------------------------------------ reporting

def add_shares(rows: list[dict]) -> None:
    """Each loader's frames/s as a percentage of the ceilings measured in the same run."""
    ceilings = {r["loader"].split(" (")[0]: r["frames_per_s"] for r in rows if r["kind"] == "ceiling"}
    for r in rows:
        if r["kind"] != "ceiling":
            if "ffmpeg decode" in ceilings:
                r["share_decode"] = 100 * r["frames_per_s"] / ceilings["ffmpeg decode"]
            if "ffmpeg decode + RGB" in ceilings:
                r["share_decode_rgb"] = 100 * r["frames_per_s"] / ceilings["ffmpeg decode + RGB"]
            if "NVDEC" in ceilings:
                r["share_nvdec"] = 100 * r["frames_per_s"] / ceilings["NVDEC"]


def median_rows(runs: list[list[dict]]) -> list[dict]:
    """One row per measurement: the median of each number over the repeats, with the frames/s range."""
    out = []
    for rows in zip(*runs):
        row = dict(rows[0])
        for k, v in row.items():
            if isinstance(v, float):
                row[k] = statistics.median(r[k] for r in rows)
        fps = [r["frames_per_s"] for r in rows]
        row["frames_per_s_runs"] = fps
        out.append(row)
    return out


COLUMNS = [("loader", "loader", "{}"), ("data_ms_mean", "data ms mean", "{:.1f}"),
           ("data_ms_median", "median", "{:.1f}"), ("data_ms_p95", "p95", "{:.1f}"),
           ("frames_per_s", "frames/s", "{:.1f}"), ("share_decode", "% decode", "{:.0f}"),
           ("share_decode_rgb", "% dec+RGB", "{:.0f}"),
           ("share_nvdec", "% NVDEC", "{:.0f}"), ("cpu_cores", "CPU cores", "{:.2f}"),
           ("cpu_ms_per_frame", "CPU ms/frame", "{:.1f}"),
           ("peak_rss_mb", "peak host MB", "{:.0f}"), ("peak_gpu_mb", "GPU MB", "{:.0f}"),
           ("disk_mb", "disk MB", "{:.1f}")]


def format_table(rows: list[dict]) -> str:
    cols = [c for c in COLUMNS if any(r.get(c[0]) is not None for r in rows)]  # drop empty columns
    cells = [[h for _, h, _ in cols]]
    for r in rows:
        cells.append([fmt.format(r[k]) if r.get(k) is not None else "-" for k, _, fmt in cols])
    widths = [max(len(row[i]) for row in cells) for i in range(len(cols))]
    lines = ["  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths))) for row in cells]
    lines.insert(1, "-" * len(lines[0]))
    return "\n".join(lines)


def plot(rows: list[dict], title: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4))
    names = [r["loader"] for r in rows]
    colors = ["#888888" if r["kind"] == "ceiling" else ("#76b900" if r["kind"] == "dali" else "#1f77b4") for r in rows]
    a1.barh(names, [r["frames_per_s"] for r in rows], color=colors)
    a1.set_xlabel("frames/s delivered (decoded, for the ceilings)")
    a1.invert_yaxis()
    decode = next((r["frames_per_s"] for r in rows if r["kind"] == "ceiling"), None)
    if decode:  # the CPU target: a loader at half the frames/s of raw decoding
        a1.axvline(decode / 2, color="#cc3333", linestyle="--", linewidth=1)
        a1.text(decode / 2, len(rows) - 0.6, " 50 % of decode", color="#cc3333", fontsize=8)
    loaders = [r for r in rows if r["kind"] != "ceiling"]
    a2.barh([r["loader"] for r in loaders], [r["data_ms_mean"] for r in loaders],
            xerr=[[0] * len(loaders), [r["data_ms_p95"] - r["data_ms_mean"] for r in loaders]],
            color=[c for c, r in zip(colors, rows) if r["kind"] != "ceiling"])
    a2.set_xlabel("data time per iteration, ms (mean, bar to p95)")
    a2.invert_yaxis()
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ------------------------------------------------------------------------------------------ main

def parse_crop(text: str | None):
    if text is None or text.lower() in ("none", "full"):
        return None
    parts = [int(v) for v in text.lower().replace("x", ",").split(",")]
    return parts[0] if len(parts) == 1 else (parts[0], parts[1])


def main(argv: Sequence[str] | None = None) -> int:
    ap = ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", help="a prepared DATA_DIR; default: build a 720p VP9 set in --workdir")
    ap.add_argument("--workdir", default="data/bench", help="where a built data set goes (one per GOP)")
    ap.add_argument("--gop", type=int, default=4, help="keyframe interval of a built data set")
    ap.add_argument("--preset", choices=sorted(PRESETS), help="seed: 720p, 540x960 crops, batch 3, SR 3 frames")
    ap.add_argument("--res", default=None, help="resolution to read (default 720p)")
    ap.add_argument("--split", default="train")
    ap.add_argument("--task", choices=["sr", "vfi"], default=None)
    ap.add_argument("--crop", default=None, help="HR crop HxW (e.g. 540x960), one int for a square, or none")
    ap.add_argument("--batch-size", type=int, default=None)
    ap.add_argument("--neighbors", type=int, default=None, help="SR: N (2N+1 frames)")
    ap.add_argument("--targets", type=int, default=1, help="VFI: frames between the inputs")
    ap.add_argument("--scale", type=int, default=None)
    ap.add_argument("--step", type=int, default=1, help="frames between sequence starts")
    ap.add_argument("--no-shuffle", action="store_true", help="read sequences in clip order")
    ap.add_argument("--no-augment", action="store_true")
    ap.add_argument("--dtype", choices=["float32", "float16"], default="float32")
    ap.add_argument("--device", choices=["cpu", "gpu"], default="gpu" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                    help="PNG DataLoader workers = DALI CPU threads (default: all cores)")
    ap.add_argument("--dali-readers", default=None,
                    help="comma list of DALI reader pipeline counts to compare (default: the loader's own)")
    ap.add_argument("--clip-run", default="1",
                    help="comma list of clip_run values (adjacent sequences read in a row) to compare for DALI; "
                         "PNG and the table's setting use the first")
    ap.add_argument("--gpu-readers", default="legacy",
                    help="comma list of DALI GPU readers to compare: legacy (fn.readers.video), experimental")
    ap.add_argument("--prefetch", type=int, default=2)
    ap.add_argument("--kinds", default="dali,png")
    ap.add_argument("--iters", type=int, default=30)
    ap.add_argument("--repeats", type=int, default=3, help="runs of everything, reported as medians")
    ap.add_argument("--warmup", type=int, default=4)
    ap.add_argument("--step-ms", type=float, default=0.0, help="simulated training time per iteration")
    ap.add_argument("--no-ceiling", action="store_true", help="skip the raw-decoding ceiling")
    ap.add_argument("--out", default="data/bench/dataloader", help="output path stem (.json, .png)")
    a = ap.parse_args(argv)

    preset = dict(PRESETS[a.preset]) if a.preset else {}
    res = a.res or preset.get("res", "720p")
    kinds = parse_list(a.kinds)
    if a.data:
        data_dir = Path(a.data)
    else:
        from benchmarks.bench_data import make_bench_data

        print(f"building a {res} VP9 data set (GOP {a.gop}) in {a.workdir}/gop{a.gop} ...", flush=True)
        data_dir = make_bench_data(Path(a.workdir) / f"gop{a.gop}", res=res, gop=a.gop, split=a.split,
                                   pngs="png" in kinds)
    base = LoaderOptions(
        data_dir=str(data_dir), res=res, split=a.split, task=a.task or preset.get("task", "sr"),
        batch_size=a.batch_size or preset.get("batch_size", 3),
        crop=parse_crop(a.crop) if a.crop is not None else preset.get("crop"),
        neighbors=a.neighbors if a.neighbors is not None else preset.get("neighbors", 1),
        scale=a.scale or preset.get("scale", 4), targets=a.targets, step=a.step, training=True,
        shuffle=not a.no_shuffle, augment=AugmentOptions.off() if a.no_augment else AugmentOptions(),
        device=a.device, workers=a.workers, prefetch=a.prefetch, dtype=a.dtype)
    clip_runs = [int(v) for v in parse_list(a.clip_run)]
    gpu_reader_list = parse_list(a.gpu_readers)
    base = LoaderOptions(**{**base.__dict__, "clip_run": clip_runs[0]})
    clips = [c.path for c in discover_clips(data_dir, res, a.split, "dali", base.sequence_length, base.stride)] \
        if "dali" in kinds or not a.no_ceiling else []

    runs: list[list[dict]] = []
    for rep in range(a.repeats):  # repeats interleave everything, so background load hits all alike
        rows: list[dict] = []
        if clips and not a.no_ceiling:
            rows.append(raw_decode(clips, a.workers))
            rows.append(raw_decode(clips, a.workers, rgb=True))
            if a.device == "gpu":
                rows.append(raw_decode(clips, 1, nvdec=True))
        for kind in kinds:
            readers = [None] if kind != "dali" or not a.dali_readers else [int(r) for r in parse_list(a.dali_readers)]
            runs_here = clip_runs if kind == "dali" else clip_runs[:1]
            gpu_readers = gpu_reader_list if kind == "dali" and a.device == "gpu" else [base.gpu_reader]
            for run, r, g in ((run, r, g) for run in runs_here for r in readers for g in gpu_readers):
                opts = LoaderOptions(**{**base.__dict__, "kind": kind, "readers": r, "clip_run": run, "gpu_reader": g})
                tag = f", run {run}" if len(clip_runs) > 1 or run > 1 else ""
                tag += f", {g}" if len(gpu_readers) > 1 else ""
                label = (f"DALI {a.device.upper()} ({opts.num_readers} rdr, {a.workers} thr{tag})" if kind == "dali"
                         else f"PNG ({a.workers} workers{tag})")
                print(f"[{rep + 1}/{a.repeats}] measuring {label} ...", flush=True)
                row = measure_loader(label, opts, a.iters, a.warmup, a.step_ms)
                sub = "scenes" if kind == "dali" else "frames"
                row["disk_mb"] = dir_bytes(Path(data_dir) / res / sub / a.split) / 1e6
                rows.append(row)
        add_shares(rows)
        runs.append(rows)
    rows = median_rows(runs)
    amp = decode_amplification(clips, base) if clips else None
    setting = (f"{base.task} {res} crop {base.crop_hw} batch {base.batch_size} x {base.sequence_length} frames, "
               f"step {base.step}, {'shuffled' if base.is_shuffled else 'in order'}, clip_run {a.clip_run}, {a.dtype}, "
               f"{a.device}, {a.workers} workers")
    print(f"\n{setting}")
    if amp:
        print(f"GOP {amp['gop']}: random access decodes {amp['amplification']:.2f} frames per frame delivered")
    print(format_table(rows))
    if a.repeats > 1:
        print("frames/s per run: " + "; ".join(
            f"{r['loader']}: {', '.join(f'{v:.0f}' for v in r['frames_per_s_runs'])}" for r in rows))

    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    result = {
        "setting": setting, "options": {k: (list(v) if isinstance(v, tuple) else v)
                                        for k, v in base.__dict__.items() if k != "augment"},
        "augment": base.augment.__dict__, "data_dir": str(data_dir), "decode_amplification": amp, "rows": rows,
        "machine": {"cpus": os.cpu_count(), "load_avg_after": os.getloadavg(), "platform": platform.platform(),
                    "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
                    "torch": torch.__version__, "dali": __import__("nvidia.dali").dali.__version__},
    }
    out.with_suffix(".json").write_text(json.dumps(result, indent=2))
    plot(rows, setting, out.with_suffix(".png"))
    print(f"\nwrote {out.with_suffix('.json')} and {out.with_suffix('.png')}")
    return 0


cli = entry_point(main, interrupted="no results were written; the benchmark clips made so far are kept for a rerun")

if __name__ == "__main__":
    raise SystemExit(cli())
