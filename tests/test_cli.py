"""The command-line convention of every entry point, through the console scripts setup.cfg declares.

Bad input is one line `error: ...` and exit status 2; SIGTERM is handled like Ctrl-C (temporary
outputs removed, ffmpeg children stopped, one true line, exit 128 + 15); ./run.sh and the
multi-process launcher pass the trainer's message and status through without torchrun's traceback;
a wheel holds only the `vsrvfi` package, the built-in configs and the console scripts.

An installed console script does `sys.exit(FUNC())` after `from MOD import FUNC`; the tests run
exactly that with this checkout first on sys.path (the scripts installed in the environment may
belong to another checkout), and the installed scripts themselves when they run this checkout's code.
"""
from __future__ import annotations

import configparser
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path
from typing import Callable

import pytest

from benchmarks.fixtures.clipfactory import ffmpeg, random_checkpoints
from vsrvfi.models.checkpoint import load_checkpoint

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable


def console_scripts(setup_cfg: Path = ROOT / "setup.cfg") -> dict[str, str]:
    """{script name: 'module:function'} as declared in setup.cfg."""
    cfg = configparser.ConfigParser()
    cfg.read(setup_cfg)
    lines = cfg["options.entry_points"]["console_scripts"].strip().splitlines()
    return dict((part.strip() for part in line.split("=", 1)) for line in lines if line.strip())


SCRIPTS = console_scripts()


def bad_inputs(tmp: Path) -> dict[str, list[str]]:
    """One bad command line per console script (every script must have one)."""
    missing = tmp / "missing"
    return {
        "vsr-demo-video": [str(tmp / "demo.mp4"), "--size", "12"],
        "vsr-split-scenes": [str(missing / "in.mp4"), str(tmp / "data")],
        "vsr-transcode": [str(missing)],
        "vsr-extract-frames": [str(missing)],
        "vsr-prepare": [str(missing / "in.mp4"), str(tmp / "data")],
        "vsr-train": ["nosuchmodel"],
        "vsr-convert": ["--model", "edvr", str(missing / "w.pth"), str(tmp / "out.pth")],
        "vsr-interpolate": [str(missing / "in.mp4"), str(tmp / "out.mp4"), "--factor", "2", "-c", str(missing / "w.pth")],
        "vsr-upscale": [str(missing / "in.mp4"), str(tmp / "out.mp4"), "-c", str(missing / "w.pth")],
        "vsr-evaluate": ["-c", str(missing / "w.pth"), str(missing)],
    }


def entry_command(name: str, *args: str) -> list[str]:
    """What the installed script `name` runs, as a command line (with the current directory first on sys.path)."""
    module, func = SCRIPTS[name].split(":")
    return [PY, "-c", f"import sys; from {module} import {func}; sys.exit({func}())", *args]


def assert_one_error_line(res: subprocess.CompletedProcess, what: str) -> None:
    lines = res.stderr.strip().splitlines()
    assert res.returncode == 2, f"{what}: exit {res.returncode}\n{res.stderr[-3000:]}"
    assert len(lines) == 1 and lines[0].startswith("error: "), f"{what}: stderr\n{res.stderr[-3000:]}"
    assert res.stdout == "", f"{what}: stdout {res.stdout!r}"


def installed_here(name: str, cwd: Path) -> str | None:
    """The installed script `name` when it runs this checkout's code (e.g. after `pip install -e .` here)."""
    script = shutil.which(name)
    if script is None:
        return None
    first = Path(script).read_bytes()[:300].split(b"\n", 1)[0].decode(errors="replace")
    if not first.startswith("#!"):
        return None
    res = subprocess.run([first[2:].strip(), "-c", "import os, vsrvfi; print(os.path.realpath(vsrvfi.__path__[0]))"],
                         cwd=cwd, capture_output=True, text=True, timeout=120)
    return script if res.returncode == 0 and res.stdout.strip() == os.path.realpath(ROOT / "vsrvfi") else None


# ------------------------------------------------------------------------------------ bad input

def test_declared_console_scripts():
    assert set(SCRIPTS) == set(bad_inputs(Path("/x"))), "give every console script a bad-input case"
    assert SCRIPTS["vsr-prepare"] == "vsrvfi.tools.prepare_data:cli"
    assert SCRIPTS["vsr-train"] == "vsrvfi.trainers.train:cli"
    assert all(target.startswith("vsrvfi.") and target.endswith(":cli") for target in SCRIPTS.values()), SCRIPTS


