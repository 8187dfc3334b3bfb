"""The GPU check in one command: install, data, GPU tests, loader, training and inference benchmarks, summary.

    bash benchmarks/gpu_suite.sh                       # on a GPU machine, from the repository root
    python -m benchmarks.gpu_suite --dry-run --out runs/gpu-dry    # anywhere: CPU and VP9, installs nothing

Made for a lent GPU machine that reaches no package registry and gives few minutes (docs/benchmarks.md,
"GPU suite", has the calls that carry the packages there, and what was measured). The stages run one
after the other, each in its own processes with its own time limit, all within `--budget` seconds; a
stage that fails or runs out of time is reported and the suite goes on:

    install    unpack .gpu/part-* (made here by benchmarks/gpu_pack.sh: DALI and the small packages the
               machine lacks, ffmpeg from the imageio-ffmpeg wheel) into --site, unless all import already
    env        versions, nvidia-smi, whether the driver's libnvcuvid (NVDEC) is there, GPUs seen by torch and DALI
    data       a 720p H.264 data set made with the project's tools (demo footage, 4 scenes, PNG frames)
    tests      pytest -m gpu: DALI GPU pipelines == PNG loader (both readers, every augmentation), two GPUs
    loader     benchmarks.dataloader at the seed's setting on the GPU: DALI (both readers) vs PNG vs NVDEC
    peers      the same with --peers: torchcodec (CUDA and CPU) and decord rows, each peer's first batch
               checked against PNG's, and DALI's frames/s over each peer's (a row whose library or FFmpeg
               libraries are missing is skipped with the reason)
    train      benchmarks.train_speed: all four models, DALI and PNG loaders, AMP (data share of a step)
    inference  benchmarks.inference_speed at 1080p and 4K in fp16

The output folder ($OUT, else --out) gets three files, rewritten after every stage so a cut-off run
still leaves its results: summary.md (one screen: stages, the targets, the colour tolerance measured),
results.json (everything parsed) and suite.tar.gz (every log, table, JSON and plot). The dry run
(--dry-run) installs nothing, makes a tiny VP9 set and runs every stage on the CPU with few
iterations (the GPU tests skip): it checks the suite itself and runs as a test (tests/test_gpu_suite.py).

Only the standard library is imported here: the stages' own processes import torch and DALI, after
the install stage has put them on PYTHONPATH.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tarfile
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

ROOT = Path(__file__).resolve().parents[1]
MODELS = ("vsrnet", "edvr", "rife", "ifrnet")
GPU_READERS = ("legacy", "experimental")
# The targets the product exists for (README, issue 15)
DATA_SHARE_MAX = 0.02       # data time below 2 % of a training step, every model
PNG_RATIO_MIN = 10.0        # at least 10x less data time than the PNG loader
NVDEC_SHARE_MIN = 80.0      # the loader delivers at least 80 % of NVDEC's frames/s
MIN_STAGE_S = 10.0          # a stage left less time than this by the budget is skipped
# What the install stage must make importable (module names)
NEEDED = ("nvidia.dali", "av", "imageio_ffmpeg", "scenedetect", "ffmpeg", "tensorboardX", "pytorch_msssim")


class StageFailed(Exception):
    """A stage's command failed or ran out of time; the message says which and why (one line)."""


class SkipStage(Exception):
    """The stage does not apply here (the note says why)."""


@dataclass
class Stage:
    name: str
    limit: float                      # seconds, at most
    func: Callable[["Suite"], str]    # returns a one-line note; raises StageFailed
    status: str = "pending"           # ok | failed | timeout | skipped
    seconds: float = 0.0
    note: str = ""


