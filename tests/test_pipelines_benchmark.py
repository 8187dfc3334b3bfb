"""The loader benchmark runs end to end on a tiny data set and writes its table, JSON and plot."""
from __future__ import annotations

import json

from benchmarks import dali_reader, dali_stages, dataloader


def test_dataloader_benchmark_smoke(tiny_data_dir, tmp_path, capsys):
    out = tmp_path / "bench"
    rc = dataloader.main(["--data", str(tiny_data_dir), "--res", "144p", "--crop", "64", "--batch-size", "2",
                          "--workers", "1", "--iters", "2", "--warmup", "1", "--repeats", "1", "--out", str(out)])
    assert rc == 0
    result = json.loads(out.with_suffix(".json").read_text())
    names = [r["loader"] for r in result["rows"]]
    assert names[0].startswith("ffmpeg decode") and any(n.startswith("DALI CPU") for n in names) and \
        any(n.startswith("PNG") for n in names)
    dali = next(r for r in result["rows"] if r["kind"] == "dali")
    png = next(r for r in result["rows"] if r["kind"] == "png")
    assert dali["frames_per_s"] > 0 and dali["share_decode"] > 0 and png["disk_mb"] > dali["disk_mb"]
    assert out.with_suffix(".png").stat().st_size > 0
    assert "frames/s" in capsys.readouterr().out


def test_reader_benchmark_smoke(tiny_data_dir, capsys):
    assert dali_reader.main(["--data", str(tiny_data_dir), "--res", "144p", "--sequences", "15",
                             "--repeats", "1"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [ln.split()[2] for ln in lines[1:]] == ["in-order", "aligned", "random"]


def test_stage_benchmark_smoke(tiny_data_dir, capsys):
    assert dali_stages.main(["--data", str(tiny_data_dir), "--res", "144p", "--crop", "64", "--clip-run", "1,2",
                             "--frames", "60", "--repeats", "1"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("sr 144p crop (64, 64)")  # the options given, not the preset's
    rows = [ln.split() for ln in lines[2:]]
    assert [r[0] for r in rows] == ["1", "2"]
    for _, reader, whole, _ in rows:
        assert 0 < float(reader) < 1000 and 0 < float(whole) < 1000  # CPU ms per delivered frame
