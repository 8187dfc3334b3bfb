"""Real footage in: any source size, many sources (files and folders) into one data set, sources added
later, option changes refused or forced, and bad sources as one line before anything is written."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from tests.clipfactory import ffmpeg
from vsrvfi.core import layout
from vsrvfi.core.cli import run_cli
from vsrvfi.core.manifest import load_manifest
from vsrvfi.core.media import probe
from vsrvfi.tools import prepare_data
from vsrvfi.tools.demo_video import make_demo_video

FAST = ["--codec", "vp9", "--preset", "ultrafast", "--min-scene-len", "6", "--jobs", "1"]


def source(path: Path, size: str, fps: int = 24, scenes: int = 2, seconds: float = 0.5, seed: int = 0) -> Path:
    """A small real-looking video with hard cuts (the demo's photo and terrain scenes)."""
    w, h = (int(v) for v in size.split("x"))
    return make_demo_video(path, w, h, fps, seconds, scenes, seed, overwrite=True)


def prepare(*args: str) -> tuple[int, str]:
    import contextlib
    import io

    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        rc = run_cli(prepare_data.main, [*map(str, args)])
    return rc, err.getvalue().strip()


def clip_hashes(data: Path) -> dict[str, str]:
    return {str(p.relative_to(data)): hashlib.sha1(p.read_bytes()).hexdigest()
            for p in sorted(data.glob("*/scenes/*/*.mp4"))}


def clip_bytes(data: Path) -> int:
    return sum(p.stat().st_size for p in data.glob("*/scenes/*/*.mp4"))


@pytest.fixture(scope="module")
def wide(tmp_path_factory) -> Path:
    """640x272 (2.35:1, below every standard tier), with an audio track as camera files have."""
    d = tmp_path_factory.mktemp("wide")
    silent = source(d / "silent.mp4", "640x272", scenes=2, seed=1)
    out = d / "wide.mp4"
    ffmpeg("-i", str(silent), "-f", "lavfi", "-i", "sine=f=440:d=2", "-shortest", "-c:v", "copy", "-c:a", "aac",
           str(out))
    silent.unlink()
    return out


def test_a_640x272_source_gets_its_own_tier_and_loads_without_naming_it(wide, tmp_path):
    data = tmp_path / "d"
    rc, err = prepare(wide, data, *FAST)
    assert rc == 0, err
    assert probe(wide).has_audio
    clips = layout.list_clips(data, "272p", "train") + layout.list_clips(data, "272p", "val")
    assert len(clips) == 2 and not any(probe(c).has_audio for c in clips)
    assert (probe(clips[0]).width, probe(clips[0]).height) == (640, 272)
    assert [p.name for p in data.iterdir() if p.is_dir()] == ["272p"]  # no empty standard tiers
    assert layout.list_frame_dirs(data, "272p", "train")  # PNG frames follow the tier that exists
    summary = json.loads((data / "summary.json").read_text())
    assert list(summary["resolutions"]) == ["272p"] and summary["resolutions"]["272p"]["clips"] == 2
    # data.res not given: the trainer's config picks the tier the data set has, and its DALI CPU
    # loader gives a batch of that tier's frames (a trainer run on an imported set: test_import_frames)
    from vsrvfi.pipelines import build_loader
    from vsrvfi.trainers.config import load_config
    from vsrvfi.trainers.schema import loader_options

    cfg = load_config("vsrnet", [f"data.dir={data}", "data.device=cpu", "data.crop=64", "data.batch_size=2"])
    assert cfg.data.res == "272p"
    batch = next(iter(build_loader(loader_options(cfg.data, task="sr", split="train", neighbors=1, scale=4))))
    assert tuple(batch["hr"].shape[-2:]) == (64, 64) and batch["hr"].shape[0] == 2


def test_sources_and_folders_into_one_data_set_and_a_third_added_later(tmp_path):
    a = source(tmp_path / "src" / "a.mp4", "320x180", fps=24, seed=2)
    footage = tmp_path / "footage"
    source(footage / "day1" / "cam.mp4", "384x216", fps=30, seed=3)  # two files named cam.mp4
    source(footage / "day2" / "cam.mp4", "320x180", fps=25, seed=4)
    (footage / "notes.txt").write_text("not a video")
    data = tmp_path / "d"
    rc, err = prepare(a, footage, data, *FAST, "--resolutions", "180p,90p")
    assert rc == 0, err
    manifest = load_manifest(data)
    assert set(manifest.sources) == {"a", "cam", "day2-cam"}
    for key, rec in manifest.sources.items():
        assert all(s.clip.startswith(f"{key}-s") for s in rec.scenes)
        assert Path(rec.path).name.endswith(".mp4")
    fps = {key: {s.fps for s in rec.scenes} for key, rec in manifest.sources.items()}
    assert fps == {"a": {24}, "cam": {30}, "day2-cam": {25}}  # mixed rates: per scene
    n_scenes = sum(len(r.scenes) for r in manifest.sources.values())
    for res in ("180p", "90p"):
        assert len(layout.list_clips(data, res, "train")) + len(layout.list_clips(data, res, "val")) == n_scenes
    before, splits = clip_hashes(data), {k: [s.split for s in r.scenes] for k, r in manifest.sources.items()}

    # a rerun with the same command does nothing
    rc, err = prepare(a, footage, data, *FAST, "--resolutions", "180p,90p")
    assert rc == 0 and clip_hashes(data) == before

    # a third source later: only it is prepared, every old clip is byte-identical and keeps its split
    c = source(tmp_path / "new" / "c.mp4", "320x180", fps=24, scenes=3, seed=5)
    rc, err = prepare(c, data, *FAST)  # --resolutions auto: the data set's own tiers
    assert rc == 0, err
    after = clip_hashes(data)
    assert {k: v for k, v in after.items() if k in before} == before
    assert {Path(k).stem for k in set(after) - set(before)} == {f"c-s{i:04d}" for i in range(3)}
    manifest = load_manifest(data)
    assert {k: [s.split for s in r.scenes] for k, r in manifest.sources.items() if k != "c"} == splits
    summary = json.loads((data / "summary.json").read_text())
    assert {r["key"] for r in summary["sources"]} == {"a", "cam", "day2-cam", "c"}
    assert summary["this_run"]["sources"] == ["c"] and summary["this_run"]["clips_written"] == {"180p": 3, "90p": 3}


def test_auto_tiers_fit_every_source_and_a_smaller_one_later_is_refused(tmp_path):
    big = source(tmp_path / "big.mp4", "1280x720", seconds=0.3, seed=6)
    mid = source(tmp_path / "mid.mp4", "960x540", seconds=0.3, seed=7)
    data = tmp_path / "d"
    rc, err = prepare(big, mid, data, *FAST, "--min-scene-len", "4", "--frame-resolutions", "")
    assert rc == 0, err
    assert load_manifest(data).options.resolutions == ["540p"]  # 720p would not fit mid.mp4
    small = source(tmp_path / "small.mp4", "640x272", seconds=0.3, seed=8)
    before = clip_hashes(data)
    rc, err = prepare(small, data, *FAST, "--min-scene-len", "4")
    assert rc == 2 and len(err.splitlines()) == 1
    assert "small.mp4: 640x272 is below every tier of" in err and "540p" in err
    assert clip_hashes(data) == before and "small" not in load_manifest(data).sources


def test_option_changes_are_refused_naming_the_option_and_force_reencodes(wide, tmp_path):
    data = tmp_path / "d"
    assert prepare(wide, data, *FAST, "--frame-resolutions", "")[0] == 0
    before, bytes_before = clip_hashes(data), clip_bytes(data)
    rc, err = prepare(wide, data, *FAST, "--crf", "40")
    assert rc == 2 and len(err.splitlines()) == 1 and "--crf 24 -> 40" in err and "--force" in err
    assert clip_hashes(data) == before
    rc, err = prepare(wide, data, *[a for a in FAST if a not in ("--codec", "vp9")])
    assert rc == 2 and "--codec 'vp9' -> 'h264'" in err
    rc, err = prepare(wide, data, *FAST, "--seed", "5")
    assert rc == 2 and "--seed 0 -> 5" in err
    rc, err = prepare(wide, data, *FAST, "--crf", "40", "--force", "--frame-resolutions", "")
    assert rc == 0, err
    after = clip_hashes(data)
    assert set(after) == set(before) and all(after[k] != before[k] for k in before)
    assert clip_bytes(data) < bytes_before  # CRF 40: smaller clips
    assert load_manifest(data).options.crf == 40 and not load_manifest(data).force_pending
    assert prepare(wide, data, *FAST, "--crf", "40")[0] == 0  # the new options are the data set's now


def test_a_changed_source_file_is_refused_unless_forced(tmp_path):
    src = source(tmp_path / "take.mp4", "320x180", seed=9)
    data = tmp_path / "d"
    assert prepare(src, data, *FAST, "--frame-resolutions", "")[0] == 0
    source(src, "320x180", scenes=3, seed=10)  # the file is replaced by another take under the same name
    rc, err = prepare(src, data, *FAST)
    assert rc == 2 and "take.mp4: changed since" in err and "--force" in err
    rc, err = prepare(src, data, *FAST, "--force", "--frame-resolutions", "")
    assert rc == 0, err
    assert len(load_manifest(data).sources["take"].scenes) == 3
    assert len(list(data.glob("*/scenes/*/take-s*.mp4"))) == 3


def test_bad_sources_are_one_line_before_data_dir_exists(tmp_path, wide):
    data = tmp_path / "d"
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "readme.txt").write_text("x")
    still = tmp_path / "still.png"
    ffmpeg("-f", "lavfi", "-i", "testsrc2=s=320x180", "-frames:v", "1", str(still))
    tiny = tmp_path / "tiny.mp4"
    ffmpeg("-f", "lavfi", "-i", "testsrc2=s=96x54:d=1", "-pix_fmt", "yuv420p", str(tiny))
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    cases = {
        (str(empty),): "no videos in this folder",
        (str(still),): "a still image (png), not a video",
        (str(tiny),): "too small (96x54) for a training crop",
        (str(tmp_path / "missing.mp4"),): "no such file or folder",
        (str(wide), "--resolutions", "999x"): "'999x' is not a resolution",
        (str(wide), "--resolutions", "271p"): "271p is odd",
        (str(wide), "--crf", "70"): "--crf 70: out of range for vp9 (0..63)",
        (str(wide), "--frame-resolutions", "big"): "--frame-resolutions 'big'",
    }
    for args, problem in cases.items():
        rc, err = prepare(args[0], data, *FAST, *args[1:])
        assert rc == 2 and len(err.splitlines()) == 1 and problem in err, (args, err)
        assert not data.exists(), args
    rc, err = prepare(wide, a_file, *FAST)
    assert rc == 2 and "is a file; the last argument is DATA_DIR" in err


def test_vsr_transcode_adds_a_tier_only_with_the_data_sets_encoding(wide, tmp_path):
    from vsrvfi.tools import transcode_scenes

    data = tmp_path / "d"
    assert prepare(wide, data, *FAST, "--frame-resolutions", "")[0] == 0
    rc = run_cli(transcode_scenes.main, [str(data), "--resolutions", "136p"])  # h264 by default
    assert rc == 2 and "136p" not in [p.name for p in data.iterdir()]
    assert run_cli(transcode_scenes.main, [str(data), "--resolutions", "136p", "--codec", "vp9",
                                           "--preset", "ultrafast"]) == 0
    assert load_manifest(data).options.resolutions == ["272p", "136p"]
    assert len(layout.list_clips(data, "136p", "train") + layout.list_clips(data, "136p", "val")) == 2
    before = clip_hashes(data)
    rc, err = prepare(wide, data, *FAST, "--frame-resolutions", "")  # auto: the data set's tiers, both complete
    assert rc == 0 and clip_hashes(data) == before
