"""Data preparation: scene split, transcode, PNG extraction, manifest, resume and bad input."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.clipfactory import DEMO_FPS, DEMO_SCENE_SECONDS, DEMO_SCENES, decode_frames, ffmpeg
from vsrvfi.core import layout
from vsrvfi.core.manifest import load_manifest
from vsrvfi.tools import prepare_data, split_scenes, transcode_scenes
from vsrvfi.core.media import probe

RES = ("180p", "90p")
GOP = 6
SCENE_FRAMES = int(DEMO_FPS * DEMO_SCENE_SECONDS)


@pytest.fixture(scope="module")
def prepared(demo_source, tmp_path_factory) -> Path:
    data = tmp_path_factory.mktemp("data")
    rc = prepare_data.main([str(demo_source), str(data), "--codec", "vp9", "--gop", str(GOP), "--min-scene-len", "0.5s",
                            "--resolutions", ",".join(RES), "--frame-resolutions", "90p", "--val-fraction", "0.25",
                            "--preset", "ultrafast", "--jobs", "2"])
    assert rc == 0
    return data


def test_scenes_found_and_manifest(prepared, demo_source):
    manifest = load_manifest(prepared)
    scenes = manifest["sources"]["demo"]["scenes"]
    assert len(scenes) == DEMO_SCENES
    assert [(s["start_frame"], s["end_frame"]) for s in scenes] == [
        (i * SCENE_FRAMES, (i + 1) * SCENE_FRAMES) for i in range(DEMO_SCENES)]
    for s in scenes:
        assert s["num_frames"] == SCENE_FRAMES and s["fps"] == DEMO_FPS
        assert s["start_time"] == pytest.approx(s["start_frame"] / DEMO_FPS)
        assert s["source"] == str(demo_source) and s["dropped"] is None
    splits = [s["split"] for s in scenes]
    assert splits.count("val") == 1 and splits.count("train") == 3


def test_clips_every_resolution_gop_no_audio(prepared):
    for res in RES:
        clips = layout.list_clips(prepared, res, "train") + layout.list_clips(prepared, res, "val")
        assert len(clips) == DEMO_SCENES
        for clip in clips:
            info = probe(clip)
            assert info.codec == "vp9" and info.pix_fmt == "yuv420p" and not info.has_audio
            assert info.height == int(res[:-1]) and info.width % 2 == 0 and info.height % 2 == 0
            assert abs(info.width / info.height - 16 / 9) < 0.05
            assert info.num_frames == SCENE_FRAMES and not info.is_vfr
            assert info.keyframes == tuple(range(0, SCENE_FRAMES, GOP))
    orig = layout.list_clips(prepared, layout.ORIG, "train")[0]
    assert not probe(orig).has_audio


def test_cuts_are_frame_accurate_with_trim(tmp_path):
    """Every frame of testsrc2 differs (moving parts, a counter); the cut at 24 is to its negative."""
    src = tmp_path / "cuts.mp4"
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=192x108:rate=24", "-t", "2", "-vf",
           "negate=enable='gte(n,24)',format=yuv420p", "-c:v", "libx264", "-g", "100", "-bf", "3", str(src))
    data = tmp_path / "d"
    scenes = split_scenes.split_video(src, data, split_scenes.SplitOptions(min_scene_len="8", trim=2),
                                      show_progress=False)
    assert [(s.start_frame, s.end_frame) for s in scenes] == [(0, 22), (26, 48)]
    source = decode_frames(src).astype(np.float32)
    for s in scenes:
        clip = decode_frames(layout.clip_path(data, layout.ORIG, s.split, s.clip)).astype(np.float32)
        assert len(clip) == s.num_frames
        for k in range(len(clip)):
            errors = [np.abs(clip[k] - f).mean() for f in source]
            assert int(np.argmin(errors)) == s.start_frame + k


def test_png_frames_match_what_dali_decodes(prepared):
    from nvidia.dali import fn, pipeline_def
    from PIL import Image

    clip = layout.list_clips(prepared, "90p", "train")[1]
    folder = layout.frames_dir(prepared, "90p", "train", clip.stem)
    pngs = sorted(folder.glob("*.png"))
    assert [p.name for p in pngs[:2]] == ["000001.png", "000002.png"] and len(pngs) == SCENE_FRAMES

    @pipeline_def(batch_size=1, num_threads=1, device_id=None)
    def pipe():
        return fn.experimental.readers.video(device="cpu", filenames=[str(clip)], sequence_length=SCENE_FRAMES)

    p = pipe()
    p.build()
    dali = p.run()[0].as_array()[0]
    png = np.stack([np.asarray(Image.open(f).convert("RGB")) for f in pngs])
    assert np.abs(png.astype(int) - dali.astype(int)).max() <= 1  # same YUV->RGB conversion as DALI
    assert not (prepared / "180p" / "frames").exists()  # only the asked resolutions


def test_summary_reports_bytes(prepared):
    summary = json.loads((prepared / "summary.json").read_text())
    r = summary["resolutions"]["90p"]
    assert r["clips"] == DEMO_SCENES and r["png_bytes"] > r["clip_bytes"] > 0
    assert summary["scenes_kept"] == DEMO_SCENES and set(summary["stage_seconds"]) == {"split", "transcode", "extract"}


def test_dali_cpu_reader_reads_vp9_clips(prepared):
    from nvidia.dali import fn, pipeline_def

    clips = [str(p) for p in layout.list_clips(prepared, "90p", "train")]

    @pipeline_def(batch_size=2, num_threads=1, device_id=None, seed=1)
    def pipe():
        return fn.experimental.readers.video(device="cpu", filenames=clips, sequence_length=5, name="r")

    p = pipe()
    p.build()
    (out,) = p.run()
    arr = out.as_array()
    assert arr.shape == (2, 5, 90, 160, 3) and arr.dtype == np.uint8 and arr.std() > 1


def test_rerun_resumes_and_repairs(prepared):
    clips = layout.list_clips(prepared, "180p", "train")
    untouched, deleted, truncated = clips[0], clips[1], clips[2]
    mtime = untouched.stat().st_mtime_ns
    deleted.unlink()
    truncated.write_bytes(truncated.read_bytes()[:500])
    counts = transcode_scenes.transcode(prepared, transcode_scenes.TranscodeOptions(
        resolutions=RES, codec="vp9", gop=GOP, preset="ultrafast"), show_progress=False)
    assert counts == {r: DEMO_SCENES for r in RES}
    assert untouched.stat().st_mtime_ns == mtime
    assert probe(deleted).num_frames == SCENE_FRAMES and probe(truncated).num_frames == SCENE_FRAMES
    assert not list(prepared.rglob(".*.tmp.*"))


def test_failed_write_leaves_no_partial_file(prepared, monkeypatch):
    clip = layout.list_clips(prepared, "90p", "val")[0]
    clip.unlink()

    written = []

    def boom(args, output, on_frames=None, threads=None):
        written.append(output)
        tmp = next(Path(a) for a in args if ".tmp." in a)
        tmp.write_bytes(b"partial")  # the temporary exists, half written, when the run dies
        raise KeyboardInterrupt

    monkeypatch.setattr(transcode_scenes, "run_ffmpeg", boom)
    with pytest.raises(KeyboardInterrupt):
        transcode_scenes.transcode(prepared, transcode_scenes.TranscodeOptions(
            resolutions=("90p",), codec="vp9", gop=GOP, jobs=1), show_progress=False)
    assert written and not clip.exists() and not list(clip.parent.glob(".*"))


def test_rerun_split_with_other_options_refuses(prepared, demo_source, capsys):
    from vsrvfi.core.cli import run_cli

    clip = layout.list_clips(prepared, layout.ORIG, "train")[0]
    mtime = clip.stat().st_mtime_ns
    same = ["--min-scene-len", "0.5s", "--val-fraction", "0.25"]
    assert run_cli(split_scenes.main, [str(demo_source), str(prepared), *same]) == 0  # resumes, nothing to do
    assert clip.stat().st_mtime_ns == mtime
    capsys.readouterr()

    rc = run_cli(split_scenes.main, [str(demo_source), str(prepared), "--threshold", "10"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "different options" in err and len(err.splitlines()) == 1


# ----------------------------------------------------------------------------------------- bad input

def _split_error(video: Path, data: Path, capsys, *extra: str) -> str:
    from vsrvfi.core.cli import run_cli

    rc = run_cli(split_scenes.main, [str(video), str(data), *extra])
    lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("error:")]
    assert rc == 2 and len(lines) == 1, lines  # progress bars may precede the one error line
    assert str(video) in lines[0] or str(data) in lines[0]
    return lines[0]


def test_missing_file(tmp_path, capsys):
    assert "no such file" in _split_error(tmp_path / "nope.mp4", tmp_path / "d", capsys)


def test_not_a_video(tmp_path, capsys):
    bad = tmp_path / "notes.mp4"
    bad.write_text("this is not a video\n" * 50)
    assert "not a video" in _split_error(bad, tmp_path / "d", capsys)


def test_corrupt_video(tmp_path, demo_source, capsys):
    bad = tmp_path / "corrupt.mp4"
    data = demo_source.read_bytes()
    bad.write_bytes(data[: len(data) // 3])  # moov atom at the front (faststart), media data cut
    assert "corrupt or truncated" in _split_error(bad, tmp_path / "d", capsys)


def test_audio_only(tmp_path, capsys):
    audio = tmp_path / "tone.m4a"
    ffmpeg("-f", "lavfi", "-i", "sine=frequency=300", "-t", "1", str(audio))
    assert "no video stream" in _split_error(audio, tmp_path / "d", capsys)


def test_single_frame(tmp_path, capsys):
    one = tmp_path / "one.mp4"
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=128x96:rate=24", "-frames:v", "1", "-pix_fmt", "yuv420p", str(one))
    assert "too short" in _split_error(one, tmp_path / "d", capsys)


def test_tiny_video(tmp_path, capsys):
    tiny = tmp_path / "tiny.mp4"
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=16x16:rate=24", "-t", "1", "-pix_fmt", "yuv420p", str(tiny))
    assert "too small" in _split_error(tiny, tmp_path / "d", capsys)


def test_unwritable_data_dir(tmp_path, demo_source, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert "cannot write" in _split_error(demo_source, blocker / "data", capsys)


def test_all_scenes_too_short(tmp_path, demo_source, capsys):
    assert "lower --min-scene-len" in _split_error(demo_source, tmp_path / "d", capsys, "--min-scene-len", "5s")


def test_no_cut_keeps_one_scene(tmp_path):
    src = tmp_path / "oneshot.mp4"
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=160x96:rate=24", "-t", "1", "-pix_fmt", "yuv420p", str(src))
    scenes = split_scenes.split_video(src, tmp_path / "d", split_scenes.SplitOptions(min_scene_len="12"),
                                      show_progress=False)
    assert len(scenes) == 1 and scenes[0].num_frames == 24 and scenes[0].split == "train"
    assert layout.clip_path(tmp_path / "d", layout.ORIG, "train", "oneshot-s0000").exists()


@pytest.mark.parametrize("kind", ["vfr", "10bit_hdr", "odd_size"])
def test_inputs_normalised(tmp_path, kind):
    src = tmp_path / f"{kind}.mkv"
    if kind == "vfr":  # 8 frames at 1/24 s, then 8 at 1/12 s
        ffmpeg("-f", "lavfi", "-i", "testsrc2=size=160x96:rate=24", "-t", "1",
               "-vf", "setpts='if(lt(N\\,8)\\,N/24\\,(N-4)/12)/TB'",
               "-fps_mode", "vfr", "-pix_fmt", "yuv420p", "-c:v", "libx264", str(src))
    elif kind == "10bit_hdr":
        ffmpeg("-f", "lavfi", "-i", "testsrc2=size=160x96:rate=24", "-t", "1", "-pix_fmt", "yuv420p10le",
               "-c:v", "libx265", "-x265-params", "log-level=error", "-color_trc", "smpte2084",
               "-color_primaries", "bt2020", "-colorspace", "bt2020nc", str(src))
    else:
        ffmpeg("-f", "lavfi", "-i", "testsrc2=size=161x97:rate=24", "-t", "1", "-pix_fmt", "yuv444p",
               "-c:v", "libx264", str(src))
    before = src.read_bytes()
    info = probe(src)
    assert split_scenes.needs_normalizing(info), info
    data = tmp_path / "d"
    scenes = split_scenes.split_video(src, data, split_scenes.SplitOptions(min_scene_len="4"), show_progress=False)
    clip = layout.clip_path(data, layout.ORIG, scenes[0].split, scenes[0].clip)
    out = probe(clip)
    assert out.pix_fmt == "yuv420p" and out.bit_depth == 8 and not out.is_vfr and not out.is_hdr
    assert out.width % 2 == 0 and out.height % 2 == 0 and out.num_frames == scenes[0].num_frames
    assert src.read_bytes() == before  # the source is never modified
