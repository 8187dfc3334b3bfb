"""--engine ray (tools/preparation/ray_engine.py) on a real two-node Ray cluster started here on this
machine (on its own address: Ray will not put a two-node cluster on 127.0.0.1, see Cluster._node): a
head (`ray start --head --num-cpus=1`) and a second node process with its own resources, both stopped
by the test (their own processes only; never `ray stop`, which would stop other users' Ray).

The same small sources and pinned settings as tests/test_prepare_bytes.py (one encoder thread, so
x264's output is deterministic) are prepared with --engine local and --engine ray: the clips must be
byte-identical and the manifests the same. On the cluster a worker dies once (VSRVFI_RAY_KILL_ONCE) and
its scene is resubmitted, so the same run also shows the bounded retry and its reason in the summary.
"""
from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from tests.test_prepare_bytes import PINNED, SCENES_A, SCENES_B, hash_list, make_frames, make_source
from vsrvfi.core.cli import run_cli
from vsrvfi.tools import prepare_data
from vsrvfi.tools.preparation import ray_engine

ARGS = ["--codec", "h264", "--resolutions", "108p,54p", "--frame-resolutions", "", "--min-scene-len", "8",
        "--val-fraction", "0.3", *PINNED]


def test_engine_ray_without_ray_is_one_line_naming_the_extra(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    src = make_source(tmp_path / "a.mp4", SCENES_A[:2], 24, 12)
    assert run_cli(prepare_data.main, [str(src), str(tmp_path / "d"), "--engine", "ray", *ARGS]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ['error: --engine ray: Ray is not installed; install it with: pip install -e ".[ray]"']


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def _own_ip() -> str:
    """The address Ray gives this machine's nodes (it turns 127.0.0.1 into it)."""
    from ray._private.services import get_node_ip_address
    return get_node_ip_address()


def _ray_bin() -> str:
    return str(Path(sys.executable).with_name("ray"))


class Cluster:
    """A head and a worker node, each a `ray start --block` process group of its own (stopped by killing
    those groups only)."""

    def __init__(self, tmp: Path, env: dict):
        self.temp = Path(tempfile.mkdtemp(prefix="vr", dir="/tmp"))  # short: Ray's socket paths have a limit
        self.procs: list[subprocess.Popen] = []
        self.port = _free_ports(1)[0]
        self.address = f"{_own_ip()}:{self.port}"
        self.env = env
        self.logs = tmp

    def _node(self, name: str, extra: list[str]) -> subprocess.Popen:
        p = _free_ports(8)
        cmd = [_ray_bin(), "start", "--block", "--num-cpus=1", "--disable-usage-stats",
               # Ray maps 127.0.0.1 to the machine's routable address (services.resolve_ip_for_localhost) and a
               # worker node cannot join a loopback-only head, so both nodes use this machine's own address.
               "--object-store-memory=100000000", f"--node-manager-port={p[0]}", f"--object-manager-port={p[1]}",
               f"--dashboard-agent-grpc-port={p[2]}", f"--dashboard-agent-listen-port={p[3]}",
               f"--metrics-export-port={p[4]}", f"--runtime-env-agent-port={p[5]}",
               f"--min-worker-port={20000 + p[6] % 20000}", f"--max-worker-port={20000 + p[6] % 20000 + 40}", *extra]
        log = open(self.logs / f"ray-{name}.log", "w")
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=self.env, start_new_session=True)
        self.procs.append(proc)
        return proc

    def start(self) -> None:
        p = _free_ports(2)
        self._node("head", ["--head", f"--port={self.port}", "--include-dashboard=false", f"--temp-dir={self.temp}",
                            f"--ray-client-server-port={p[0]}"])
        self._wait_nodes(1)
        self._node("worker", [f"--address={self.address}", '--resources={"second_node": 1}'])
        self._wait_nodes(2)

    def _wait_nodes(self, n: int, timeout: float = 240) -> None:
        code = ("import ray,sys; ray.init(address=sys.argv[1], logging_level='ERROR', log_to_driver=False); "
                "print(sum(1 for x in ray.nodes() if x['Alive']))")
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            r = subprocess.run([sys.executable, "-c", code, self.address], capture_output=True, text=True,
                               env=self.env, timeout=120)
            if r.returncode == 0 and r.stdout.strip().splitlines()[-1:] == [str(n)]:
                return
            time.sleep(2)
        raise RuntimeError(f"Ray cluster did not reach {n} nodes; see {self.logs}")

    def stop(self) -> None:
        for proc in reversed(self.procs):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in reversed(self.procs):
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        shutil.rmtree(self.temp, ignore_errors=True)


def _sources(root: Path) -> list[str]:
    a = make_source(root / "src" / "a.mp4", SCENES_A, 24, 12)
    b = make_source(root / "src" / "more" / "b.mp4", SCENES_B, 25, 14)
    return [str(a), str(b)]


def _clip_hashes(data: Path, root: Path) -> dict[str, str]:
    return {k.split("/", 1)[1]: v for k, v in hash_list({"d": data}, root).items()}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """One cluster for the module (starting Ray takes tens of seconds on a loaded 2-core machine); a
    worker of it dies once, on the first scene task it runs. Skipped, naming the extra, without Ray."""
    pytest.importorskip("ray", reason='Ray is not installed: pip install -e ".[ray]"')
    logs = tmp_path_factory.mktemp("ray-logs")
    token = logs / "auth_token"  # the cluster's own token (Ray 2.5x+ turns token auth on once ~/.ray has one)
    token.write_text(secrets.token_hex(32))
    token.chmod(0o600)
    env = dict(os.environ, **{ray_engine.KILL_ONCE_ENV: str(logs / "killed-once"), "RAY_AUTH_MODE": "token",
                              "RAY_AUTH_TOKEN_PATH": str(token)})
    env.pop("RAY_AUTH_TOKEN", None)
    c = Cluster(logs, env)
    try:
        c.start()
        yield c
    finally:
        c.stop()
        left = subprocess.run(["pgrep", "-f", str(c.temp)], capture_output=True, text=True).stdout.strip()
        assert not left, f"Ray processes of this test outlived it: {left}"


def _prepare_on(cluster: Cluster, srcs: list[str], data: Path, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "vsrvfi.tools.prepare_data", *srcs, str(data), "--engine", "ray",
                             "--ray-address", cluster.address, *ARGS], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=cluster.env, **kw)