@dataclass
class Suite:
    out: Path
    work: Path
    site: Path
    dry: bool
    budget: float
    packs: Path = ROOT / ".gpu"                  # the archive parts benchmarks/gpu_pack.sh made
    amp: str = "bf16"
    start: float = field(default_factory=time.monotonic)
    facts: dict = field(default_factory=dict)   # what later stages need: data dir, res, NVDEC, GPUs
    results: dict = field(default_factory=dict)
    stages: list[Stage] = field(default_factory=list)
    _deadline: float = 0.0
    _log: Path | None = None

    @property
    def report(self) -> Path:
        """Where tables, JSON, plots and logs are collected (bundled into suite.tar.gz)."""
        return self.work / "report"

    def env(self) -> dict:
        """The environment of every stage's processes: the installed site and the repository on the path."""
        env = dict(os.environ, PYTHONUNBUFFERED="1", PYTHONDONTWRITEBYTECODE="1")
        paths = ([str(self.site)] if not self.dry else []) + [str(ROOT)]
        if env.get("PYTHONPATH"):
            paths.append(env["PYTHONPATH"])
        env["PYTHONPATH"] = os.pathsep.join(paths)
        env.setdefault("MPLBACKEND", "Agg")
        return env

    def left(self) -> float:
        return self._deadline - time.monotonic()

    def run(self, cmd: Sequence[str] | str, *, check: bool = True, env: dict | None = None,
            timeout: float | None = None) -> subprocess.CompletedProcess:
        """Run one command of the current stage, its output written straight to the stage's log (so a
        run cut short keeps it) and returned; it is killed, with everything it started, when the
        stage's time is up. A string runs under bash (with pipefail)."""
        limit = self.left() if timeout is None else min(timeout, self.left())
        if limit <= 1:
            raise StageFailed("no time left in the stage")
        shell = isinstance(cmd, str)
        shown = cmd if shell else " ".join(str(c) for c in cmd)
        assert self._log is not None
        with open(self._log, "a") as log:
            log.write(f"$ {shown}\n")
            log.flush()
            offset = log.tell()
            proc = subprocess.Popen(["bash", "-o", "pipefail", "-c", cmd] if shell else [str(c) for c in cmd],
                                    cwd=ROOT, env=env or self.env(), stdout=log, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, start_new_session=True)
            try:
                proc.wait(timeout=limit)
                timed_out = False
            except subprocess.TimeoutExpired:
                timed_out = True
            _kill_group(proc)  # children left behind (workers, a background job) go too
        with open(self._log, "a+", errors="replace") as log:
            log.seek(offset)
            out = log.read()
            log.write(f"[killed after {limit:.0f} s]\n" if timed_out else f"[exit {proc.returncode}]\n")
        if timed_out:
            raise StageFailed(f"timed out after {limit:.0f} s: {_short(shown)}")
        if check and proc.returncode:
            tail = [ln for ln in out.splitlines() if ln.strip()][-1:] or [f"exit {proc.returncode}"]
            raise StageFailed(f"{_short(shown)}: {tail[0].strip()[-200:]}")
        return subprocess.CompletedProcess(cmd, proc.returncode, out, "")

    def python(self, *args: str, **kw) -> subprocess.CompletedProcess:
        return self.run([sys.executable, *args], **kw)


def _kill_group(proc: subprocess.Popen) -> None:
    """End what is left of the process group the suite started for one command (the command, or the
    children it left behind): SIGTERM so clean-ups run, SIGKILL for what is still there after 5 s."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        end = time.monotonic() + 5
        while time.monotonic() < end:
            proc.poll()  # reap the command itself, so that only live members keep the group
            try:
                os.killpg(proc.pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.1)
        else:
            continue
        break
    proc.wait()


def _short(text: str, n: int = 120) -> str:
    return text if len(text) <= n else text[:n - 3] + "..."


# ------------------------------------------------------------------------------------------ stages

def imports_ok(suite: Suite) -> list[str]:
    """The needed modules that do not import with the suite's environment."""
    code = ("import importlib, sys\nbad = []\nfor m in sys.argv[1:]:\n    try:\n        importlib.import_module(m)\n"
            "    except Exception as e:\n        bad.append(f'{m} ({type(e).__name__}: {e})'[:160])\nprint('|'.join(bad))")
    res = suite.python("-c", code, *NEEDED, check=False, timeout=60)
    last = (res.stdout or "").strip().splitlines()
    return [b for b in (last[-1] if last else "").split("|") if b] if res.returncode == 0 else ["python failed"]


