"""The GPU check in one command: install, environment and NVDEC probe, data, training speed, GPU tests, loader and inference benchmarks.

    bash benchmarks/gpu_suite.sh                       # on a GPU machine, from the repository root
    python -m benchmarks.gpu_suite --plan              # anywhere, at once: the stage plan against the device budget
    python -m benchmarks.gpu_suite --dry-run --out runs/gpu-dry    # anywhere: CPU and VP9, installs nothing

Made for a lent GPU machine that reaches no package registry and gives 15 minutes of device time in
all, its start and every call's transfers included (docs/benchmarks.md, "GPU suite", has the calls
that carry the packages there). The stages run one after the other, in the order of what they prove
(STAGES below: the first ones are what a cut-short run must still show), each in its own processes
with its own time limit, all within `--budget` seconds; a stage that fails or runs out of time is
reported and the suite goes on. Every run starts by printing the plan (each stage's limit, their
total, and how the budget follows from the device time) and refuses one that does not fit:

    install    unpack .gpu/part-* (made here by benchmarks/gpu_pack.sh: DALI and the small packages the
               machine lacks, ffmpeg from the imageio-ffmpeg wheel) into --site, unless all import already
    env        versions, nvidia-smi, libnvcuvid, GPUs seen by torch and DALI, and the NVDEC probe: one H.264
               clip decoded by each DALI GPU reader (vsrvfi.pipelines.nvdec); what needs NVDEC is skipped
               with the probe's reason, what does not (PNG training, inference) still runs
    data       a 720p H.264 data set made with the project's tools (demo footage, 4 scenes, PNG frames)
    train      benchmarks.train_speed: all four models, DALI (a reader that decoded) and PNG loaders, AMP:
               the headline target, data time under 2 % of a step
    tests      pytest -m gpu: DALI GPU pipelines == PNG loader (both readers, every augmentation), two GPUs
    loader     benchmarks.dataloader at the seed's setting: both GPU readers x clip_run 1 and 2, PNG, NVDEC
    peers      benchmarks.dataloader --peers: torchcodec (CUDA and CPU) and decord beside PNG, each peer's
               first batch checked against PNG's; DALI's frames/s (the loader stage's fastest) over each
               peer's (a peer whose package or FFmpeg libraries are missing is skipped with the reason)
    inference  benchmarks.inference_speed at 1080p and 4K in fp16
    scale      benchmarks.scale's loader part: a packed Vimeo-like H.264 set replicated to 1k, 10k and
               64,612 sequences, both DALI GPU readers: start-up, first batch, frames/s, open files, RSS

Another stage is added by a row in STAGES (name, limit, function, what it proves), placed by what it
proves, with its seconds taken from the other rows: tests/test_gpu_suite.py checks that the plan
still fits the device budget.

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
SCALE_FULL = 64612          # Vimeo-90K's septuplet training list (benchmarks.scale.FULL)
# The targets the product exists for (README, issue 15)
DATA_SHARE_MAX = 0.02       # data time below 2 % of a training step, every model
PNG_RATIO_MIN = 10.0        # at least 10x less data time than the PNG loader
NVDEC_SHARE_MIN = 80.0      # the loader delivers at least 80 % of NVDEC's frames/s
MIN_STAGE_S = 10.0          # a stage left less time than this by the budget is skipped
# The device budget (the `run` tool's notes: 15 minutes of device time per task, start and transfers
# included, at most 600 s per command). The numbers below are estimates until a first run measures
# them (its lease's held_s); the plan prints them so they can be corrected in one place.
DEVICE_S = 900              # all device time: the machine's start, every call, idle gaps, the give-back
MACHINE_START_S = 150       # a cold machine's start ("a minute or more")
CALLS = 5                   # the packed parts need five calls (the last one runs this suite)
PER_CALL_S = 30             # each call: up to 64 MiB sent, its start, the gap to the next call
RESULTS_S = 40              # the outputs coming back, give_back
PYTHON_S = 20               # this process's own start, the final summary and archive, the kill margin
OUTPUTS_S = 5               # kept at the end of the budget for writing the outputs
DRY_FACTOR = 4              # a dry run (CPU, tiny sizes) gives each stage this many times its GPU limit
CALL_TIMEOUT_S = DEVICE_S - MACHINE_START_S - CALLS * PER_CALL_S - RESULTS_S   # the suite call's timeout_s
DEFAULT_BUDGET_S = CALL_TIMEOUT_S - PYTHON_S                                   # --budget: all stages
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
    proves: str = ""                  # what the stage shows (printed in the plan)
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
    # A libnvcuvid that loads can still fail at the first decode: the proof is one decoded H.264 frame
    # per reader, each in its own process with a time limit (vsrvfi.pipelines.nvdec)
    probe = suite.python("-m", "vsrvfi.pipelines.nvdec", "--timeout", str(NVDEC_PROBE_S // 2 - 5), check=False,
                         timeout=NVDEC_PROBE_S)
    lines = [ln for ln in (probe.stdout or "").splitlines() if ln.startswith("{")]
    if lines:
        info["nvdec_probe"] = json.loads(lines[-1])
    else:
        why = f"the NVDEC probe gave no answer (exit {probe.returncode}; logs/env.log)"
        info["nvdec_probe"] = {r: why for r in GPU_READERS}
    record_nvdec(suite, info["nvdec_probe"])
    info["nvdec"] = suite.facts["nvdec"]
    suite.results["env"] = info
    suite.facts["gpus"] = len(info.get("gpus") or [])
    (suite.report / "env.json").write_text(json.dumps(info, indent=1))
    gpus = ", ".join(info.get("gpus") or []) or "no GPU"
    return (f"{gpus}; torch {info.get('torch')} (CUDA {info.get('torch_cuda')}), DALI {info.get('nvidia.dali')}; "
            f"libnvcuvid {'loads' if info.get('libnvcuvid_loads') else 'NOT found'}; {nvdec_note(suite)}")


NVDEC_PROBE_S = 50  # both readers' probes (a hung decoder is cut off inside the probe at 20 s each)


def record_nvdec(suite: Suite, probe: dict) -> None:
    """Keep the NVDEC probe's answer ({reader: None or why not}) for the later stages."""
    suite.facts["nvdec_probe"] = {r: probe.get(r, "not probed") for r in GPU_READERS}
    suite.facts["nvdec_readers"] = [r for r in GPU_READERS if suite.facts["nvdec_probe"][r] is None]
    suite.facts["nvdec"] = bool(suite.facts["nvdec_readers"])


