"""The NVDEC probe (pipelines.nvdec) on a machine where the GPU decode fails: one line per reader, no exception."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from benchmarks.gpu_suite import ROOT, junit_counts
from vsrvfi.pipelines import nvdec


@pytest.mark.slow
def test_a_failed_decode_is_one_line_naming_the_reader(monkeypatch):
    """torch is made to report a GPU, so the probe really runs DALI's GPU reader in a child process, which
    fails here as it does on a machine whose libnvcuvid loads but cannot decode: the answer says why."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    answer = nvdec.probe_nvdec(readers=("experimental",), timeout=120)
    why = answer["experimental"]
    assert why and why.startswith("NVDEC (experimental reader): ") and "\n" not in why and len(why) < 260, why
    assert "CUDA" in why, why


def test_no_cuda_means_every_reader_is_reported_without_probing():
    if torch.cuda.is_available():
        pytest.skip("a GPU is here")
    answer = nvdec.probe_nvdec()
    assert set(answer) == set(nvdec.READERS) and all("no CUDA device" in v for v in answer.values())


def test_a_probe_handed_down_is_read_back(monkeypatch):
    monkeypatch.setenv(nvdec.PROBE_ENV, json.dumps({"legacy": None, "experimental": "NVDEC (x): y"}))
    assert nvdec.probe_from_env() == {"legacy": None, "experimental": "NVDEC (x): y"}
    monkeypatch.delenv(nvdec.PROBE_ENV)
    assert nvdec.probe_from_env() is None


@pytest.mark.slow
def test_the_gpu_tests_that_need_nvdec_skip_with_the_probes_reason(tmp_path):
    """tests/test_gpu_pipelines.py run as on a GPU (VSRVFI_GPU_TESTS_ON_CPU=1) with the probe the suite hands
    down saying NVDEC failed: every NVDEC test is skipped with that reason, at collection (no data built),
    instead of erroring in the pipeline build; the CPU-decoding test is not among them."""
    why = "NVDEC (legacy reader): RuntimeError: CUDA_ERROR_NO_DEVICE"
    env = dict(os.environ, VSRVFI_GPU_TESTS_ON_CPU="1", PYTHONDONTWRITEBYTECODE="1",
               **{nvdec.PROBE_ENV: json.dumps({"legacy": why, "experimental": why.replace("legacy", "experimental")})})
    junit = tmp_path / "gpu.xml"
    res = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "gpu",
                          "tests/test_gpu_pipelines.py", "-k", "not cpu_decoding", f"--junitxml={junit}"],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    counts = junit_counts(junit)
    assert res.returncode == 0 and counts["failed"] == counts["errors"] == counts["passed"] == 0, res.stdout[-2000:]
    assert counts["skipped"] >= 10
    assert set(counts["skip_reasons"]) == {why, why.replace("legacy", "experimental")}, counts
