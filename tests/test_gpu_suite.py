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
    res = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_suite.sh"), "--dry-run", "--out", str(out),
                          "--budget", "400"], capture_output=True, text=True, timeout=600)
    elapsed = time.monotonic() - t0
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-2000:]
    assert sorted(p.name for p in out.iterdir()) == ["results.json", "suite.tar.gz", "summary.md"]
    results = json.loads((out / "results.json").read_text())
    status = {s["name"]: s["status"] for s in results["stages"]}
    assert status == {"install": "skipped", "env": "ok", "data": "ok", "tests": "ok", "loader": "ok", "peers": "ok",
                      "train": "ok", "inference": "ok"}, results["stages"]
    assert results["dry_run"] and results["env"]["nvidia.dali"].startswith("2.")
    assert results["gpu_tests"]["skipped"] > 0 and results["gpu_tests"]["failed"] == 0  # no GPU: all skipped
    kinds = {r["kind"] for r in results["dataloader"]["rows"]}
    assert kinds == {"ceiling", "dali", "png"}
    assert {(r["model"], r["loader"]) for r in results["train_speed"]["rows"]} == {
        ("vsrnet", "dali"), ("vsrnet", "png"), ("rife", "dali"), ("rife", "png")}
    assert results["inference"]["rows"][0]["frames_per_s"] > 0
    peer_kinds = {r["kind"] for r in results["peers"]["rows"]}  # a peer not installed here: skipped, with the reason
    assert {"dali", "png"} <= peer_kinds and peer_kinds - {"dali", "png"} <= {"torchcodec", "decord"}
    assert len(peer_kinds) + len(results["peers"]["skipped"]) == 4
    targets = results["targets"]
    assert [t["status"] for t in targets] == ["n/a (dry run)"] * 4
    assert "DALI" in targets[3]["measured"] or targets[3]["measured"] == "not measured"
    assert "vsrnet" in targets[0]["measured"] and "x" in targets[1]["measured"]
    summary = (out / "summary.md").read_text()
    assert "| stage | status |" in summary and "dry run" in summary and len(summary.splitlines()) < 40
    with tarfile.open(out / "suite.tar.gz") as tar:
        names = set(tar.getnames())
    for name in ("logs/env.log", "logs/data.log", "logs/tests.log", "logs/loader.log", "logs/train.log",
                 "logs/inference.log", "logs/peers.log", "dataloader_peers.json", "env.json", "gpu_tests.xml", "dataloader_seed.json", "dataloader_seed.png",
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
