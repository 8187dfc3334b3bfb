"""The planner decides without writing and the executor does what it decided, through the engine seam.

Fast: no video is decoded or encoded (the sources are files with made-up probes)."""
from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import pytest

from vsrvfi.core import layout
from vsrvfi.core.errors import UsageError
from vsrvfi.core.manifest import DropSource, SetOptions, load_manifest, manifest_path
from vsrvfi.core.media import VideoInfo
from vsrvfi.tools.encoding.codecs import TranscodeOptions
from vsrvfi.tools.encoding.command import SceneJob, make_tiers
from vsrvfi.tools.encoding.encoders import Backend
from vsrvfi.tools.encoding.sizing import Parallelism
from vsrvfi.tools.preparation import executor
from vsrvfi.tools.preparation.planner import plan_run
from vsrvfi.tools.preparation.scenes import SplitOptions

OPTS = TranscodeOptions(resolutions=("90p",), codec="vp9")


def info(path: Path, height: int = 180) -> VideoInfo:
    return VideoInfo(str(path), "h264", height * 16 // 9, height, Fraction(24), 48, 2.0, "yuv420p", 8, False, False,
                     False, (0,))


def prepared_set(tmp_path: Path) -> tuple[Path, Path, list[Path]]:
    """A data set whose manifest records `cam.mp4` with another fingerprint (the file was replaced)."""
    data, src = tmp_path / "data", tmp_path / "cam.mp4"
    src.write_bytes(b"new content")
    scene = {"clip": "cam-s0000", "source": str(src), "index": 0, "start_frame": 0, "end_frame": 48, "start_time": 0.0,
             "end_time": 2.0, "fps": 24.0, "num_frames": 48, "split": "train", "dropped": None}
    record = {"path": str(src.resolve()), "fingerprint": "old", "info": {"width": 320, "height": 180, "fps": 24.0},
              "options": {**SplitOptions().__dict__}, "normalized": False, "scenes": [scene]}
    data.mkdir()
    manifest_path(data).write_text(json.dumps({"version": 1, "sources": {"cam": record}}))
    files = [layout.clip_path(data, "90p", "train", "cam-s0000"), layout.frames_dir(data, "90p", "train", "cam-s0000")]
    files[0].parent.mkdir(parents=True)
    files[0].write_bytes(b"clip")
    files[1].mkdir(parents=True)
    (files[1] / "000001.png").write_bytes(b"png")
    return data, src, files


def test_the_plan_writes_nothing_and_the_executor_does_what_it_lists(tmp_path):
    data, src, files = prepared_set(tmp_path)
    before = manifest_path(data).read_text()
    with pytest.raises(UsageError, match="changed since"):  # without --force: refused, nothing touched
        plan_run(data, load_manifest(data), {src: info(src)}, SplitOptions(), OPTS, False, force=False)
    plan = plan_run(data, load_manifest(data), {src: info(src)}, SplitOptions(), OPTS, False, force=True)
    assert sorted(plan.removals) == sorted(files) and all(p.exists() for p in files)
    assert manifest_path(data).read_text() == before
    assert [type(c) for c in plan.changes] == [DropSource, SetOptions] and [s.key for s in plan.sources] == ["cam"]
    executor.start_run(data, plan)
    assert not any(p.exists() for p in files)
    m = load_manifest(data)
    assert m.sources == {} and m.options.resolutions == ["90p"] and m.force_pending is False


class RecordingEngine:
    """A stand-in engine (as a Ray engine would be): takes the jobs, 'writes' one clip per tier."""

    instances: list["RecordingEngine"] = []

    def __init__(self, data_dir, backend, par, scaler, show_progress, desc=""):
        self.par, self.written, self.jobs, self.closed = par, {}, [], False
        RecordingEngine.instances.append(self)

    def submit(self, job: SceneJob) -> object:
        self.jobs.append(job)
        for t in job.tiers:
            self.written[t.name] = self.written.get(t.name, 0) + 1
        return job

    def discard(self, handle) -> None: ...
    def set_splits(self, splits) -> None: ...

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.closed = True


def test_jobs_run_on_whichever_engine_is_registered(tmp_path, monkeypatch):
    monkeypatch.setitem(executor.ENGINES, "local", RecordingEngine)
    backend = Backend("cpu", "vp9", "libvpx-vp9", "test")
    tiers, _ = make_tiers(OPTS, backend, 320, 180)
    jobs = [SceneJob(Path("s.mp4"), f"c{i}", 0, 10, 24.0, tuple(tiers), "train") for i in range(3)]
    written = executor.run_jobs(tmp_path, backend, Parallelism(1, 1, 0, 2), jobs, "lanczos", show_progress=False)
    engine = RecordingEngine.instances[-1]
    assert engine.jobs == jobs and engine.closed and written == {"90p": 3}
