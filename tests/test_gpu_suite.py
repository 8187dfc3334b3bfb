"""The GPU suite (benchmarks/gpu_suite.py) as far as a CPU can check it: its dry run end to end, the
install stage on a small archive, stage time limits, and the targets computed from measured numbers."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

from benchmarks import gpu_suite
from benchmarks.gpu_suite import ROOT, Stage, StageFailed, Suite, evaluate_targets, run_suite


@pytest.mark.slow
def test_dry_run_runs_every_stage_on_the_cpu(tmp_path):
    out = tmp_path / "out"
    t0 = time.monotonic()
    res = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_suite.sh"), "--dry-run", "--out", str(out)],
                         capture_output=True, text=True, timeout=600)
    elapsed = time.monotonic() - t0
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-2000:]
    assert sorted(p.name for p in out.iterdir()) == ["results.json", "suite.tar.gz", "summary.md"]
    results = json.loads((out / "results.json").read_text())
    status = {s["name"]: s["status"] for s in results["stages"]}
    assert status == {"install": "skipped", "env": "ok", "data": "ok", "tests": "ok", "loader": "ok", "peers": "ok",
                      "train": "ok", "inference": "ok", "scale": "ok"}, results["stages"]
    assert results["dry_run"] and results["env"]["nvidia.dali"].startswith("2.")
    # the plan came first, and fitted; the NVDEC probe answered for both readers (no GPU here)
    assert res.stdout.index("total") < res.stdout.index("== install") and "fits" in res.stdout
    assert [s["name"] for s in results["plan"]["stages"]] == list(status)
    assert set(results["env"]["nvdec_probe"]) == {"legacy", "experimental"} and not results["env"]["nvdec"]
    assert results["gpu_tests"]["skipped"] > 0 and results["gpu_tests"]["failed"] == 0  # no GPU: all skipped
    kinds = {r["kind"] for r in results["dataloader"]["rows"]}
    assert kinds == {"ceiling", "dali", "png"}
    assert {(r["model"], r["loader"]) for r in results["train_speed"]["rows"]} == {
        ("vsrnet", "dali"), ("vsrnet", "png"), ("rife", "dali"), ("rife", "png")}
    assert results["inference"]["rows"][0]["frames_per_s"] > 0
    peer_kinds = {r["kind"] for r in results["peers"]["rows"]}  # a peer not installed here: skipped, with the reason
    assert "png" in peer_kinds and peer_kinds - {"png"} <= {"torchcodec", "decord"}
    assert len(peer_kinds) + len(results["peers"]["skipped"]) == 3
    assert set(results["peers"]["dali_over_peers"]) == {r["loader"] for r in results["peers"]["rows"]
                                                         if r["kind"] in ("torchcodec", "decord")}
    scale = [r for r in results["scale"]["rows"] if r["what"] == "loader"]  # the scale stage: DALI at 100 and 300
    assert [(r["loader"], r["sequences"]) for r in scale] == [("dali", 100), ("dali", 300)], scale
    assert all(r["first_batch_s"] > 0 and r["open_files"] > 0 for r in scale)
    targets = results["targets"]
    assert [t["status"] for t in targets] == ["n/a (dry run)"] * 4
    assert "DALI" in targets[3]["measured"] or targets[3]["measured"] == "not measured"
    assert "vsrnet" in targets[0]["measured"] and "x" in targets[1]["measured"]
    summary = (out / "summary.md").read_text()
    assert "| stage | status |" in summary and "dry run" in summary and len(summary.splitlines()) < 40
    with tarfile.open(out / "suite.tar.gz") as tar:
        names = set(tar.getnames())
    for name in ("logs/env.log", "logs/data.log", "logs/tests.log", "logs/loader.log", "logs/train.log",
                 "logs/inference.log", "logs/peers.log", "logs/scale.log", "scale.json", "dataloader_peers.json", "env.json", "gpu_tests.xml", "dataloader_seed.json", "dataloader_seed.png",
                 "train_speed.json", "train_speed.png", "inference_speed.json", "summary.md", "results.json"):
        assert f"gpu_suite/{name}" in names, name
    assert "summary" not in res.stderr
    print(f"dry run: {elapsed:.0f} s")


def make_suite(tmp_path: Path, **kw) -> Suite:
    args = dict(out=tmp_path / "out", work=tmp_path / "work", site=tmp_path / "site", dry=False, budget=60.0)
    args.update(kw)
    suite = Suite(**args)
    (suite.report / "logs").mkdir(parents=True)
    return suite


def test_install_unpacks_the_parts_and_refuses_missing_ones(tmp_path, monkeypatch):
    payload = tmp_path / "payload"
    (payload / "suite_fake_pkg").mkdir(parents=True)
    (payload / "nvidia" / "suite_fake_dali").mkdir(parents=True)  # a namespace folder, as DALI's wheel has
    (payload / "nvidia" / "suite_fake_dali" / "__init__.py").write_text("")
    other = tmp_path / "machine-site" / "nvidia"  # another nvidia on the path, a regular package
    (other / "suite_fake_cublas").mkdir(parents=True)
    (other / "__init__.py").write_text("")
    (other / "suite_fake_cublas" / "__init__.py").write_text("")
    monkeypatch.setenv("PYTHONPATH", str(other.parent))
    (payload / "suite_fake_pkg" / "__init__.py").write_text("VALUE = 42\n")
    (payload / "suite_fake_pkg" / "data.bin").write_bytes(os.urandom(6000))  # incompressible: several parts
    packs = tmp_path / "packs"
    packs.mkdir()
    subprocess.run(f"tar -C '{payload}' -cf - . | xz -1 | split -b 2k - '{packs}/part-'", shell=True, check=True)
    subprocess.run("sha256sum part-* > SHA256SUMS", shell=True, check=True, cwd=packs)
    parts = sorted(packs.glob("part-*"))
    assert len(parts) > 1
    monkeypatch.setattr(gpu_suite, "NEEDED", ("suite_fake_pkg", "nvidia.suite_fake_dali", "nvidia.suite_fake_cublas"))

    suite = make_suite(tmp_path, packs=packs)
    run_suite(suite, only=["install"])
    install = suite.stages[0]
    assert install.status == "ok", install.note
    assert "parts unpacked" in install.note and (suite.site / "suite_fake_pkg" / "__init__.py").exists()
    run_suite(suite, only=["install"])  # a second time: nothing to do
    assert suite.stages[0].note.startswith("already importable")

    parts[1].unlink()
    parts[0].write_bytes(b"damaged")
    again = make_suite(tmp_path / "again", packs=packs)
    run_suite(again, only=["install"])
    assert again.stages[0].status == "failed"
    assert f"{parts[0].name} damaged" in again.stages[0].note and f"{parts[1].name} missing" in again.stages[0].note
    assert (again.out / "summary.md").exists()


def test_a_stage_past_its_limit_is_killed_and_the_suite_goes_on(tmp_path, monkeypatch):
    monkeypatch.setattr(gpu_suite, "MIN_STAGE_S", 1.0)
    marker = tmp_path / "still-running"

    def slow(suite):
        suite.run(f"(sleep 3; touch '{marker}') & sleep 30")
        return "not reached"

    def broken(suite):
        raise RuntimeError("a bug")

    def fine(suite):
        return suite.run([sys.executable, "-c", "print('hello')"]).stdout.strip()

    def failing(suite):
        suite.run([sys.executable, "-c", "import sys; print('bad news'); sys.exit(3)"])

    suite = make_suite(tmp_path)
    stages = [Stage("slow", 2, slow), Stage("broken", 20, broken), Stage("fine", 20, fine),
              Stage("failing", 20, failing)]
    t0 = time.monotonic()
    rc = run_suite(suite, stages=stages)
    assert rc == 1 and time.monotonic() - t0 < 15
    assert [s.status for s in stages] == ["timeout", "failed", "ok", "failed"]
    assert stages[1].note == "RuntimeError: a bug" and stages[2].note == "hello"
    assert "bad news" in stages[3].note
    time.sleep(max(0.0, t0 + 4 - time.monotonic()))
    assert not marker.exists()  # the whole process group went, not just the shell
    assert "[killed after" in (suite.report / "logs" / "slow.log").read_text()


def test_the_budget_skips_what_no_longer_fits(tmp_path, monkeypatch):
    monkeypatch.setattr(gpu_suite, "MIN_STAGE_S", 2.0)
    suite = make_suite(tmp_path, budget=9.0)  # 5 s of it kept for the outputs
    stages = [Stage("first", 20, lambda s: (time.sleep(2.5), "done")[1]), Stage("second", 20, lambda s: "never")]
    run_suite(suite, stages=stages)
    assert [s.status for s in stages] == ["ok", "skipped"] and "out of time" in stages[1].note


def test_stage_failed_is_one_line():
    assert "\n" not in str(StageFailed("x: y"))


def test_targets_from_measured_numbers():
    def train(share, png_ms=50.0):
        return [dict(model=m, loader="dali", data_share=share, data_ms_mean=1.0) for m in gpu_suite.MODELS] + \
               [dict(model=m, loader="png", data_share=0.5, data_ms_mean=png_ms) for m in gpu_suite.MODELS]

    loader = {"rows": [
        {"loader": "NVDEC (1 thr)", "kind": "ceiling", "frames_per_s": 1000.0},
        {"loader": "DALI GPU legacy", "kind": "dali", "device": "gpu", "gpu_reader": "legacy", "data_ms_mean": 2.0,
         "share_nvdec": 85.0},
        {"loader": "DALI GPU experimental", "kind": "dali", "device": "gpu", "gpu_reader": "experimental",
         "data_ms_mean": 8.0, "share_nvdec": 30.0},
        {"loader": "PNG", "kind": "png", "device": "gpu", "data_ms_mean": 30.0}]}
    peers = {"dali_over_peers": {"torchcodec CUDA (main process)": 1.6, "decord CPU (8 workers)": 4.2}}
    good = evaluate_targets({"train_speed": {"rows": train(0.01)}, "dataloader": loader, "peers": peers})
    assert [t["status"] for t in good] == ["PASS", "PASS", "PASS", "PASS"]
    assert "torchcodec CUDA (main process) 1.60x" in good[3]["measured"]
    behind = evaluate_targets({"peers": {"dali_over_peers": {"torchcodec CUDA (main process)": 0.9}}})
    assert behind[3]["status"] == "FAIL"
    assert "legacy 15.0x" in good[1]["measured"] and "experimental 3.8x" in good[1]["measured"]
    assert "legacy 85%" in good[2]["measured"]

    slow_png = {"rows": [dict(r, data_ms_mean=5.0) if r["kind"] == "png" else r for r in loader["rows"]]}
    bad = evaluate_targets({"train_speed": {"rows": train(0.05)}, "dataloader": slow_png})
    assert [t["status"] for t in bad[:2]] == ["FAIL", "FAIL"]
    missing_model = evaluate_targets({"train_speed": {"rows": train(0.01)[1:]}})
    assert missing_model[0]["status"] == "FAIL"  # every model must have been measured
    assert [t["status"] for t in evaluate_targets({})] == ["n/a"] * 4


# ------------------------------------------------------------------------- the plan and the NVDEC probe

def test_the_plan_fits_the_device_budget_with_the_headline_first():
    stages = gpu_suite.make_stages()
    assert not gpu_suite.plan_problems(stages, gpu_suite.DEFAULT_BUDGET_S)
    device = (gpu_suite.MACHINE_START_S + gpu_suite.CALLS * gpu_suite.PER_CALL_S + gpu_suite.RESULTS_S +
              gpu_suite.PYTHON_S + gpu_suite.OUTPUTS_S + sum(s.limit for s in stages))
    assert device <= gpu_suite.DEVICE_S == 900 and gpu_suite.CALL_TIMEOUT_S <= 600
    names = [s.name for s in stages]
    assert names[:3] == ["install", "env", "data"]  # what every later stage needs
    assert names.index("train") < names.index("tests") < names.index("loader")  # the 2% target is not cut short
    assert all(s.proves for s in stages)


def test_plan_prints_each_limit_and_refuses_a_plan_over_budget(capsys, monkeypatch):
    assert gpu_suite.main(["--plan"]) == 0
    out = capsys.readouterr().out
    for s in gpu_suite.make_stages():
        assert f"\n{s.name:<10} {s.limit:>7.0f}" in out
    assert "total" in out and "fits" in out and f"timeout_s {gpu_suite.CALL_TIMEOUT_S}" in out
    monkeypatch.setattr(gpu_suite, "STAGES", gpu_suite.STAGES + [("extra", 60, lambda s: "", "more")])
    assert gpu_suite.main(["--plan"]) == 1
    out = capsys.readouterr().out
    assert "DOES NOT FIT" in out and "error: the stage limits add up to" in out


def fake_runs(suite: Suite, monkeypatch) -> list:
    """Record the stages' commands instead of running them; train_speed 'writes' one PNG row."""
    calls = []

    def run(cmd, check=True, env=None, timeout=None):
        cmd = [str(c) for c in cmd]
        calls.append((cmd, env))
        if "benchmarks.train_speed" in cmd:
            Path(cmd[cmd.index("--out") + 1]).with_suffix(".json").write_text(json.dumps(
                {"rows": [dict(model="vsrnet", loader="png", steps_per_s=3.0, data_share=0.3, data_ms_mean=9.0)]}))
        return subprocess.CompletedProcess(cmd, 0, "", "")

    monkeypatch.setattr(suite, "run", run)
    return calls