def nvdec_readers(suite: Suite) -> list[str]:
    """The DALI GPU readers that decoded the probe clip (none before the env stage ran)."""
    return list(suite.facts.get("nvdec_readers") or [])


def nvdec_reason(suite: Suite) -> str:
    """Why NVDEC cannot be used: the probe's first reason, one line."""
    probe = suite.facts.get("nvdec_probe") or {}
    reasons = [v for v in probe.values() if v]
    return reasons[0] if reasons else "NVDEC not probed (the env stage did not finish)"


def nvdec_note(suite: Suite) -> str:
    readers = nvdec_readers(suite)
    if len(readers) == len(GPU_READERS):
        return "NVDEC decodes (both readers)"
    if readers:
        return f"NVDEC decodes with the {readers[0]} reader only; {nvdec_reason(suite)}"
    return f"no NVDEC: {nvdec_reason(suite)}"


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
    if suite.facts.get("nvdec_probe"):  # the tests skip what needs NVDEC with the probe's reason
        env["VSRVFI_NVDEC_PROBE"] = json.dumps(suite.facts["nvdec_probe"])
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
    reasons = sorted({_skip_reason(sk.get("message") or "") for s in suites for sk in s.iter("skipped")})
    return {"passed": tests - failed - errors - skipped, "failed": failed, "errors": errors, "skipped": skipped,
            "skip_reasons": reasons}


