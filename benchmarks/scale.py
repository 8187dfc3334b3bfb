"""The standard training sets at their real size: packed import speed and loader start-up against the
number of sequences.

Generated Vimeo-like sets (septuplets at 448x256, each a pan over a photograph or a fractal
landscape, saved as PNG the way Vimeo-90K names them, with sep_trainlist.txt/sep_testlist.txt) are
imported with `vsr-prepare --from-frames --pack 256`, and a REDS-like set (long clips: indexed, one
file each). Measured:

- import: sequences/s and frames/s of the packed import (wall time of the whole command: listing,
  checks, encoding), against one ffmpeg process encoding the same frames with the same encoder
  settings (the bound: no start-up per shard, no checks), scaled to the same number of frames;
- loaders at 1k, 10k and 64,612 training sequences: construction seconds, seconds to the first
  batch, steady frames/s (frames delivered per second over the next batches; VFI triplets, full
  frames, batch 8), the most open files of the loading process and its peak RSS and RSS growth after
  the imports, each loader in a fresh process. Sizes larger than the largest import are that import's
  shards hard-linked under new names with an index of that many sequences (`replicate()`): the same
  number of files, list lines and index entries as a real set, the same frames repeated (a 64,612-
  sequence import at 448x256 is 452k PNGs, about 70 GB here, and hours of this shared machine).

    python -m benchmarks.scale                      # import 1k at 448x256; loaders at 1k, 10k, 64,612; REDS-like
    python -m benchmarks.scale --sizes 1000,10000 --scale 1000,10000,64612 --out docs/benchmarks/scale

Prints two tables; writes JSON and a plot. Numbers from a shared machine are noisy: compare ratios
within one run.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from benchmarks.results import save_json, save_results

FULL = 64612  # Vimeo-90K's septuplet training list
FRAMES = 7


# ------------------------------------------------------------------------------------- the sets

def _base(index: int, w: int, h: int) -> np.ndarray:
    """A picture 3x the frame size: the photograph matplotlib ships, or a fractal landscape."""
    import cv2

    from benchmarks.fixtures.framefactory import _photo
    from vsrvfi.tools.demo_video import fractal_terrain

    big_w, big_h = 3 * w, 3 * h
    if index % 2 == 0:
        photo = np.asarray(_photo())
        return cv2.resize(photo, (big_w, big_h), interpolation=cv2.INTER_AREA)
    return fractal_terrain(big_w, big_h, seed=index)


def _write_range(args) -> int:
    """Write sequences [a, b) of a Vimeo-like set (run in a worker process)."""
    import cv2

    root, a, b, w, h = args
    bases = [_base(k, w, h)[:, :, ::-1].copy() for k in range(4)]  # BGR for cv2
    rng = np.random.default_rng(a)
    for i in range(a, b):
        folder = Path(root) / "sequences" / f"{i // 1000 + 1:05d}" / f"{i % 1000 + 1:04d}"
        folder.mkdir(parents=True, exist_ok=True)
        base = bases[i % 4]
        x0, y0 = int(rng.integers(0, w)), int(rng.integers(0, h))
        dx, dy = int(rng.integers(-3, 4)), int(rng.integers(-2, 3))
        for k in range(FRAMES):
            x = min(max(x0 + dx * k, 0), base.shape[1] - w)
            y = min(max(y0 + dy * k, 0), base.shape[0] - h)
            cv2.imwrite(str(folder / f"im{k + 1}.png"), base[y:y + h, x:x + w])
    return b - a


def make_vimeo_like(root: Path, n: int, size: tuple[int, int], test_every: int = 100, jobs: int = 2) -> Path:
    """`n` training septuplets (and n / test_every test ones) at `size`, named as Vimeo-90K names them."""
    total = n + n // test_every
    if (root / "sep_trainlist.txt").exists():
        return root
    w, h = size
    step = 2000 if jobs <= 2 else max(50, -(-total // jobs))  # the ranges' seeds: 2000 as on the 2-core runs
    with ProcessPoolExecutor(jobs) as pool:
        list(pool.map(_write_range, [(str(root), a, min(a + step, total), w, h) for a in range(0, total, step)]))
    names = [f"{i // 1000 + 1:05d}/{i % 1000 + 1:04d}" for i in range(total)]
    test = set(range(0, total, test_every + 1))
    (root / "sep_testlist.txt").write_text("".join(nm + "\n" for i, nm in enumerate(names) if i in test))
    (root / "sep_trainlist.txt").write_text("".join(nm + "\n" for i, nm in enumerate(names) if i not in test))
    return root


def replicate(src: Path, dst: Path, n: int) -> Path:
    """A data set of `n` training sequences made of `src`'s packed shards, hard-linked under new names and
    indexed again (the val split is src's): the loaders' start-up, lists, open files and memory at `n`
    sequences without encoding n sequences (each sequence's frames repeat src's, and the PNG loader
    reads src's frame folders in place)."""
    from vsrvfi.core import layout
    from vsrvfi.core.seqindex import SequenceIndex, load_index, save_index

    idx = load_index(src)
    out = SequenceIndex(tiers=idx.tiers, sources=idx.sources)
    (res,) = idx.tiers
    shutil.rmtree(dst, ignore_errors=True)
    train = [f for f in range(idx.num_files) if idx.files["split"][f] == "train"]
    members = {f: [i for i, fi in enumerate(idx.sequences["file"]) if fi == f] for f in range(idx.num_files)}
    seq = idx.sequences
    k = 0
    for f in [f for f in range(idx.num_files) if idx.files["split"][f] == "val"]:
        nf = out.add_file(idx.files["name"][f], "val")
        for i in members[f]:
            out.add_sequence(nf, seq["name"][i], seq["frames"][i], seq["source"][i], seq["folder"][i], seq["pattern"][i],
                             seq["start_number"][i])
    count = 0
    while count < n:
        f = train[k % len(train)]
        name = f"{idx.files['name'][f]}-r{k:05d}"
        nf = out.add_file(name, "train")
        for i in members[f][:n - count]:  # the last shard's file holds more than it indexes: harmless
            out.add_sequence(nf, f"{seq['name'][i]}-r{k:05d}", seq["frames"][i], seq["source"][i], seq["folder"][i],
                             seq["pattern"][i], seq["start_number"][i])
            count += 1
        target = layout.clip_path(dst, res, "train", name)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.link(layout.clip_path(src, res, "train", idx.files["name"][f]), target)
        k += 1
    for f in range(idx.num_files):
        if idx.files["split"][f] == "val":
            target = layout.clip_path(dst, res, "val", idx.files["name"][f])
            target.parent.mkdir(parents=True, exist_ok=True)
            os.link(layout.clip_path(src, res, "val", idx.files["name"][f]), target)
    save_index(dst, out)
    return dst


def dir_bytes(path: Path) -> int:
    return sum(e.stat().st_size for e in os.scandir(path) if e.is_file()) + sum(
        dir_bytes(Path(e.path)) for e in os.scandir(path) if e.is_dir(follow_symlinks=False))


# ----------------------------------------------------------------------------------- the import

def run_import(root: Path, data: Path, codec: str, preset: str, pack: int, jobs: int = 0) -> dict:
    cmd = [sys.executable, "-m", "vsrvfi.tools.prepare_data", str(root), str(data), "--from-frames", "--codec", codec,
           "--preset", preset, "--frame-resolutions", ""] + (["--pack", str(pack)] if pack else []) + (
           ["--jobs", str(jobs)] if jobs else [])
    t0 = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if out.returncode:
        raise SystemExit(f"error: import of {root} failed: {out.stderr.strip().splitlines()[-1:]}")
    summary = json.loads((data / "summary.json").read_text())
    return {"wall_s": wall, "summary": summary}


def one_process_bound(root: Path, tmp: Path, codec: str, preset: str, size: tuple[int, int], limit: int) -> dict:
    """One ffmpeg encoding the first `limit` training sequences' frames in one process, same encoder
    settings (GOP 7): the import's bound on this machine (no start-up per shard, no checks)."""
    from vsrvfi.core.ffmpeg import ffmpeg_binary
    from vsrvfi.tools.encoding.codecs import TranscodeOptions, codec_args, encoder_flags

    links = tmp / "bound"
    shutil.rmtree(links, ignore_errors=True)
    links.mkdir(parents=True)
    names = (root / "sep_trainlist.txt").read_text().split()[:limit]
    n = 0
    for nm in names:
        for k in range(1, FRAMES + 1):
            os.symlink(root / "sequences" / nm / f"im{k}.png", links / f"{n:07d}.png")
            n += 1
    args = encoder_flags(codec_args(TranscodeOptions(codec=codec, preset=preset, gop=FRAMES)))
    out = tmp / "bound.mp4"
    cmd = [ffmpeg_binary(), "-v", "error", "-y", "-framerate", "24", "-start_number", "0", "-f", "image2", "-i",
           str(links / "%07d.png"), "-pix_fmt", "yuv420p", *args, "-an", str(out)]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True)
    wall = time.perf_counter() - t0
    shutil.rmtree(links, ignore_errors=True)
    out.unlink()
    return {"sequences": len(names), "frames": n, "wall_s": wall}


# ----------------------------------------------------------------------------------- the loader

def measure_loader(kind: str, data: str, res: str, batches: int, batch_size: int, device: str = "cpu",
                   gpu_reader: str = "legacy", workers: int = 2) -> dict:
    """In this process: construction, first batch (construction included), steady frames/s, open files,
    peak RSS of one loader (`device` gpu: DALI's `gpu_reader`, NVDEC; PNG batches moved to the GPU)."""
    import torch  # noqa: F401 - imported before the baseline, as a trainer has it

    from vsrvfi.pipelines import build_loader

    if kind == "dali":
        import nvidia.dali  # noqa: F401
    if device == "gpu":
        torch.cuda.init()  # the CUDA context is the trainer's, not the loader's start-up
    base_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    fds = [len(os.listdir("/proc/self/fd"))]
    t0 = time.perf_counter()
    extra = {"gpu_reader": gpu_reader} if kind == "dali" and device == "gpu" else {}
    ld = build_loader(kind=kind, task="vfi", data_dir=data, res=res, split="train", batch_size=batch_size,
                      device=device, crop=None, targets=1, training=True, workers=workers, **extra)
    t_build = time.perf_counter() - t0
    it = iter(ld)
    next(it)
    t_first = time.perf_counter() - t0
    fds.append(len(os.listdir("/proc/self/fd")))
    frames = 0
    t1 = time.perf_counter()
    for _ in range(min(batches, len(ld) - 1)):  # a small set may have fewer batches in an epoch
        b = next(it)
        frames += b["target"].shape[0] * 3  # each sample: 2 input frames and 1 target
        fds.append(len(os.listdir("/proc/self/fd")))
    steady = frames / (time.perf_counter() - t1)
    return {"kind": kind, "device": device, **extra, "sequences": len(ld.clips), "samples": len(ld.sequences),
            "construct_s": t_build,
            "first_batch_s": t_first, "steady_fps": steady, "open_files": max(fds),
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "rss_growth_mb": (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - base_rss) / 2 ** 20}


def loader_in_process(kind: str, data: Path, res: str, batches: int, batch_size: int, device: str = "cpu",
                      gpu_reader: str = "legacy", workers: int = 2) -> dict:
    cmd = [sys.executable, "-m", "benchmarks.scale", "--measure", kind, str(data), res, str(batches), str(batch_size),
           "--device", device, "--gpu-reader", gpu_reader, "--workers", str(workers)]
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode:
        return {"kind": kind, "error": (out.stderr.strip().splitlines() or ["?"])[-1]}
    return json.loads(out.stdout.strip().splitlines()[-1])


def loader_rows(kinds: str, device: str, gpu_readers: str) -> list[tuple[str, str, str]]:
    """(kind, DALI GPU reader, row name) of each loader measured: on the GPU one DALI row per reader."""
    out = []
    for kind in [k for k in kinds.split(",") if k]:
        if kind == "dali" and device == "gpu":
            out += [(kind, r, f"dali-{r}") for r in gpu_readers.split(",") if r]
        else:
            out.append((kind, "legacy", kind))
    return out


# --------------------------------------------------------------------------------------- report

def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    names = sorted({r["loader"] for r in rows if r.get("what") == "loader"})
    for kind, marker in zip(names, "os^v<>"):
        pts = sorted(((r["sequences"], r) for r in rows if r.get("loader") == kind and "error" not in r
                      and r["set"].startswith("vimeo")), key=lambda p: p[0])
        if not pts:
            continue
        x = [p[0] for p in pts]
        axes[0].plot(x, [p[1]["construct_s"] + 0 for p in pts], marker=marker, label=f"{kind}: construction")
        axes[0].plot(x, [p[1]["first_batch_s"] for p in pts], marker=marker, ls="--", label=f"{kind}: to first batch")
        axes[1].plot(x, [p[1]["steady_fps"] for p in pts], marker=marker, label=kind)
        axes[2].plot(x, [p[1]["rss_growth_mb"] for p in pts], marker=marker, label=f"{kind}: RSS growth (MB)")
        axes[2].plot(x, [p[1]["open_files"] for p in pts], marker=marker, ls="--", label=f"{kind}: open files")
    for ax, title in zip(axes, ("seconds (construction, to first batch)", "steady frames/s (VFI triplets, batch 8)",
                                "RSS growth MB, open files")):
        ax.set_xscale("log")
        ax.set_xlabel("sequences in the training split")
        ax.set_title(title, fontsize=9)
        ax.legend(fontsize=7)
    on_gpu = any(r.get("device") == "gpu" for r in rows)
    fig.suptitle("Loader start-up against the number of sequences " +
                 ("(GPU: DALI's NVDEC readers over packed H.264 shards, PNG in place)" if on_gpu else
                  "(2-core shared CPU, DALI CPU reader over packed VP9 shards, PNG in place)"), fontsize=9)
    fig.tight_layout()
    fig.savefig(path, format="png", dpi=90)
    plt.close(fig)


def table(rows: list[dict]) -> None:
    imports = [r for r in rows if r.get("what") == "import"]
    if imports:
        print(f"\n{'set':>16} {'frames':>9} {'import s':>9} {'seq/s':>7} {'frames/s':>9} {'bound s':>8} "
              f"{'x bound':>8} {'PNG MB':>8} {'clips MB':>9} {'PNG/clips':>9}")
        for r in imports:
            bound = f"{r['bound_s']:.1f}" if r.get("bound_s") else "-"
            ratio = f"{r['import_s'] / r['bound_scaled_s']:.2f}" if r.get("bound_s") else "-"
            print(f"{r['set']:>16} {r['frames']:>9} {r['import_s']:>9.1f} {r['seq_per_s']:>7.1f} {r['frames_per_s']:>9.0f} "
                  f"{bound:>8} {ratio:>8} {r['png_mb']:>8.0f} {r['clip_mb']:>9.1f} {r['png_mb'] / r['clip_mb']:>8.1f}x")
    loads = [r for r in rows if r.get("what") == "loader"]
    if loads:
        print(f"\n{'set':>20} {'loader':>17} {'sequences':>9} {'samples':>8} {'build s':>8} {'1st batch s':>11} "
              f"{'frames/s':>9} {'open files':>10} {'peak RSS MB':>11} {'RSS growth MB':>13}")
        for r in loads:
            if "error" in r:
                print(f"{r['set']:>20} {r['loader']:>17} error: {r['error']}")
                continue
            print(f"{r['set']:>20} {r['loader']:>17} {r['sequences']:>9} {r['samples']:>8} {r['construct_s']:>8.2f} "
                  f"{r['first_batch_s']:>11.2f} {r['steady_fps']:>9.0f} {r['open_files']:>10} {r['peak_rss_mb']:>11.0f} "
                  f"{r['rss_growth_mb']:>13.0f}")


def _import_row(name: str, s: dict, wall: float, frame_size: str) -> dict:
    res = next(iter(s["resolutions"]))
    return {"what": "import", "set": name, "sequences": s["scenes_kept"], "frames": s["frames_kept"],
            "import_s": wall, "encode_s": s["stage_seconds"]["encode"], "seq_per_s": s["scenes_kept"] / wall,
            "frames_per_s": s["frames_kept"] / wall, "png_mb": s["source_bytes"] / 1e6,
            "clip_mb": s["resolutions"][res]["clip_bytes"] / 1e6, "frame_size": frame_size, "res": res,
            "files": s["resolutions"][res]["clips"]}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--measure", nargs=5, metavar=("KIND", "DATA", "RES", "BATCHES", "BATCH"), help=argparse.SUPPRESS)
    ap.add_argument("--sizes", default="1000", help="training sequences of each Vimeo-like set generated and imported")
    ap.add_argument("--size", default="448x256", help="their frame size (Vimeo-90K's)")
    ap.add_argument("--scale", default=f"1000,10000,{FULL}",
                    help="training sequences the loaders are measured at; sizes not imported are the largest "
                         "import's shards hard-linked under new names (replicate())")
    ap.add_argument("--reds", default="10x100x640x360", help="REDS-like set: CLIPSxFRAMESxWxH ('' to skip)")
    ap.add_argument("--codec", default="vp9", help="vp9: DALI's CPU reader decodes it")
    ap.add_argument("--preset", default="medium")
    ap.add_argument("--pack", type=int, default=256)
    ap.add_argument("--unpacked", type=int, default=100, help="sequences imported the old way (one clip each); 0: skip")
    ap.add_argument("--bound-sequences", type=int, default=256, help="sequences the one-process bound encodes")
    ap.add_argument("--kinds", default="dali,png", help="loaders measured")
    ap.add_argument("--device", default="cpu", choices=("cpu", "gpu"),
                    help="where the loaders decode (gpu: DALI's NVDEC readers, --codec h264; the GPU suite's scale stage)")
    ap.add_argument("--gpu-readers", default="legacy,experimental", help="device gpu: DALI's readers measured")
    ap.add_argument("--gpu-reader", default="legacy", help=argparse.SUPPRESS)  # --measure's
    ap.add_argument("--workers", type=int, default=2, help="loader threads/processes")
    ap.add_argument("--jobs", type=int, default=2, help="processes making the frames")
    ap.add_argument("--import-jobs", type=int, default=0,
                    help="vsr-prepare --jobs (0: its own choice; it also sets the shard size of a small import)")
    ap.add_argument("--batches", type=int, default=40)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--imports-from", type=Path, help="the output of an earlier run: its import rows are kept and "
                                                        "only the loaders are measured again, on its sets")
    ap.add_argument("--work", type=Path, default=Path("/tmp/scale-bench"), help="where the sets are made (kept)")
    ap.add_argument("--out", type=Path, default=Path("docs/benchmarks/scale"))
    a = ap.parse_args(argv)
    if a.measure:
        kind, data, res, batches, bs = a.measure
        print(json.dumps(measure_loader(kind, data, res, int(batches), int(bs), a.device, a.gpu_reader, a.workers)))
        return 0
    rows: list[dict] = []
    a.work.mkdir(parents=True, exist_ok=True)
    loaders = loader_rows(a.kinds, a.device, a.gpu_readers)
    meta = {"codec": a.codec, "preset": a.preset, "pack": a.pack, "cpus": os.cpu_count(), "device": a.device,
            "note": "GPU machine" if a.device == "gpu" else "shared 2-core machine; frame sizes per row"}
    imported: dict[int, tuple[Path, str, str]] = {}
    if a.imports_from:  # loaders only, over the sets an earlier run imported (its printed import rows)
        for line in a.imports_from.read_text().splitlines():
            if line.startswith('{"what": "import"'):
                row = json.loads(line)
                rows.append(row)
                n = row["sequences"]
                name = row["set"]
                if name.startswith("vimeo-") and not name.endswith("unpacked"):
                    imported[int(name.split("-")[1])] = (a.work / f"{name}-data", row["res"], row["frame_size"])
    for n in [int(v) for v in a.sizes.split(",") if v and not a.imports_from]:
        size = tuple(int(v) for v in a.size.split("x"))
        name = f"vimeo-{n}-{size[0]}x{size[1]}"
        root, data = a.work / name, a.work / f"{name}-data"
        t0 = time.perf_counter()
        make_vimeo_like(root, n, size, jobs=a.jobs)
        print(f"{name}: frames generated in {time.perf_counter() - t0:.0f} s", flush=True)
        shutil.rmtree(data, ignore_errors=True)
        imp = run_import(root, data, a.codec, a.preset, a.pack, a.import_jobs)
        row = _import_row(name, imp["summary"], imp["wall_s"], f"{size[0]}x{size[1]}")
        if a.bound_sequences:
            b = one_process_bound(root, a.work, a.codec, a.preset, size, min(a.bound_sequences, n))
            row.update(bound_s=b["wall_s"], bound_frames=b["frames"],
                       bound_scaled_s=b["wall_s"] * row["frames"] / b["frames"])
        rows.append(row)
        print(json.dumps(row), flush=True)
        imported[n] = (data, row["res"], row["frame_size"])
    if a.unpacked and not a.imports_from:  # the import before packing: one ffmpeg process per sequence
        size = tuple(int(v) for v in a.size.split("x"))
        name = f"vimeo-{a.unpacked}-{size[0]}x{size[1]}"
        root, data = a.work / name, a.work / f"{name}-unpacked"
        make_vimeo_like(root, a.unpacked, size)
        shutil.rmtree(data, ignore_errors=True)
        imp = run_import(root, data, a.codec, a.preset, 0)
        rows.append({**_import_row(name + " unpacked", imp["summary"], imp["wall_s"], a.size)})
        print(json.dumps(rows[-1]), flush=True)
    base_n = max(imported)
    base, res, fsize = imported[base_n]
    for n in [int(v) for v in a.scale.split(",") if v]:
        if n in imported:
            data, label = imported[n][0], f"vimeo-{n}"
        else:
            data, label = replicate(base, a.work / f"vimeo-{n}-replicated", n), f"vimeo-{n} (repl.)"
        for kind, reader, name in loaders:
            r = loader_in_process(kind, data, res, a.batches, a.batch_size, a.device, reader, a.workers)
            rows.append({"what": "loader", "set": label, "loader": name, "frame_size": fsize, **r})
            print(json.dumps(rows[-1]), flush=True)
            save_json(a.out, meta, rows)  # a run cut short (the GPU suite's time limit) keeps its rows
    if a.reds:
        clips, frames, w, h = (int(v) for v in a.reds.split("x"))
        name = f"reds-{clips}x{frames}-{w}x{h}"
        root, data = a.work / name, a.work / f"{name}-data"
        if not root.exists():
            from benchmarks.fixtures.framefactory import make_reds

            make_reds(root, tuple(f"{i:03d}" for i in range(clips)), frames, (w, h))
        if a.imports_from:
            reds_res = next(r["res"] for r in rows if r["set"] == name)
        else:
            shutil.rmtree(data, ignore_errors=True)
            imp = run_import(root, data, a.codec, a.preset, a.pack)  # long clips: indexed, one file each
            rows.append(_import_row(name, imp["summary"], imp["wall_s"], f"{w}x{h}"))
            print(json.dumps(rows[-1]), flush=True)
            reds_res = rows[-1]["res"]
        for kind, reader, label in loaders:
            r = loader_in_process(kind, data, reds_res, a.batches, a.batch_size, a.device, reader, a.workers)
            rows.append({"what": "loader", "set": name, "loader": label, "frame_size": f"{w}x{h}", **r})
            print(json.dumps(rows[-1]), flush=True)
    table(rows)
    save_results(a.out, meta, rows, plot)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