@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_console_script_bad_input_is_one_line_and_exit_2(name, tmp_path):
    args = bad_inputs(tmp_path)[name]
    assert_one_error_line(subprocess.run(entry_command(name, *args), cwd=ROOT, capture_output=True, text=True,
                                         timeout=300), name)
    script = installed_here(name, tmp_path)
    if script is not None:
        assert_one_error_line(subprocess.run([script, *args], cwd=tmp_path, capture_output=True, text=True,
                                             timeout=300), script)
    assert not (tmp_path / "missing").exists()


@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_argparse_errors_are_one_line_too(name, capsys):
    module, func = SCRIPTS[name].split(":")
    cli = getattr(__import__(module, fromlist=[func]), func)
    assert cli(["--no-such-option"]) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith("error: ") and captured.err.count("\n") == 1, captured.err
    assert "--help shows the usage" in captured.err and captured.out == ""


def test_run_sh_bad_input_is_one_line():
    env = {**os.environ, "PYTHON": PY}
    cases = {("nosuchmodel",): "nosuchmodel.yaml: no such config",
             ("vsrnet", "data.dir=/nonexistent"): "/nonexistent: no such data directory",
             ("vsrnet", "data.dir=/tmp", "nosuch.key=1"): "nosuch.key: unknown key"}
    for args, message in cases.items():
        res = subprocess.run(["bash", str(ROOT / "run.sh"), *args], capture_output=True, text=True, env=env, timeout=300)
        assert_one_error_line(res, f"./run.sh {' '.join(args)}")
        assert message in res.stderr


# -------------------------------------------------------------------------------------- signals

PROGRESS = re.compile(r"\[\d+:\d\d")  # tqdm's [elapsed<remaining, rate]


def messages(stderr: str) -> list[str]:
    """stderr without progress bars."""
    return [ln.strip() for ln in stderr.replace("\r", "\n").splitlines() if ln.strip() and not PROGRESS.search(ln)]


def children(pid: int) -> list[int]:
    kids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            kids.append(int(stat.parent.name))
    return kids


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


class Started:
    """A command run in the background with stderr to a file, stopped by a signal once `ready()`."""

    def __init__(self, cmd: list[str], log: Path, cwd: Path = ROOT, env: dict | None = None):
        self.log = log
        self._err = open(log, "w")
        self.proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=self._err, text=True,
                                     env={**os.environ, "TQDM_DISABLE": "1", **(env or {})})

    def signal_when(self, ready: Callable[[], bool], sig: int = signal.SIGTERM, timeout: float = 240,
                    settle: float = 0.5) -> tuple[int, list[str], str, list[int], float]:
        """Send `sig` once `ready()`; returns (status, stderr messages, stdout, children at the signal, seconds to exit)."""
        t0 = time.monotonic()
        while not ready():
            if self.proc.poll() is not None or time.monotonic() - t0 > timeout:
                self.proc.kill()
                out = self.proc.communicate()[0]
                self._err.close()
                pytest.fail(f"not ready (exit {self.proc.returncode}):\n{out}\n{self.log.read_text()[-3000:]}")
            time.sleep(0.1)
        time.sleep(settle)
        kids = children(self.proc.pid)
        t1 = time.monotonic()
        self.proc.send_signal(sig)
        out = self.proc.communicate(timeout=120)[0]
        secs = time.monotonic() - t1
        self._err.close()
        return self.proc.returncode, messages(self.log.read_text()), out, kids, secs


def temp_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob(".*.tmp.*"))


def wait_gone(pids: list[int], timeout: float = 10) -> list[int]:
    t0 = time.monotonic()
    while any(alive(p) for p in pids) and time.monotonic() - t0 < timeout:
        time.sleep(0.1)
    return [p for p in pids if alive(p)]


@pytest.fixture(scope="module")
def long_clip(tmp_path_factory) -> Path:
    """96x64, 24 fps, 30 s with audio: far more frames than the tools get through before the signal."""
    out = tmp_path_factory.mktemp("long") / "long.mp4"
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=96x64:rate=24:duration=30", "-f", "lavfi", "-i",
           "sine=frequency=440:duration=30", "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p",
           "-g", "12", "-c:a", "aac", "-shortest", str(out))
    return out