def _skip_reason(message: str) -> str:
    """A junit skip message as the reason given (the NVDEC probe's lines hold colons of their own)."""
    for prefix in ("Skipped: ", "skipped: "):
        if message.startswith(prefix):
            message = message[len(prefix):]
    return message[:160]


def stage_loader(suite: Suite) -> str:
    data = _need_data(suite)
    out = suite.report / "dataloader_seed"
    if suite.dry:
        args = ["--res", suite.facts["res"], "--crop", "64", "--batch-size", "2", "--device", "cpu", "--workers", "1",
                "--iters", "2", "--warmup", "1", "--repeats", "1"]
    else:
        readers = nvdec_readers(suite)
        if not readers:
            raise SkipStage(f"DALI's GPU readers cannot decode here: {nvdec_reason(suite)}")
        # both readers (that decode) x clip_run 1 and 2: the legacy reader seeks and flushes for every
        # sequence, so clip_run helps only the experimental one; the fastest pairing is reported
        # one repeat: the benchmark writes its JSON at the end, so a stage cut short would lose every row
        args = ["--device", "gpu", "--gpu-readers", ",".join(readers), "--clip-run", "1,2", "--iters", "30",
                "--warmup", "5", "--repeats", "1"]
    suite.python("-m", "benchmarks.dataloader", "--data", str(data), "--preset", "seed", *args, "--out", str(out))
    result = json.loads(out.with_suffix(".json").read_text())
    suite.results["dataloader"] = result
    best = fastest_gpu_pairing(result.get("rows") or [])
    if best:
        suite.results["fastest_gpu_pairing"] = best
    rows = {r["loader"]: r for r in result["rows"]}
    note = "; ".join(f"{name}: {r['frames_per_s']:.0f} frames/s" for name, r in rows.items())
    return (f"fastest GPU pairing {best['gpu_reader']} reader, clip_run {best['clip_run']}; " if best else "") + note


def fastest_gpu_pairing(rows: list[dict]) -> dict | None:
    """The DALI GPU row (reader, clip_run) with the most frames/s: the default to set on the GPU."""
    gpu = [r for r in rows if r.get("kind") == "dali" and r.get("gpu_reader")]
    if not gpu:
        return None
    best = max(gpu, key=lambda r: r["frames_per_s"])
    return {"gpu_reader": best["gpu_reader"], "clip_run": best.get("clip_run") or 1,
            "frames_per_s": best["frames_per_s"], "loader": best["loader"]}


def stage_peers(suite: Suite) -> str:
    """The loader benchmark's peer rows (issue 23) beside PNG (the first-batch check's reference), and
    DALI's frames/s (the loader stage's fastest DALI row, same data and setting) over each peer's."""
    data = _need_data(suite)
    out = suite.report / "dataloader_peers"
    if suite.dry:
        args = ["--res", suite.facts["res"], "--crop", "64", "--batch-size", "2", "--device", "cpu", "--workers", "1",
                "--iters", "2", "--warmup", "1"]
    else:
        args = ["--device", "gpu", "--iters", "15", "--warmup", "3"]
    suite.python("-m", "benchmarks.dataloader", "--data", str(data), "--preset", "seed", "--peers", "--kinds", "png",
                 "--no-ceiling", "--repeats", "1", *args, "--out", str(out))
    result = json.loads(out.with_suffix(".json").read_text())
    dali_rows = [r for r in ((suite.results.get("dataloader") or {}).get("rows") or []) if r.get("kind") == "dali"]
    dali = max(dali_rows, key=lambda r: r["frames_per_s"], default=None)
    peers = [r for r in result["rows"] if r["kind"] in ("torchcodec", "decord")]
    result["dali_row"] = dali["loader"] if dali else None
    result["dali_over_peers"] = {r["loader"]: dali["frames_per_s"] / r["frames_per_s"] for r in peers} if dali else {}
    suite.results["peers"] = result
    parts = [f"{name}: DALI {ratio:.2f}x" for name, ratio in result["dali_over_peers"].items()]
    parts += [f"{r['loader']} check {r.get('check', '-').split(' (')[0]}" for r in peers]
    if peers and not dali:
        parts.append("no DALI row from the loader stage to compare with")
    return "; ".join(parts + result.get("skipped", [])) or "no peer rows"