@pytest.mark.slow
def test_ray_cluster_writes_the_local_bytes_and_retries_a_dead_worker(tmp_path, cluster):
    srcs = _sources(tmp_path)
    local = tmp_path / "local"
    assert run_cli(prepare_data.main, [*srcs, str(local), *ARGS]) == 0
    local_run = json.loads((local / "summary.json").read_text())["this_run"]
    assert local_run["scenes_decoded_once"] == 7  # the local run decodes once, the Ray tasks per scene
    on_ray = tmp_path / "ray"
    t0 = time.monotonic()
    proc = _prepare_on(cluster, srcs, on_ray)
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err[-3000:]
    print(f"ray run: {time.monotonic() - t0:.1f} s wall (2 sources, 7 scenes, 2 tiers; loaded 2-core machine)")

    want, got = _clip_hashes(local, tmp_path), _clip_hashes(on_ray, tmp_path)
    assert sorted(got) == sorted(want)
    assert [k for k in want if got[k] != want[k]] == []  # clips byte-identical, manifests equal
    assert not list(on_ray.rglob("*.tmp.*")), "temporaries left"
    summary = json.loads((on_ray / "summary.json").read_text())["this_run"]
    assert summary["engine"] == "ray"
    assert "engine: ray on 2 node(s)" in out and "1 scene task(s) resubmitted" in out, out[-2000:]
    assert summary["engine_parallelism"].startswith("2 scene processes at once"), summary  # 2 one-CPU nodes
    assert len(summary["nodes"]) == 2 and len({n["node"] for n in summary["nodes"]}) == 1  # two nodes, one machine
    assert all("libx264" in n["encoders"] for n in summary["nodes"])
    assert len(summary["retries"]) == 1 and "Worker" in summary["retries"][0]["reason"], summary["retries"]