@pytest.fixture(scope="module")
def small_ckpts(tmp_path_factory) -> dict[str, Path]:
    return random_checkpoints(tmp_path_factory.mktemp("ckpt"), [("vsrnet", "base", {"flow": "tiny"}),
                                                                ("ifrnet", "small", {})])


@pytest.mark.parametrize("name", ["vsr-upscale", "vsr-interpolate"])
def test_sigterm_to_a_video_tool_removes_the_partial_output(name, long_clip, small_ckpts, tmp_path):
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    args = [str(long_clip), str(out_dir / "result.mp4"), "--device", "cpu"]
    if name == "vsr-upscale":
        args += ["-c", str(small_ckpts["vsrnet"])]
    else:
        args += ["-c", str(small_ckpts["ifrnet"]), "--factor", "2", "--no-scene-detect"]
    run = Started(entry_command(name, *args), tmp_path / "stderr.txt")
    status, lines, out, kids, secs = run.signal_when(lambda: any(p.stat().st_size for p in temp_files(out_dir)))
    assert status == 128 + signal.SIGTERM, lines
    assert lines == ["interrupted by SIGTERM: the partial output was removed; a rerun starts over"], lines
    assert list(out_dir.iterdir()) == []  # no hidden temporary, nothing under the final name
    assert kids and not wait_gone(kids), "the ffmpeg decoder and encoder must be stopped too"
    assert secs < 30


def test_sigterm_to_a_prepare_stage_stops_its_ffmpeg_jobs_at_once(demo_source, tmp_path):
    from vsrvfi.tools import split_scenes

    data = tmp_path / "data"
    assert split_scenes.cli([str(demo_source), str(data), "--min-scene-len", "0.5s"]) == 0
    many = "180p,168p,160p,150p,144p,136p,128p,120p,112p,108p,100p,96p"  # 4 scenes x 12 = 48 VP9 jobs
    run = Started(entry_command("vsr-transcode", str(data), "--codec", "vp9", "--jobs", "2", "--resolutions", many),
                  tmp_path / "stderr.txt")
    status, lines, out, kids, secs = run.signal_when(lambda: bool(temp_files(data)))
    assert status == 128 + signal.SIGTERM, lines
    assert lines == ["interrupted by SIGTERM: complete outputs are kept; a rerun resumes"], lines
    assert temp_files(data) == []
    assert not wait_gone(kids)
    assert secs < 15, f"{secs:.1f} s: queued jobs ran after the signal"
    done = len(list(data.glob("*p/scenes/*/*.mp4"))) - len(list(data.glob("orig/scenes/*/*.mp4")))
    assert done < 48


@pytest.mark.slow
def test_sigterm_to_the_trainer_saves_and_says_so_once(tiny_data_dir, tmp_path):
    args = ["vsrnet", f"data.dir={tiny_data_dir}", "data.res=144p", "data.loader=png", "data.workers=1",
            "data.batch_size=2", "data.crop=32", "train.val_frames=2", "model.kwargs.flow=tiny",
            "train.steps=100000", "train.val_every=0", "train.checkpoint_every=1", "train.device=cpu",
            f"experiment.root={tmp_path}", "experiment.name=sig"]
    last = tmp_path / "sig" / "checkpoints" / "last.pth"
    run = Started(entry_command("vsr-train", *args), tmp_path / "stderr.txt")
    status, lines, out, _, _ = run.signal_when(last.exists, settle=0)
    assert status == 128 + signal.SIGTERM, lines
    assert len(lines) == 1, lines
    m = re.fullmatch(r"interrupted by SIGTERM: stopped at step (\d+) of 100000; checkpoint saved to (\S+); "
                     r"--resume continues from it", lines[0])
    assert m and Path(m.group(2)) == last, lines
    assert load_checkpoint(last)["state"]["step"] == int(m.group(1)) >= 1
    assert "done:" not in out and temp_files(tmp_path / "sig") == []


# ------------------------------------------------------------------------------ several processes