def later_stages() -> list[Stage]:
    return [Stage(n, limit, f) for n, limit, f, _ in gpu_suite.STAGES if n in ("train", "tests", "loader")]


def test_without_nvdec_the_stages_skip_or_fall_back_with_the_probes_reason(tmp_path, monkeypatch):
    why = {"legacy": "NVDEC (legacy reader): RuntimeError: CUDA_ERROR_NO_DEVICE",
           "experimental": "NVDEC (experimental reader): RuntimeError: CUDA_ERROR_NO_DEVICE"}
    suite = make_suite(tmp_path)
    gpu_suite.record_nvdec(suite, why)
    suite.facts.update(data=tmp_path / "data", res="720p")
    calls = fake_runs(suite, monkeypatch)
    stages = later_stages()
    run_suite(suite, stages=stages)
    status = {s.name: (s.status, s.note) for s in stages}
    assert status["loader"][0] == "skipped" and why["legacy"] in status["loader"][1], status
    train = next(c for c, _ in calls if "benchmarks.train_speed" in c)
    assert train[train.index("--loaders") + 1] == "png" and not any("gpu_reader" in a for a in train)
    assert status["train"][0] == "ok" and "PNG only: NVDEC (legacy reader)" in status["train"][1], status
    tests_env = next(e for c, e in calls if "pytest" in c)
    assert json.loads(tests_env["VSRVFI_NVDEC_PROBE"]) == why  # the GPU tests skip with the same reason
    assert "no NVDEC: NVDEC (legacy reader)" in gpu_suite.nvdec_note(suite)