@pytest.mark.slow
def test_sigterm_to_the_ray_driver_cancels_its_tasks_and_a_rerun_resumes(tmp_path, cluster):
    srcs = [str(make_source(tmp_path / "src" / "a.mp4", SCENES_A, 24, 40))]
    data = tmp_path / "ray"
    proc = _prepare_on(cluster, srcs, data)
    end = time.monotonic() + 300
    while not list(data.rglob("*.tmp.*")) and proc.poll() is None and time.monotonic() < end:
        time.sleep(0.02)  # until a worker is writing a clip
    assert proc.poll() is None, "the run ended before a clip was being written"
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err[-3000:]
    assert "interrupted by SIGTERM" in err
    assert not list(data.rglob("*.tmp.*")), "temporaries left"

    proc = _prepare_on(cluster, srcs, data)  # the same command resumes
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err[-3000:]
    local = tmp_path / "local"
    assert run_cli(prepare_data.main, [*srcs, str(local), *ARGS]) == 0
    want, got = _clip_hashes(local, tmp_path), _clip_hashes(data, tmp_path)
    assert sorted(got) == sorted(want) and [k for k in want if got[k] != want[k]] == []


@pytest.mark.slow
def test_frame_folder_import_on_ray_writes_the_local_bytes(tmp_path, cluster):
    root = make_frames(tmp_path / "vimeo", ("testsrc2=size=192x128:rate=24", "mandelbrot=size=192x128:rate=24",
                                             "smptebars=size=192x128:rate=24,hue=H=t"), test=(1,))
    args = ["--from-frames", "--codec", "vp9", "--resolutions", "128p,64p", "--frame-resolutions", "", *PINNED]
    local = tmp_path / "local"
    assert run_cli(prepare_data.main, [str(root), str(local), *args]) == 0
    on_ray = tmp_path / "ray"
    proc = subprocess.run([sys.executable, "-m", "vsrvfi.tools.prepare_data", str(root), str(on_ray), "--engine", "ray",
                           "--ray-address", cluster.address, *args], capture_output=True, text=True, env=cluster.env,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads((on_ray / "summary.json").read_text())["engine"]["engine"] == "ray"
    want, got = _clip_hashes(local, tmp_path), _clip_hashes(on_ray, tmp_path)
    assert sorted(got) == sorted(want) and [k for k in want if got[k] != want[k]] == []


def _raylet_of(proc: subprocess.Popen) -> int:
    """The pid of the raylet that `ray start --block` (its own process group) started."""
    out = subprocess.run(["ps", "-eo", "pid=,pgid=,comm="], capture_output=True, text=True).stdout
    for line in out.splitlines():
        pid, pgid, comm = line.split(None, 2)
        if int(pgid) == proc.pid and comm.strip() == "raylet":
            return int(pid)
    raise AssertionError(f"no raylet in process group {proc.pid}")


@pytest.mark.slow
def test_a_node_lost_mid_run_still_ends_with_the_local_bytes(tmp_path, cluster):
    """Last in the module: it takes the second node away (SIGKILL to its raylet)."""
    srcs = [str(make_source(tmp_path / "src" / "c.mp4", SCENES_A + SCENES_B, 24, 30))]
    data = tmp_path / "ray"
    proc = _prepare_on(cluster, srcs, data)
    end = time.monotonic() + 300
    while not list(data.rglob("*.tmp.*")) and proc.poll() is None and time.monotonic() < end:
        time.sleep(0.02)
    assert proc.poll() is None, "the run ended before a clip was being written"
    os.kill(_raylet_of(cluster.procs[1]), signal.SIGKILL)
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err[-3000:]
    local = tmp_path / "local"
    assert run_cli(prepare_data.main, [*srcs, str(local), *ARGS]) == 0
    want, got = _clip_hashes(local, tmp_path), _clip_hashes(data, tmp_path)
    assert sorted(got) == sorted(want) and [k for k in want if got[k] != want[k]] == []
    assert not list(data.rglob("*.tmp.*")), "temporaries left"
    retries = json.loads((data / "summary.json").read_text())["this_run"]["retries"]
    print(f"node loss: {len(retries)} scene task(s) resubmitted: {retries}")