def stage_scale(suite: Suite) -> str:
    """benchmarks.scale's loader part on the GPU (issue 20): a Vimeo-like septuplet set (448x256, H.264 for
    NVDEC) imported packed, 125 sequences a shard as in the CPU run, replicated to 1k, 10k and 64,612
    training sequences (Vimeo-90K's list); each DALI GPU reader that decoded the probe is built over
    each size in a fresh process: construction, first batch, steady frames/s, open files, RSS."""
    out = suite.report / "scale"
    work = suite.work / "scale"
    if suite.dry:  # tiny VP9 for DALI's CPU reader: the same code path, seconds
        args = ["--sizes", "100", "--size", "128x64", "--scale", "100,300", "--codec", "vp9", "--preset", "ultrafast",
                "--device", "cpu", "--kinds", "dali", "--batches", "2", "--batch-size", "2", "--workers", "1"]
    else:
        readers = nvdec_readers(suite)
        if not readers:
            raise SkipStage(f"DALI's GPU readers cannot decode here: {nvdec_reason(suite)}")
        # 500 sequences imported by one job: 4 shards of 125, the CPU run's layout (1,000 by 2 jobs)
        args = ["--sizes", "500", "--import-jobs", "1", "--scale", f"1000,10000,{SCALE_FULL}", "--codec", "h264",
                "--preset", "fast", "--device", "gpu", "--gpu-readers", ",".join(readers), "--kinds", "dali",
                "--batches", "10", "--batch-size", "8", "--workers", "4", "--jobs", str(os.cpu_count() or 2)]
    cut = None
    try:
        suite.python("-m", "benchmarks.scale", *args, "--unpacked", "0", "--bound-sequences", "0", "--reds", "",
                     "--work", str(work), "--out", str(out))
    except StageFailed as exc:  # benchmarks.scale writes its JSON after every row: keep what finished
        cut = exc
    path = out.with_suffix(".json")
    result = json.loads(path.read_text()) if path.exists() else {}
    suite.results["scale"] = result
    loads = [r for r in result.get("rows") or [] if r.get("what") == "loader"]
    bad = [f"{r['loader']} at {r['set']}: {r['error']}" for r in loads if "error" in r]
    if cut is not None or bad:
        raise StageFailed("; ".join(([f"{cut} ({len(loads)} loader rows kept)"] if cut else []) + bad[:2]))
    return "; ".join(f"{r['loader']} {r['sequences']} seq: first batch {r['first_batch_s']:.2f} s, "
                     f"{r['steady_fps']:.0f} frames/s, {r['open_files']} files" for r in loads)