def parts_problems(folder: Path) -> tuple[list[Path], list[str]]:
    """The archive parts in `folder` and what is wrong with them (missing or damaged, per SHA256SUMS)."""
    sums = folder / "SHA256SUMS"
    if not sums.exists():
        return [], [f"{folder}/SHA256SUMS is missing: carry it with the parts (benchmarks/gpu_pack.sh)"]
    expected = [ln.split() for ln in sums.read_text().splitlines() if ln.strip()]
    parts, problems = [], []
    for digest, name in expected:
        p = folder / name.lstrip("*")
        if not p.exists():
            problems.append(f"{p.name} missing")
            continue
        h = hashlib.sha256()
        with open(p, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        if h.hexdigest() != digest:
            problems.append(f"{p.name} damaged")
        parts.append(p)
    return parts, problems


def share_nvidia_namespace(site: Path) -> None:
    """Make `nvidia` in `site` a package that also spans every other `nvidia` folder on sys.path.

    DALI's `nvidia/dali` lives in a namespace folder without __init__.py. If a package on the
    machine (CUDA library wheels beside torch) ships `nvidia/__init__.py`, that regular package wins
    over the namespace and `import nvidia.dali` fails, though `site` comes first on PYTHONPATH; a
    regular `nvidia` here that extends its path to the others keeps both importable."""
    init = site / "nvidia" / "__init__.py"
    if init.parent.is_dir() and not init.exists():
        init.write_text('__path__ = __import__("pkgutil").extend_path(__path__, __name__)\n')


def stage_install(suite: Suite) -> str:
    if suite.dry:
        raise SkipStage("dry run: nothing installed")
    missing = imports_ok(suite)
    if not missing:
        return f"already importable from {suite.site} or the system"
    parts, problems = parts_problems(suite.packs)
    if problems:
        raise StageFailed("; ".join(problems) + " (the machine went cold between calls? redo the part calls)")
    suite.site.mkdir(parents=True, exist_ok=True)
    files = " ".join(f"'{p}'" for p in parts)
    suite.run(f"cat {files} | xz -d -T0 | tar -x -C '{suite.site}'")
    share_nvidia_namespace(suite.site)
    missing = imports_ok(suite)
    if missing:
        raise StageFailed("still not importable: " + ", ".join(missing))
    return f"{len(parts)} parts unpacked into {suite.site}"


ENV_PROBE = r"""
import ctypes, glob, json, os, platform, subprocess, sys
info = {"python": sys.version.split()[0], "machine": platform.platform(), "cpus": os.cpu_count()}
def version(mod):
    try:
        m = __import__(mod)
        for part in mod.split(".")[1:]:
            m = getattr(m, part)
        return getattr(m, "__version__", "?")
    except Exception as e:
        return f"missing ({type(e).__name__})"
for mod in ("torch", "torchvision", "numpy", "nvidia.dali", "av", "cv2", "scenedetect", "tensorboardX", "imageio_ffmpeg"):
    info[mod] = version(mod)
try:
    import torch
    info["cuda_available"] = torch.cuda.is_available()
    info["torch_cuda"] = torch.version.cuda
    info["gpus"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
except Exception as e:
    info["gpus"] = []
    info["torch_error"] = str(e)
try:
    if info.get("gpus"):
        from nvidia.dali.backend import GetCUDADeviceCount
        info["dali_gpus"] = GetCUDADeviceCount()
except Exception as e:
    info["dali_error"] = str(e)[:200]
try:
    from vsrvfi.core.ffmpeg import ffmpeg_binary
    exe = ffmpeg_binary()
    out = subprocess.run([exe, "-hide_banner", "-version"], capture_output=True, text=True).stdout
    info["ffmpeg"] = exe
    info["ffmpeg_version"] = out.splitlines()[0] if out else "?"
except Exception as e:
    info["ffmpeg"] = f"missing ({e})"
found = []
dirs = ["/usr/local/nvidia/lib64", "/usr/local/nvidia/lib", "/usr/lib/x86_64-linux-gnu", "/usr/lib64",
        "/usr/local/cuda/lib64", "/usr/lib/wsl/lib"] + os.environ.get("LD_LIBRARY_PATH", "").split(":")
for d in dict.fromkeys(d for d in dirs if d):
    found += sorted(glob.glob(os.path.join(d, "libnvcuvid.so*")))
info["libnvcuvid_files"] = found
for name in ("libnvcuvid.so.1", "libnvcuvid.so"):
    try:
        ctypes.CDLL(name)
        info["libnvcuvid_loads"] = name
        break
    except OSError as e:
        info["libnvcuvid_loads"] = None
        info["libnvcuvid_error"] = str(e)[:200]
print(json.dumps(info))
"""


def stage_env(suite: Suite) -> str:
    res = suite.python("-c", ENV_PROBE)
    info = json.loads(res.stdout.strip().splitlines()[-1])
    smi = shutil.which("nvidia-smi")
    if smi:
        q = suite.run([smi, "--query-gpu=name,driver_version,memory.total,clocks.max.sm", "--format=csv,noheader"],
                      check=False, timeout=30)
        info["nvidia_smi"] = (q.stdout or "").strip().splitlines()
        suite.run([smi], check=False, timeout=30)
    else:
        info["nvidia_smi"] = None
    ld = suite.run("ldconfig -p | grep -E 'nvcuvid|nvidia-encode' || true", check=False, timeout=30)
    info["ldconfig_nvcuvid"] = [ln.strip() for ln in (ld.stdout or "").splitlines() if "lib" in ln]
    info["nvdec"] = bool(info.get("libnvcuvid_loads"))
    suite.results["env"] = info
    suite.facts["gpus"] = len(info.get("gpus") or [])
    suite.facts["nvdec"] = info["nvdec"]
    (suite.report / "env.json").write_text(json.dumps(info, indent=1))
    gpus = ", ".join(info.get("gpus") or []) or "no GPU"
    return (f"{gpus}; torch {info.get('torch')} (CUDA {info.get('torch_cuda')}), DALI {info.get('nvidia.dali')}; "
            f"libnvcuvid {'loads' if info['nvdec'] else 'NOT found'}")


def stage_data(suite: Suite) -> str:
    """A data set made the way a user makes one: demo footage, then tools.prepare_data."""
    data = suite.work / "data"
    if suite.dry:  # tiny VP9 for DALI's CPU reader
        size, seconds, fps, res, codec = "320x180", "1", "24", "180p", "vp9"
    else:
        size, seconds, fps, res, codec = "1280x720", "3", "30", "720p", "h264"
    src = suite.work / f"demo-{size}.mp4"
    suite.python("-m", "vsrvfi.tools.demo_video", str(src), "--size", size, "--scene-seconds", seconds, "--fps", fps,
                 "--scenes", "4")
    suite.python("-m", "vsrvfi.tools.prepare_data", str(src), str(data), "--codec", codec, "--resolutions", res,
                 "--frame-resolutions", res, "--gop", "4", "--min-scene-len", "12")
    clips = sorted((data / res / "scenes").glob("*/*.mp4"))
    if not clips:
        raise StageFailed(f"no clips under {data / res / 'scenes'}")
    suite.facts.update(data=data, res=res)
    return f"{len(clips)} {codec} clips at {res} ({size} demo, {seconds} s scenes) in {data}"


def stage_tests(suite: Suite) -> str:
    env = suite.env()
    tolerance = suite.report / "gpu_tolerance.json"
    tolerance.unlink(missing_ok=True)
    env["VSRVFI_GPU_REPORT"] = str(tolerance)
    if suite.facts.get("data") and suite.facts.get("res") == "720p":
        env["VSRVFI_GPU_DATA"] = str(suite.facts["data"])
    junit = suite.report / "gpu_tests.xml"
    res = suite.run([sys.executable, "-m", "pytest", "-v", "-p", "no:cacheprovider", "-m", "gpu", "-rs",
                     "tests/test_gpu_pipelines.py", f"--junitxml={junit}"], env=env, check=False)
    counts = junit_counts(junit)
    suite.results["gpu_tests"] = counts
    if tolerance.exists():
        suite.results["tolerance"] = json.loads(tolerance.read_text())
    note = ", ".join(f"{v} {k}" for k, v in counts.items() if v and k != "skip_reasons")
    if counts.get("skip_reasons"):
        note += f" ({'; '.join(counts['skip_reasons'])})"
    if res.returncode not in (0, 5) or counts.get("failed") or counts.get("errors"):
        raise StageFailed(f"pytest -m gpu: {note or f'exit {res.returncode}'}")
    return note or "no tests collected"


def junit_counts(path: Path) -> dict:
    if not path.exists():
        return {}
    import xml.etree.ElementTree as ET

    root = ET.parse(path).getroot()
    suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
    tests = sum(int(s.get("tests", 0)) for s in suites)
    failed = sum(int(s.get("failures", 0)) for s in suites)
    errors = sum(int(s.get("errors", 0)) for s in suites)
    skipped = sum(int(s.get("skipped", 0)) for s in suites)
    reasons = sorted({(sk.get("message") or "").split(": ", 1)[-1][:100]
                      for s in suites for sk in s.iter("skipped")})
    return {"passed": tests - failed - errors - skipped, "failed": failed, "errors": errors, "skipped": skipped,
            "skip_reasons": reasons}


def stage_loader(suite: Suite) -> str:
    data = _need_data(suite)
    out = suite.report / "dataloader_seed"
    if suite.dry:
        args = ["--res", suite.facts["res"], "--crop", "64", "--batch-size", "2", "--device", "cpu", "--workers", "1",
                "--iters", "2", "--warmup", "1", "--repeats", "1"]
    else:
        if not suite.facts.get("nvdec"):
            raise SkipStage("no libnvcuvid: DALI's GPU readers and the NVDEC ceiling cannot decode here")
        args = ["--device", "gpu", "--gpu-readers", ",".join(GPU_READERS), "--iters", "30", "--warmup", "5",
                "--repeats", "3"]
    suite.python("-m", "benchmarks.dataloader", "--data", str(data), "--preset", "seed", *args, "--out", str(out))
    result = json.loads(out.with_suffix(".json").read_text())
    suite.results["dataloader"] = result
    rows = {r["loader"]: r for r in result["rows"]}
    return "; ".join(f"{name}: {r['frames_per_s']:.0f} frames/s" for name, r in rows.items())


def stage_peers(suite: Suite) -> str:
    """The loader benchmark with --peers (issue 23): DALI ahead of every peer row, reported as a ratio."""
    data = _need_data(suite)
    out = suite.report / "dataloader_peers"
    if suite.dry:
        args = ["--res", suite.facts["res"], "--crop", "64", "--batch-size", "2", "--device", "cpu", "--workers", "1",
                "--iters", "2", "--warmup", "1", "--repeats", "1", "--no-ceiling"]
    else:
        if not suite.facts.get("nvdec"):
            raise SkipStage("no libnvcuvid: DALI's GPU readers and torchcodec's CUDA decoder cannot decode here")
        args = ["--device", "gpu", "--gpu-readers", ",".join(GPU_READERS), "--iters", "20", "--warmup", "3",
                "--repeats", "1"]
    suite.python("-m", "benchmarks.dataloader", "--data", str(data), "--preset", "seed", "--peers", *args,
                 "--out", str(out))
    result = json.loads(out.with_suffix(".json").read_text())
    rows = result["rows"]
    dali = max((r for r in rows if r["kind"] == "dali"), key=lambda r: r["frames_per_s"], default=None)
    peers = [r for r in rows if r["kind"] in ("torchcodec", "decord")]
    result["dali_over_peers"] = {r["loader"]: dali["frames_per_s"] / r["frames_per_s"] for r in peers} if dali else {}
    suite.results["peers"] = result
    parts = [f"{name}: DALI {ratio:.2f}x" for name, ratio in result["dali_over_peers"].items()]
    parts += [f"{r['loader']} check {r.get('check', '-').split(' (')[0]}" for r in peers]
    return "; ".join(parts + result.get("skipped", [])) or "no peer rows"


def stage_train(suite: Suite) -> str:
    data = _need_data(suite)
    out = suite.report / "train_speed"
    loaders = "dali,png" if suite.dry or suite.facts.get("nvdec") else "png"
    if suite.dry:
        args = ["--models", "vsrnet,rife", "--loaders", loaders, "--steps", "1", "--warmup", "0",
                f"data.res={suite.facts['res']}", "data.crop=64", "data.batch_size=1", "data.workers=1"]
    else:
        args = ["--models", ",".join(MODELS), "--loaders", loaders, "--steps", "20", "--warmup", "5",
                f"data.res={suite.facts['res']}", f"train.amp={suite.amp}", "data.workers=8"]
    suite.python("-m", "benchmarks.train_speed", "--data", str(data), "--out", str(out), *args)
    result = json.loads(out.with_suffix(".json").read_text())
    suite.results["train_speed"] = result
    note = "; ".join(f"{r['model']}/{r['loader']} {r['steps_per_s']:.3g} steps/s, data {100 * r['data_share']:.1f}%"
                     for r in result["rows"])
    return note + ("" if "dali" in loaders else " (PNG only: no NVDEC)")


def stage_inference(suite: Suite) -> str:
    out = suite.report / "inference_speed.json"
    if suite.dry:
        args = ["--models", "rife", "--sizes", "64p", "--precisions", "fp32", "--frames", "1", "--warmup", "0",
                "--device", "cpu"]
    else:
        args = ["--models", ",".join(("rife", "ifrnet", "vsrnet", "edvr")), "--sizes", "1080p,4k", "--precisions",
                "fp16", "--frames", "10", "--warmup", "3", "--device", "cuda"]
    suite.python("-m", "benchmarks.inference_speed", *args, "--out", str(out))
    result = json.loads(out.read_text())
    suite.results["inference"] = result
    return "; ".join(f"{r['model']} {r['res']} {r['frames_per_s']:.1f} fps" for r in result["rows"])


def _need_data(suite: Suite) -> Path:
    if not suite.facts.get("data"):
        raise SkipStage("no data set (the data stage did not finish)")
    return suite.facts["data"]


def make_stages() -> list[Stage]:
    return [Stage("install", 90, stage_install), Stage("env", 45, stage_env), Stage("data", 100, stage_data),
            Stage("tests", 120, stage_tests), Stage("loader", 100, stage_loader), Stage("peers", 100, stage_peers),
            Stage("train", 150, stage_train),
            Stage("inference", 80, stage_inference)]


# ----------------------------------------------------------------------------------------- targets

def evaluate_targets(results: dict) -> list[dict]:
    """The four targets from what was measured: each with its numbers and PASS, FAIL or n/a (nothing
    measured, or a dry run, whose CPU numbers say nothing about the targets)."""
    targets = []
    rows = (results.get("train_speed") or {}).get("rows") or []
    dali = {r["model"]: r for r in rows if r["loader"] == "dali"}
    png = {r["model"]: r for r in rows if r["loader"] == "png"}
    measured = ", ".join(f"{m} {100 * r['data_share']:.2f}%" for m, r in dali.items())
    targets.append({
        "target": f"DALI data time < {100 * DATA_SHARE_MAX:.0f}% of a training step, every model",
        "measured": measured or "not measured",
        "status": ("PASS" if all(r["data_share"] < DATA_SHARE_MAX for r in dali.values()) and
                   set(dali) >= set(MODELS) else "FAIL") if dali else "n/a"})

    loader_rows = (results.get("dataloader") or {}).get("rows") or []
    png_rows = [r for r in loader_rows if r.get("kind") == "png"]
    dali_rows = [r for r in loader_rows if r.get("kind") == "dali"]
    ratios = []
    if png_rows:
        for r in dali_rows:
            ratios.append((r.get("gpu_reader") or r["device"], png_rows[0]["data_ms_mean"] / max(r["data_ms_mean"], 1e-9)))
    train_ratios = [f"{m} {png[m]['data_ms_mean'] / max(dali[m]['data_ms_mean'], 1e-9):.0f}x"
                    for m in dali if m in png]
    measured = ", ".join(f"{name} {v:.1f}x" for name, v in ratios) or "not measured"
    if train_ratios:
        measured += f" (in training: {', '.join(train_ratios)})"
    targets.append({"target": f">= {PNG_RATIO_MIN:.0f}x less data time than the PNG loader (seed setting)",
                    "measured": measured,
                    "status": ("PASS" if max(v for _, v in ratios) >= PNG_RATIO_MIN else "FAIL") if ratios else "n/a"})

    shares = [(r.get("gpu_reader") or r["device"], r["share_nvdec"]) for r in dali_rows if r.get("share_nvdec") is not None]
    targets.append({"target": f"DALI loader >= {NVDEC_SHARE_MIN:.0f}% of NVDEC's frames/s",
                    "measured": ", ".join(f"{name} {v:.0f}%" for name, v in shares) or "not measured",
                    "status": ("PASS" if max(v for _, v in shares) >= NVDEC_SHARE_MIN else "FAIL") if shares else "n/a"})
    over = (results.get("peers") or {}).get("dali_over_peers") or {}
    targets.append({"target": "DALI ahead of every peer loader (torchcodec, decord): DALI's frames/s over each",
                    "measured": ", ".join(f"{name} {v:.2f}x" for name, v in over.items()) or "not measured",
                    "status": ("PASS" if min(over.values()) > 1.0 else "FAIL") if over else "n/a"})
    if results.get("dry_run"):
        for t in targets:
            t["status"] = "n/a (dry run)"
    return targets


def _driver(env: dict) -> str:
    """The driver version from nvidia-smi's query line ('name, driver, memory, clock'), or '?'."""
    lines = env.get("nvidia_smi") or []
    fields = lines[0].split(", ") if lines else []
    return fields[1] if len(fields) > 1 else "?"


def summary_markdown(suite: Suite) -> str:
    r = suite.results
    env = r.get("env") or {}
    lines = [f"# GPU suite{' (dry run: CPU, VP9, nothing installed)' if suite.dry else ''}",
             "",
             f"{', '.join(env.get('gpus') or []) or 'no GPU'} | driver {_driver(env)} | "
             f"torch {env.get('torch', '?')} CUDA {env.get('torch_cuda', '?')} | DALI {env.get('nvidia.dali', '?')} | "
             f"libnvcuvid {'yes' if env.get('nvdec') else 'NO'} | {env.get('cpus', '?')} CPUs | "
             f"{time.strftime('%Y-%m-%d %H:%M')}",
             "", "| stage | status | s | note |", "| --- | --- | ---: | --- |"]
    for s in suite.stages:
        lines.append(f"| {s.name} | {s.status} | {s.seconds:.0f} | {_short(s.note, 150)} |")
    lines += ["", "| target | measured | |", "| --- | --- | --- |"]
    for t in r.get("targets") or evaluate_targets(r):
        lines.append(f"| {t['target']} | {t['measured']} | {t['status']} |")
    tol = r.get("tolerance") or []
    if tol:
        worst = {}
        for row in tol:
            group = row["test"].split("/")[-1] if "/" in row["test"] else "?"
            w = worst.setdefault(group, {"luma_mean": 0.0, "luma_p99": 0.0, "luma_max": 0.0, "rgb_mean": 0.0,
                                         "rgb_p99": 0.0, "rgb_max": 0.0})
            for part in ("luma", "rgb"):
                for k in ("mean", "p99", "max"):
                    w[f"{part}_{k}"] = max(w[f"{part}_{k}"], row[part][k])
        lines += ["", "GPU vs PNG, worst over all compared batches (8-bit levels): "
                  + "; ".join(f"{g}: luma mean {w['luma_mean']:.2f} p99 {w['luma_p99']:.1f} max {w['luma_max']:.0f}, "
                              f"RGB mean {w['rgb_mean']:.2f} p99 {w['rgb_p99']:.1f} max {w['rgb_max']:.0f}"
                              for g, w in worst.items())]
    inf = (r.get("inference") or {}).get("rows") or []
    if inf:
        lines += ["", "inference frames/s: " + "; ".join(f"{x['model']} {x['res']} {x['precision']} "
                                                        f"{x['frames_per_s']:.1f}" for x in inf)]
    lines += ["", "files: summary.md, results.json, suite.tar.gz (logs/, dataloader_seed.*, train_speed.*, "
              "inference_speed.json, gpu_tests.xml, gpu_tolerance.json, env.json)"]
    return "\n".join(lines) + "\n"


def write_outputs(suite: Suite) -> None:
    """summary.md, results.json and suite.tar.gz in the output folder (after every stage)."""
    suite.results["dry_run"] = suite.dry
    try:
        suite.results["targets"] = evaluate_targets(suite.results)
    except Exception as exc:  # noqa: BLE001 - odd numbers must not cost the outputs
        suite.results["targets"] = [{"target": "the targets", "measured": f"not computed: {type(exc).__name__}: {exc}",
                                     "status": "n/a"}]
    suite.results["stages"] = [{"name": s.name, "status": s.status, "seconds": round(s.seconds, 1), "note": s.note,
                                "limit": s.limit} for s in suite.stages]
    suite.out.mkdir(parents=True, exist_ok=True)
    (suite.out / "results.json").write_text(json.dumps(suite.results, indent=1, default=str))
    (suite.out / "summary.md").write_text(summary_markdown(suite))
    tmp = suite.out / "suite.tar.gz.tmp"
    with tarfile.open(tmp, "w:gz") as tar:
        tar.add(suite.report, arcname="gpu_suite")
        tar.add(suite.out / "summary.md", arcname="gpu_suite/summary.md")
        tar.add(suite.out / "results.json", arcname="gpu_suite/results.json")
    tmp.replace(suite.out / "suite.tar.gz")


def run_suite(suite: Suite, only: Sequence[str] | None = None, stages: list[Stage] | None = None) -> int:
    """Run the stages in order (each within its limit and the budget), writing the outputs after each."""
    suite.stages = stages if stages is not None else make_stages()
    (suite.report / "logs").mkdir(parents=True, exist_ok=True)
    end = suite.start + suite.budget
    for stage in suite.stages:
        if only and stage.name not in only:
            stage.status, stage.note = "skipped", "not selected"
            continue
        t0 = time.monotonic()
        suite._deadline = min(t0 + stage.limit, end - 5)  # 5 s kept for the outputs
        suite._log = suite.report / "logs" / f"{stage.name}.log"
        if suite._deadline - t0 < MIN_STAGE_S:
            stage.status, stage.note = "skipped", "out of time (--budget)"
        else:
            print(f"== {stage.name} (up to {suite._deadline - t0:.0f} s)", flush=True)
            try:
                stage.note = stage.func(suite)
                stage.status = "ok"
            except SkipStage as exc:
                stage.status, stage.note = "skipped", str(exc)
            except StageFailed as exc:
                stage.status = "timeout" if str(exc).startswith("timed out") else "failed"
                stage.note = str(exc)
            except Exception as exc:  # noqa: BLE001 - a bug in one stage must not stop the others
                stage.status, stage.note = "failed", f"{type(exc).__name__}: {exc}"
                with open(suite._log, "a") as log:
                    log.write(traceback.format_exc())
        stage.seconds = time.monotonic() - t0
        print(f"   {stage.status} in {stage.seconds:.0f} s: {_short(stage.note, 200)}", flush=True)
        try:
            write_outputs(suite)
        except Exception as exc:  # noqa: BLE001 - the next stages still run; the log says why
            print(f"   could not write the outputs: {type(exc).__name__}: {exc}", flush=True)
    print()
    print(summary_markdown(suite), end="")
    return 1 if any(s.status in ("failed", "timeout") for s in suite.stages) else 0


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=os.environ.get("OUT") or "runs/gpu_suite",
                    help="folder for summary.md, results.json, suite.tar.gz (default $OUT, else runs/gpu_suite)")
    ap.add_argument("--work", default=None, help="scratch folder: data set, logs (default /tmp/gpu_suite, "
                                                  "or OUT/../gpu_suite-work in a dry run)")
    ap.add_argument("--site", default="/tmp/site", help="where the install stage unpacks the packages")
    ap.add_argument("--budget", type=float, default=470.0, help="seconds for all stages together")
    ap.add_argument("--amp", default="bf16", choices=["bf16", "fp16", "off"], help="train.amp of the training stage")
    ap.add_argument("--stages", default=None, help="comma list: run only these stages (others reported as skipped)")
    ap.add_argument("--dry-run", action="store_true", help="CPU and VP9, tiny sizes, nothing installed")
    a = ap.parse_args(argv)
    out = Path(a.out).resolve()
    work = Path(a.work).resolve() if a.work else (out.parent / f"{out.name}-work" if a.dry_run else
                                                   Path("/tmp/gpu_suite"))
    if work.exists():
        shutil.rmtree(work / "report", ignore_errors=True)
    suite = Suite(out=out, work=work, site=Path(a.site).resolve(), dry=a.dry_run, budget=a.budget, amp=a.amp)
    print(f"GPU suite{' (dry run)' if a.dry_run else ''}: {platform.node()}, python {platform.python_version()}, "
          f"output {out}, scratch {work}, budget {a.budget:.0f} s", flush=True)
    only = [s.strip() for s in a.stages.split(",")] if a.stages else None
    return run_suite(suite, only)


if __name__ == "__main__":
    from vsrvfi.core.cli import run_cli

    raise SystemExit(run_cli(main, interrupted="the output folder holds the stages finished so far"))
