"""Decode-once preparation (tools/preparation/decode_once.py): the frames scene detection decodes feed
the scene encoders, so a new source is decoded once, and the clips are the per-scene decode's, byte
for byte; what the router cannot vouch for falls back to the per-scene decode."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks.fixtures.clipfactory import ffmpeg
from vsrvfi.core import ffmpeg as core_ffmpeg
from vsrvfi.tools import prepare_data
from vsrvfi.tools.preparation import decode_once
from vsrvfi.tools.preparation.decode_once import Router

PINNED = ["--encoder", "cpu", "--jobs", "1", "--threads", "1", "--preset", "ultrafast", "--codec", "h264",
          "--resolutions", "108p,54p", "--frame-resolutions", "", "--min-scene-len", "8", "--trim", "1"]
SCENES = ("testsrc2=size=192x108:rate=24", "mandelbrot=size=192x108:rate=24", "smptebars=size=192x108:rate=24",
          "testsrc2=size=192x108:rate=24,negate,hflip")


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    """Four 14-frame scenes, keyframes every 10 frames (cuts inside GOPs), tagged BT.709."""
    out = tmp_path_factory.mktemp("src") / "four.mp4"
    inputs = [a for g in SCENES for a in ("-f", "lavfi", "-i", g)]
    graph = "".join(f"[{i}:v]trim=end_frame=14,setpts=PTS-STARTPTS,format=yuv420p[v{i}];" for i in range(len(SCENES)))
    graph += "".join(f"[v{i}]" for i in range(len(SCENES))) + f"concat=n={len(SCENES)}:v=1:a=0[out]"
    ffmpeg(*inputs, "-filter_complex", graph, "-map", "[out]", "-c:v", "libx264", "-threads", "1", "-preset",
           "ultrafast", "-crf", "16", "-g", "10", "-bf", "0", "-colorspace", "bt709", "-color_primaries", "bt709",
           "-color_trc", "bt709", "-color_range", "tv", str(out))
    return out


def _prepare(source: Path, data: Path, monkeypatch, *extra: str) -> tuple[dict, list[list[str]]]:
    """Run vsr-prepare in this process; returns summary.json's this_run and every ffmpeg command it ran."""
    cmds: list[list[str]] = []
    real = core_ffmpeg.popen

    def recording(cmd, path, **kw):
        cmds.append(list(cmd))
        return real(cmd, path, **kw)

    monkeypatch.setattr(core_ffmpeg, "popen", recording)
    assert prepare_data.main([str(source), str(data), *PINNED, *extra]) == 0
    monkeypatch.setattr(core_ffmpeg, "popen", real)
    return json.loads((data / "summary.json").read_text())["this_run"], cmds


def _clips(data: Path) -> dict[str, bytes]:
    return {str(p.relative_to(data)): p.read_bytes() for p in sorted(data.glob("*/scenes/*/*.mp4"))}


def _reads_source(cmds: list[list[str]], source: Path) -> int:
    return sum(1 for c in cmds if str(source) in [c[i + 1] for i, a in enumerate(c[:-1]) if a == "-i"])


def test_decode_once_decodes_the_source_once_and_writes_the_per_scene_bytes(source, tmp_path, monkeypatch):
    once, once_cmds = _prepare(source, tmp_path / "once", monkeypatch)
    per, per_cmds = _prepare(source, tmp_path / "per", monkeypatch, "--decode", "per-scene")
    assert once["decode"] == "auto" and once["scenes_decoded_once"] == 4  # auto: one scene process at once
    assert _reads_source(once_cmds, source) == 0          # no scene process decodes the source again
    assert all("pipe:0" in c for c in once_cmds)
    assert per["scenes_decoded_once"] == 0 and _reads_source(per_cmds, source) == 4
    a, b = _clips(tmp_path / "once"), _clips(tmp_path / "per")
    assert len(a) == 8 and a == b                          # trimmed at every cut, colour tags kept