def stage_train(suite: Suite) -> str:
    data = _need_data(suite)
    out = suite.report / "train_speed"
    readers = nvdec_readers(suite)
    loaders = "dali,png" if suite.dry or readers else "png"
    if suite.dry:
        args = ["--models", "vsrnet,rife", "--loaders", loaders, "--steps", "1", "--warmup", "0",
                f"data.res={suite.facts['res']}", "data.crop=64", "data.batch_size=1", "data.workers=1"]
    else:
        args = ["--models", ",".join(MODELS), "--loaders", loaders, "--steps", "20", "--warmup", "5",
                f"data.res={suite.facts['res']}", f"train.amp={suite.amp}", "data.workers=8"]
        if readers:
            args.append(f"data.gpu_reader={readers[0]}")
    cut = None
    try:
        suite.python("-m", "benchmarks.train_speed", "--data", str(data), "--out", str(out), *args)
    except StageFailed as exc:  # train_speed writes its JSON after every pair: keep what finished
        cut = exc
    path = out.with_suffix(".json")
    if path.exists():
        suite.results["train_speed"] = json.loads(path.read_text())
    if cut is not None:
        done = len((suite.results.get("train_speed") or {}).get("rows") or [])
        raise StageFailed(f"{cut} ({done} model/loader pairs finished and kept)")
    result = suite.results["train_speed"]
    note = "; ".join(f"{r['model']}/{r['loader']} {r['steps_per_s']:.3g} steps/s, data {100 * r['data_share']:.1f}%"
                     for r in result["rows"])
    return note + ("" if "dali" in loaders else f" (PNG only: {nvdec_reason(suite)})")


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


# The plan, in the order of what the stages prove (a run cut short loses the last ones): the hook for
# other stages is a row here (name, limit in seconds, function, what it proves), its seconds taken
# from the others so that check_plan() still passes (tests/test_gpu_suite.py runs it).
STAGES: list[tuple[str, float, Callable[[Suite], str], str]] = [
    ("install", 45, stage_install, "the packages import (nothing else runs without them)"),
    ("env", 50, stage_env, "GPU, driver, versions; NVDEC decodes one H.264 frame (else what needs it is skipped)"),
    ("data", 70, stage_data, "the project's own tools make a 720p H.264 data set"),
    ("train", 120, stage_train, "the headline: DALI data time < 2% of a training step, every model (vs PNG)"),
    ("tests", 60, stage_tests, "DALI GPU batches == PNG batches (both readers, every augmentation)"),
    ("loader", 65, stage_loader, "loader vs NVDEC and PNG; the faster reader x clip_run pairing for the default"),
    ("peers", 35, stage_peers, "DALI ahead of torchcodec (CUDA, CPU) and decord, as ratios (issue 23)"),
    ("inference", 30, stage_inference, "inference frames/s at 1080p and 4K (fp16)"),
    ("scale", 55, stage_scale, "both GPU readers' start-up at 1k, 10k, 64,612 packed sequences (issue 20)"),
]


def make_stages() -> list[Stage]:
    return [Stage(name, limit, func, proves) for name, limit, func, proves in STAGES]


def plan_problems(stages: Sequence[Stage], budget: float) -> list[str]:
    """Why the plan does not fit the device time (empty when it does)."""
    problems = []
    total = sum(s.limit for s in stages)
    if total > budget - OUTPUTS_S:
        problems.append(f"the stage limits add up to {total:.0f} s, over the {budget:.0f} s budget less "
                        f"{OUTPUTS_S} s for the outputs")
    if budget > DEFAULT_BUDGET_S:
        problems.append(f"--budget {budget:.0f} s is over the {DEFAULT_BUDGET_S} s the device time leaves "
                        f"(plan_lines)")
    if CALL_TIMEOUT_S > 600:
        problems.append(f"the suite call would need timeout_s {CALL_TIMEOUT_S}, over the 600 s per command")
    short = [s.name for s in stages if s.limit < MIN_STAGE_S]
    if short:
        problems.append(f"stages with less than {MIN_STAGE_S:.0f} s would always be skipped: {', '.join(short)}")
    return problems