def launcher(tmp_path: Path, mode: str) -> Started:
    cmd = [PY, "-m", "vsrvfi.trainers.launch", "--standalone", "--nproc_per_node=2", "--log-dir", str(tmp_path / "logs"),
           str(ROOT / "tests" / "launch_probe.py"), mode]
    return Started(cmd, tmp_path / "stderr.txt", env={"PYTHONPATH": str(ROOT)})


def test_launcher_reports_another_ranks_error_in_one_line(tmp_path):
    run = launcher(tmp_path, "fail")
    run.proc.wait(timeout=120)
    run._err.close()
    lines = messages(run.log.read_text())
    assert run.proc.returncode == 2, lines
    assert re.fullmatch(r"error: rank 1: rank 1 cannot go on \(its output: .*/attempt_0/1/stderr\.log\)", lines[-1]), lines
    # before it, at most what rank 0 said itself; no torchrun logging, no ChildFailedError traceback
    assert set(lines[:-1]) <= {"rank 0 is here", "interrupted by SIGTERM: rank 0 stopped"}, lines


def test_launcher_passes_sigterm_on_and_exits_128_plus_15(tmp_path):
    run = launcher(tmp_path, "wait")
    status, lines, _, _, _ = run.signal_when(lambda: "rank 0 is here" in run.log.read_text())
    assert status == 128 + signal.SIGTERM, lines
    assert lines == ["rank 0 is here", "interrupted by SIGTERM: rank 0 stopped"], lines


# -------------------------------------------------------------------------------------- packaging

@pytest.mark.slow
def test_wheel_holds_only_vsrvfi_with_configs_and_scripts_that_work(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for name in ("setup.cfg", "pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    shutil.copytree(ROOT / "vsrvfi", src / "vsrvfi", symlinks=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for link in (ROOT / "vsrvfi").iterdir():
        if link.is_symlink():  # vsrvfi/<name> -> ../<name>: copy the folder it points at
            shutil.copytree(link.resolve(), src / link.name, ignore=ignore)
    dist = tmp_path / "dist"
    subprocess.run([PY, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(dist), str(src)],
                   check=True, capture_output=True, timeout=600, cwd=tmp_path)
    (wheel,) = dist.glob("*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names}
    assert tops == {"vsrvfi", f"{wheel.name.split('-')[0]}-{wheel.name.split('-')[1]}.dist-info"}, tops
    for link in (ROOT / "vsrvfi").iterdir():
        if link.is_symlink() and link.name != "configs":
            expected = {f"vsrvfi/{link.name}/{p.relative_to(link.resolve()).as_posix()}"
                        for p in link.resolve().rglob("*.py") if "__pycache__" not in p.parts}
            assert expected and expected <= set(names), sorted(expected - set(names))
    configs = {f"vsrvfi/configs/{p.name}" for p in (ROOT / "configs").glob("*.yaml")}
    assert "vsrvfi/configs/vsrnet.yaml" in configs and configs <= set(names)
    (entry_points,) = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
    cp = configparser.ConfigParser()
    cp.read_string(zipfile.ZipFile(wheel).read(entry_points).decode())
    assert dict(cp["console_scripts"]) == SCRIPTS

    target = tmp_path / "site"
    subprocess.run([PY, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), str(wheel)],
                   check=True, capture_output=True, timeout=600, cwd=tmp_path)
    env = {**os.environ, "PYTHONPATH": str(target)}
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    code = ("import vsrvfi, vsrvfi.trainers.config as c; print(vsrvfi.__file__); print(c.resolve_path('vsrnet')); "
            "print(c.load_config('vsrnet')['model']['name'])")
    res = subprocess.run([PY, "-c", code], cwd=outside, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    pkg, config, model = res.stdout.split()
    assert Path(pkg).is_relative_to(target) and Path(config) == target / "vsrvfi" / "configs" / "vsrnet.yaml"
    assert model == "vsrnet"
    # the installed scripts themselves, all at once: one line and exit 2 each
    procs = {name: subprocess.Popen([str(target / "bin" / name), *args], cwd=outside, env=env, text=True,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for name, args in bad_inputs(tmp_path).items()}
    for name, proc in procs.items():
        out, err = proc.communicate(timeout=300)
        assert_one_error_line(subprocess.CompletedProcess(proc.args, proc.returncode, out, err), name)