def test_with_one_working_reader_only_that_reader_is_measured(tmp_path, monkeypatch):
    suite = make_suite(tmp_path)
    gpu_suite.record_nvdec(suite, {"legacy": "NVDEC (legacy reader): hung", "experimental": None})
    suite.facts.update(data=tmp_path / "data", res="720p")
    calls = fake_runs(suite, monkeypatch)
    run_suite(suite, stages=later_stages())
    train = next(c for c, _ in calls if "benchmarks.train_speed" in c)
    assert train[train.index("--loaders") + 1] == "dali,png" and "data.gpu_reader=experimental" in train
    loader = next(c for c, _ in calls if "benchmarks.dataloader" in c)
    assert loader[loader.index("--gpu-readers") + 1] == "experimental"
    assert loader[loader.index("--clip-run") + 1] == "1,2"


def test_the_fastest_reader_and_clip_run_pairing_is_reported():
    rows = [dict(kind="dali", gpu_reader="legacy", clip_run=1, frames_per_s=900.0, loader="a"),
            dict(kind="dali", gpu_reader="experimental", clip_run=2, frames_per_s=950.0, loader="b"),
            dict(kind="png", gpu_reader=None, frames_per_s=2000.0, loader="c")]
    best = gpu_suite.fastest_gpu_pairing(rows)
    assert (best["gpu_reader"], best["clip_run"]) == ("experimental", 2)
    assert gpu_suite.fastest_gpu_pairing(rows[2:]) is None


def test_a_train_stage_cut_short_keeps_the_pairs_it_finished(tmp_path, monkeypatch):
    suite = make_suite(tmp_path)
    suite.facts.update(data=tmp_path / "data", res="720p")
    fake_runs(suite, monkeypatch)
    recorded = suite.run

    def cut(cmd, **kw):
        recorded(cmd, **kw)  # writes one row, then the limit is reached
        raise StageFailed("timed out after 150 s: python -m benchmarks.train_speed ...")

    monkeypatch.setattr(suite, "run", cut)
    stages = [Stage("train", 20, gpu_suite.stage_train)]
    run_suite(suite, stages=stages)
    assert stages[0].status == "timeout" and "1 model/loader pairs finished and kept" in stages[0].note
    assert suite.results["train_speed"]["rows"][0]["model"] == "vsrnet"