def plan_lines(stages: Sequence[Stage], budget: float) -> list[str]:
    """The plan as printed before the first stage: each stage's limit and purpose, the total, and how
    the budget follows from the device time."""
    lines = [f"device time {DEVICE_S} s = machine start {MACHINE_START_S} + {CALLS} calls x {PER_CALL_S} "
             f"(transfers, gaps) + results and give-back {RESULTS_S} + the suite call's timeout_s {CALL_TIMEOUT_S}",
             f"suite call {CALL_TIMEOUT_S} s = python and outputs {PYTHON_S} + budget {DEFAULT_BUDGET_S}; "
             f"this run's budget {budget:.0f} s",
             f"{'stage':<10} {'limit s':>7} {'ends by':>7}  proves"]
    t = 0.0
    for s in stages:
        t += s.limit
        lines.append(f"{s.name:<10} {s.limit:>7.0f} {t:>7.0f}  {s.proves}")
    lines.append(f"{'total':<10} {t:>7.0f}          of {budget - OUTPUTS_S:.0f} s (budget less {OUTPUTS_S} s "
                 f"for the outputs): {'fits' if t <= budget - OUTPUTS_S else 'DOES NOT FIT'}")
    return lines


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
                    "measured": ", ".join(f"DALI/{name} {v:.2f}x" for name, v in over.items()) or "not measured",
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
             f"NVDEC {'decodes' if env.get('nvdec') else 'NO'} | {env.get('cpus', '?')} CPUs | "
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
    if suite.facts.get("nvdec_probe") and not suite.dry:
        lines += ["", f"NVDEC probe (one H.264 frame per DALI GPU reader): {nvdec_note(suite)}"]
    best = r.get("fastest_gpu_pairing")
    if best:
        lines += ["", f"fastest GPU loader pairing (seed setting): {best['gpu_reader']} reader, clip_run "
                      f"{best['clip_run']}, {best['frames_per_s']:.0f} frames/s: the default to set on the GPU"]
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
    gpu_budget = DEFAULT_BUDGET_S if suite.dry else suite.budget
    print("\n".join(plan_lines(suite.stages, gpu_budget)), flush=True)
    for problem in plan_problems(suite.stages, gpu_budget):
        print(f"warning: {problem}", flush=True)
    factor = DRY_FACTOR if suite.dry else 1
    if suite.dry:
        print(f"dry run: on the CPU each stage gets {DRY_FACTOR} x its limit, within --budget {suite.budget:.0f} s",
              flush=True)
    suite.results["plan"] = {"stages": [{"name": s.name, "limit": s.limit, "proves": s.proves} for s in suite.stages],
                             "budget": suite.budget, "device_s": DEVICE_S, "machine_start_s": MACHINE_START_S,
                             "calls": CALLS, "per_call_s": PER_CALL_S, "call_timeout_s": CALL_TIMEOUT_S}
    end = suite.start + suite.budget
    for stage in suite.stages:
        if only and stage.name not in only:
            stage.status, stage.note = "skipped", "not selected"
            continue
        t0 = time.monotonic()
        suite._deadline = min(t0 + factor * stage.limit, end - OUTPUTS_S)  # kept for the outputs
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
    ap.add_argument("--budget", type=float, default=None,
                    help=f"seconds for all stages together (default {DEFAULT_BUDGET_S}: what the device time leaves; "
                         f"a dry run: {DRY_FACTOR} times that)")
    ap.add_argument("--plan", action="store_true", help="print the stage plan against the device budget and exit "
                                                        "(status 1 when it does not fit)")
    ap.add_argument("--amp", default="bf16", choices=["bf16", "fp16", "off"], help="train.amp of the training stage")
    ap.add_argument("--stages", default=None, help="comma list: run only these stages (others reported as skipped)")
    ap.add_argument("--dry-run", action="store_true", help="CPU and VP9, tiny sizes, nothing installed")
    a = ap.parse_args(argv)
    if a.budget is None:
        a.budget = float(DEFAULT_BUDGET_S * (DRY_FACTOR if a.dry_run else 1))
    if a.plan:
        stages = make_stages()
        print("\n".join(plan_lines(stages, a.budget)))
        problems = plan_problems(stages, a.budget)
        for problem in problems:
            print(f"error: {problem}")
        return 1 if problems else 0
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