def test_auto_decodes_per_scene_where_the_machine_runs_more_scene_processes_than_detections(source, tmp_path,
                                                                                          monkeypatch):
    run, cmds = _prepare(source, tmp_path / "two", monkeypatch, "--jobs", "2")  # 2 scene processes, 1 detection
    assert run["scenes_decoded_once"] == 0 and _reads_source(cmds, source) == 4
    forced, cmds = _prepare(source, tmp_path / "forced", monkeypatch, "--jobs", "2", "--decode", "once")
    assert forced["scenes_decoded_once"] == 4 and _reads_source(cmds, source) == 0
    assert _clips(tmp_path / "two") == _clips(tmp_path / "forced")


def test_a_cut_heard_too_late_falls_back_to_the_per_scene_decode(source, tmp_path, monkeypatch):
    def eager(self, settled):  # routes every decoded frame, ignoring the detector's look-back
        with self._lock:
            top = max(self._frames, default=self._next - 1) + 1
        self._route_until(top)

    monkeypatch.setattr(Router, "on_progress", eager)  # so the first cut comes after its frames were encoded
    late, cmds = _prepare(source, tmp_path / "late", monkeypatch)
    monkeypatch.undo()
    per, _ = _prepare(source, tmp_path / "per", monkeypatch, "--decode", "per-scene")
    assert late["scenes_decoded_once"] == 0 and _reads_source(cmds, source) == 4
    assert _clips(tmp_path / "late") == _clips(tmp_path / "per")


class _Feed:
    def __init__(self):
        self.frames, self.state = [], "open"

    def put(self, frame):
        self.frames.append(frame)


class _Format:
    name = "yuv420p"


class _Frame:
    format, width, height = _Format(), 4, 2

    def __init__(self, i):
        self.i = i

    def to_ndarray(self):
        return self.i


def _route(n: int, cuts: dict[int, int], lag: int, trim: int) -> tuple[dict[int, tuple[int, _Feed]], Router]:
    """Drive a Router as detection does: frame p decoded, analysed, the cuts reported at p, then progress."""
    feeds: dict[int, tuple[int, _Feed]] = {}

    def open_scene(i, start):
        feeds[i] = (start, _Feed())
        return feeds[i][1]

    def end(state):
        return lambda i, feed: setattr(feed, "state", state)

    r = Router(open_scene, end("closed"), end("aborted"), trim)
    for p in range(n):
        r.on_frame(p, _Frame(p))
        for c in [c for c, at in cuts.items() if at == p]:
            r.on_cut(c)
        r.on_progress(p + 1 - lag)
    r.finish(n)
    return feeds, r


def test_router_feeds_each_scene_its_trimmed_frames_and_keeps_only_the_look_back():
    feeds, r = _route(40, {12: 14, 25: 30}, lag=6, trim=2)  # cuts reported 2 and 5 frames late (lag 6)
    assert not r.broken
    assert {i: (s, f.frames, f.state) for i, (s, f) in feeds.items()} == {
        0: (0, list(range(0, 10)), "closed"), 1: (14, list(range(14, 23)), "closed"),
        2: (27, list(range(27, 40)), "closed")}
    assert r.peak_buffered <= 6 + 2 + 1                     # frames held: the look-back and the trim


def test_router_stops_at_a_late_cut():
    feeds, r = _route(30, {12: 20}, lag=3, trim=0)          # reported 8 frames after the cut: too late
    assert "cut at frame 12" in r.broken
    assert list(feeds) == [0] and feeds[0][1].state == "aborted"


def test_router_stops_at_a_frame_the_encoders_cannot_take():
    class Odd(_Frame):
        width = 6

    feeds: dict[int, _Feed] = {}
    r = Router(lambda i, start: feeds.setdefault(i, _Feed()), lambda i, f: None,
               lambda i, f: setattr(f, "state", "aborted"), size=(4, 2))
    for p in range(10):
        r.on_frame(p, Odd(p) if p == 5 else _Frame(p))
        r.on_progress(p - 1)
    assert r.broken == "frame 5 is yuv420p 6x2" and feeds[0].frames == [0, 1, 2, 3, 4]
    assert feeds[0].state == "aborted"


def test_feed_drops_frames_once_the_encoder_stopped_reading():
    feed = decode_once.FrameFeed()
    feed.done_reading()
    for i in range(3 * feed.DEPTH):  # would block forever on a full queue otherwise
        feed.put(i)
    feed.close()
    feed.wait_ended()
