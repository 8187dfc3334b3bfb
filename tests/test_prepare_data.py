"""Data preparation: scene split, transcode, PNG extraction, manifest, resume and bad input."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from benchmarks.fixtures.clipfactory import DEMO_FPS, DEMO_SCENE_SECONDS, DEMO_SCENES, decode_frames, ffmpeg
from vsrvfi.core import layout
from vsrvfi.core.manifest import load_manifest
from vsrvfi.tools import prepare_data, split_scenes, transcode_scenes
from vsrvfi.tools.encoding import command, encoders, normalize, sizing
from vsrvfi.tools.preparation import executor, local
from vsrvfi.core.media import probe

RES = ("180p", "90p")
GOP = 6
SCENE_FRAMES = int(DEMO_FPS * DEMO_SCENE_SECONDS)


@pytest.fixture(scope="module")
def prepared(demo_source, tmp_path_factory) -> Path:
    data = tmp_path_factory.mktemp("data")
    rc = prepare_data.main([str(demo_source), str(data), "--codec", "vp9", "--gop", str(GOP), "--min-scene-len", "0.5s",
                            "--resolutions", ",".join(RES), "--frame-resolutions", "90p", "--val-fraction", "0.25",
                            "--preset", "ultrafast", "--jobs", "2", "--keep-orig"])
    assert rc == 0
    return data


def test_scenes_found_and_manifest(prepared, demo_source):
    manifest = load_manifest(prepared)
    scenes = manifest.sources["demo"].scenes
    assert len(scenes) == DEMO_SCENES
    assert [(s.start_frame, s.end_frame) for s in scenes] == [
        (i * SCENE_FRAMES, (i + 1) * SCENE_FRAMES) for i in range(DEMO_SCENES)]
    for s in scenes:
        assert s.num_frames == SCENE_FRAMES and s.fps == DEMO_FPS
        assert s.start_time == pytest.approx(s.start_frame / DEMO_FPS)
        assert s.source == str(demo_source) and s.dropped is None
    splits = [s.split for s in scenes]
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
    assert summary["scenes_kept"] == DEMO_SCENES
    assert set(summary["stage_seconds"]) == {"detect", "encode", "detect+encode", "extract"}
    assert summary["encoder"].startswith("libvpx-vp9 (CPU)") and summary["orig_bytes"] > 0


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

    def boom(args, output, on_frames=None, threads=None, stop=None):
        written.append(output)
        tmp = next(Path(a) for a in args if ".tmp." in a)
        tmp.write_bytes(b"partial")  # the temporary exists, half written, when the run dies
        raise KeyboardInterrupt

    monkeypatch.setattr(local, "run_ffmpeg", boom)
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
    assert rc == 2 and "other options" in err and "--threshold None -> 10.0" in err and len(err.splitlines()) == 1


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
    assert normalize.needs_normalizing(info), info
    data = tmp_path / "d"
    scenes = split_scenes.split_video(src, data, split_scenes.SplitOptions(min_scene_len="4"), show_progress=False)
    clip = layout.clip_path(data, layout.ORIG, scenes[0].split, scenes[0].clip)
    out = probe(clip)
    assert out.pix_fmt == "yuv420p" and out.bit_depth == 8 and not out.is_vfr and not out.is_hdr
    assert out.width % 2 == 0 and out.height % 2 == 0 and out.num_frames == scenes[0].num_frames
    assert src.read_bytes() == before  # the source is never modified


# ------------------------------------------------------------------------------ one pass per scene

def _cut_source(path: Path) -> Path:
    """testsrc2 (every frame differs) cut to its negative at frame 24, B-frames, keyframes every 100 frames:
    both cuts fall inside a GOP."""
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=192x108:rate=24", "-t", "2", "-vf",
           "negate=enable='gte(n,24)',format=yuv420p", "-c:v", "libx264", "-g", "100", "-bf", "3", str(path))
    return path


@pytest.mark.parametrize("codec", ["h264", "vp9"])
def test_one_pass_equals_tiers_made_one_by_one(tmp_path, codec):
    """Every tier of a scene from one ffmpeg process decodes to the same frames as that tier made alone,
    and the tier of the source's own size (no scaler) holds exactly the scene's source frames."""
    from vsrvfi.core.ffmpeg import run_ffmpeg

    src = _cut_source(tmp_path / "cuts.mp4")
    data = tmp_path / "d"
    t_opts = transcode_scenes.TranscodeOptions(resolutions=("108p", "54p"), codec=codec, gop=GOP,
                                               preset="ultrafast", jobs=1, threads=1)
    result = split_scenes.prepare_scenes(src, data, split_scenes.SplitOptions(min_scene_len="8", trim=2), t_opts,
                                         show_progress=False)
    scenes = [s for s in result.scenes if not s.dropped]
    assert [(s.start_frame, s.end_frame) for s in scenes] == [(0, 22), (26, 48)]
    assert not (data / layout.ORIG).exists()  # no full-resolution intermediate unless asked
    assert result.clips_written == {"108p": 2, "54p": 2}

    tiers, _ = command.make_tiers(t_opts, result.backend, 192, 108)
    assert [(t.name, t.width, t.height, t.scale) for t in tiers] == [("108p", 192, 108, False), ("54p", 96, 54, True)]
    source = decode_frames(src).astype(np.float32)
    for s in scenes:
        for tier in tiers:
            clip = layout.clip_path(data, tier.name, s.split, s.clip)
            alone = tmp_path / f"alone-{tier.name}-{s.clip}.mp4"
            job = command.SceneJob(src, s.clip, s.start_frame, s.num_frames, s.fps, (tier,))
            run_ffmpeg(command.scene_command(job, [alone], threads=1), alone)
            one_pass, by_itself = decode_frames(clip), decode_frames(alone)
            assert one_pass.shape == by_itself.shape and np.array_equal(one_pass, by_itself), (tier.name, s.clip)
            info = probe(clip)
            assert info.keyframes == tuple(range(0, s.num_frames, GOP)) and info.num_frames == s.num_frames
        full = decode_frames(layout.clip_path(data, "108p", s.split, s.clip)).astype(np.float32)
        for k in range(len(full)):  # frame-accurate: frame k of the clip is source frame start + k
            assert int(np.argmin([np.abs(full[k] - f).mean() for f in source])) == s.start_frame + k


@pytest.mark.parametrize("kind", ["ntsc.mkv", "offset.mp4", "stream.ts"])
def test_one_pass_cuts_are_frame_accurate_with_odd_timestamps(tmp_path, kind):
    """29.97 fps with millisecond timestamps (Matroska), a first frame at 1.3 s (MP4 edit list), MPEG-TS
    (timestamps from 1.4 s): each scene still holds exactly its source frames."""
    src = tmp_path / kind
    rate = "30000/1001" if kind == "ntsc.mkv" else "24"
    extra = ["-output_ts_offset", "1.3"] if kind == "offset.mp4" else []
    ffmpeg("-f", "lavfi", "-i", f"testsrc2=size=192x108:rate={rate}", "-frames:v", "48", "-vf",
           "negate=enable='gte(n,24)',format=yuv420p", "-c:v", "libx264", "-g", "100", "-bf", "3", *extra, str(src))
    info = probe(src)
    assert not normalize.needs_normalizing(info) and (info.start_time > 1 or kind == "ntsc.mkv")
    data = tmp_path / "d"
    t_opts = transcode_scenes.TranscodeOptions(resolutions=("108p",), codec="h264", gop=GOP, preset="ultrafast")
    result = split_scenes.prepare_scenes(src, data, split_scenes.SplitOptions(min_scene_len="8", trim=2), t_opts,
                                         show_progress=False)
    scenes = [s for s in result.scenes if not s.dropped]
    assert [(s.start_frame, s.end_frame) for s in scenes] == [(0, 22), (26, 48)]
    source = decode_frames(src).astype(np.float32)
    for s in scenes:
        clip = decode_frames(layout.clip_path(data, "108p", s.split, s.clip)).astype(np.float32)
        assert len(clip) == s.num_frames
        for k in range(len(clip)):
            assert int(np.argmin([np.abs(clip[k] - f).mean() for f in source])) == s.start_frame + k


def test_tier_crf_and_orig_crf_are_separate(tmp_path, demo_source):
    """--crf (tiers, default 18 for H.264) and --orig-crf (orig/, default 10) no longer share one value."""
    data = tmp_path / "d"
    assert prepare_data.main([str(demo_source), str(data), "--resolutions", "90p", "--frame-resolutions", "",
                              "--min-scene-len", "0.5s", "--preset", "ultrafast", "--keep-orig",
                              "--encoder", "cpu"]) == 0
    tier = layout.list_clips(data, "90p", "train")[0].read_bytes()
    orig = layout.list_clips(data, layout.ORIG, "train")[0].read_bytes()
    assert b"crf=18.0" in tier and b"crf=10.0" not in tier  # x264 writes its settings into the stream
    assert b"crf=10.0" in orig
    summary = json.loads((data / "summary.json").read_text())
    assert summary["encoder"].startswith("libx264 (CPU): --encoder cpu")


def test_interrupted_during_detection_leaves_nothing_and_reruns(tmp_path, demo_source, monkeypatch):
    """Scenes encoded while detection runs wait under temporary names; an interruption removes them."""
    real = executor.detect
    cuts = []

    def interrupted(path, opts, fps, show_progress=True, on_cut=None, **hooks):
        def cut(frame):
            on_cut(frame)
            cuts.append(frame)
            if len(cuts) == 2:
                raise KeyboardInterrupt
        return real(path, opts, fps, show_progress, on_cut=cut, **hooks)

    monkeypatch.setattr(executor, "detect", interrupted)
    data = tmp_path / "d"
    t_opts = transcode_scenes.TranscodeOptions(resolutions=("90p",), codec="vp9", gop=GOP, preset="ultrafast")
    opts = split_scenes.SplitOptions(min_scene_len="0.5s")
    with pytest.raises(KeyboardInterrupt):
        split_scenes.prepare_scenes(demo_source, data, opts, t_opts, show_progress=False)
    assert not (data / layout.MANIFEST).exists() and not [p for p in data.rglob("*") if p.is_file()]
    monkeypatch.setattr(executor, "detect", real)
    result = split_scenes.prepare_scenes(demo_source, data, opts, t_opts, show_progress=False)
    assert result.clips_written == {"90p": DEMO_SCENES}


def test_resume_after_sigterm(tmp_path, demo_source):
    """A prepare_data run stopped by SIGTERM while encoding keeps its finished clips, leaves no temporary,
    and the rerun encodes only what is missing."""
    import os
    import signal
    import subprocess
    import sys
    import time

    root = Path(__file__).resolve().parents[1]
    data = tmp_path / "d"
    cmd = [sys.executable, "-m", "vsrvfi.tools.prepare_data", str(demo_source), str(data), "--resolutions",
           "180p,90p", "--frame-resolutions", "", "--min-scene-len", "0.5s", "--val-fraction", "0.25",
           "--preset", "slower", "--jobs", "1", "--encoder", "cpu"]
    proc = subprocess.Popen(cmd, cwd=root, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(root)})
    deadline = time.monotonic() + 300
    while not list(data.glob("90p/scenes/*/*.mp4")) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)
    err = proc.communicate(timeout=120)[1]
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert "interrupted by SIGTERM" in err
    done = {p: p.stat().st_mtime_ns for p in data.glob("*/scenes/*/*.mp4")}
    assert 1 <= len(done) < 2 * DEMO_SCENES and not list(data.rglob(".*.tmp.*"))

    assert prepare_data.main(cmd[3:]) == 0
    for p, mtime in done.items():
        assert p.stat().st_mtime_ns == mtime  # finished clips are not redone
    for res in ("180p", "90p"):
        clips = layout.list_clips(data, res, "train") + layout.list_clips(data, res, "val")
        assert len(clips) == DEMO_SCENES and all(probe(c).num_frames == SCENE_FRAMES for c in clips)
    assert not list(data.rglob(".*.tmp.*"))


# ---------------------------------------------------------------------------- encoders and commands

def _arg(args: list[str], flag: str, start: int = 0) -> str:
    return args[args.index(flag, start) + 1]


def test_cpu_scene_command():
    opts = transcode_scenes.TranscodeOptions(resolutions=("1080p", "540p"), codec="h264", gop=4)
    backend = encoders.Backend("cpu", "h264", "libx264", "test")
    tiers, warnings = command.make_tiers(opts, backend, 3840, 2160, orig_crf=10)
    assert not warnings and [t.name for t in tiers] == [layout.ORIG, "1080p", "540p"]
    job = command.SceneJob(Path("src.mp4"), "c", 30, 60, 30.0, tuple(tiers), "train")
    args = command.scene_command(job, ["o.mp4", "a.mp4", "b.mp4"], threads=2, decoder_threads=4)
    assert args[:args.index("-i")] == ["-y", "-threads", "4", "-noaccurate_seek", "-ss", f"{30.5 / 30:.6f}",
                                       "-copyts"]
    graph = _arg(args, "-filter_complex")
    assert graph == ("[0:v:0]trim=start=0.983334:end=2.983334,setpts=PTS-STARTPTS,split=3[s0][s1][s2];"  # rounded up"
                     "[s0]format=yuv420p[o0];"
                     "[s1]scale=1920:1080:flags=lanczos,format=yuv420p[o1];"
                     "[s2]scale=960:540:flags=lanczos,format=yuv420p[o2]")
    outs = [i for i, a in enumerate(args) if a == "-map"]
    assert len(outs) == 3
    orig, hd = args[outs[0]:outs[1]], args[outs[1]:outs[2]]
    assert _arg(orig, "-c:v") == "libx264" and _arg(orig, "-crf") == "10" and _arg(orig, "-bf") == "0"
    for out in (hd, args[outs[2]:]):
        assert _arg(out, "-c:v") == "libx264" and _arg(out, "-crf") == "18" and _arg(out, "-bf") == "0"
        assert _arg(out, "-g") == "4" and _arg(out, "-keyint_min") == "4" and _arg(out, "-sc_threshold") == "0"
        assert _arg(out, "-frames:v") == "60" and _arg(out, "-threads") == "2" and "-an" in out
        assert _arg(out, "-movflags") == "+faststart"


def test_nvenc_scene_command():
    opts = transcode_scenes.TranscodeOptions(resolutions=("4k", "720p"), codec="hevc", gop=5, crf=21,
                                             preset="fast")
    backend = encoders.Backend("nvenc", "hevc", "hevc_nvenc", "test")
    tiers, _ = command.make_tiers(opts, backend, 3840, 2160)
    job = command.SceneJob(Path("src.mp4"), "c", 0, 48, 24.0, tuple(tiers), "val", hw_decode=True,
                                    start_time=0.5)
    args = command.scene_command(job, ["a.mp4", "b.mp4"], threads=2, decoder_threads=4, hw=True)
    assert args[:args.index("-i")] == ["-y", "-threads", "4", "-hwaccel", "cuda", "-hwaccel_output_format", "cuda",
                                       "-copyts"]
    assert _arg(args, "-filter_complex") == (f"[0:v:0]trim=end={0.5 + 47.5 / 24:.6f},setpts=PTS-STARTPTS,split=2"
                                             "[s0][s1];[s0]null[o0];"
                                             "[s1]scale_cuda=1280:720:interp_algo=lanczos[o1]")
    for i in (0, 1):
        out = args[[k for k, a in enumerate(args) if a == "-map"][i]:]
        assert _arg(out, "-c:v") == "hevc_nvenc" and _arg(out, "-cq") == "21" and _arg(out, "-preset") == "p4"
        assert _arg(out, "-bf") == "0" and _arg(out, "-g") == "5" and _arg(out, "-no-scenecut") == "1"
        assert _arg(out, "-forced-idr") == "1" and _arg(out, "-rc-lookahead") == "0"
        assert _arg(out, "-frames:v") == "48" and "-threads" not in out[:out.index("-f")]
    # A source NVDEC cannot decode: software decoding, frames uploaded before the split.
    job = command.SceneJob(Path("src.mp4"), "c", 0, 48, 24.0, tuple(tiers), "val", hw_decode=False)
    args = command.scene_command(job, ["a.mp4", "b.mp4"], hw=True)
    assert "-hwaccel" not in args
    assert ",setpts=PTS-STARTPTS,format=yuv420p,hwupload_cuda,split=2" in _arg(args, "-filter_complex")


def test_encoder_choice_is_detected(monkeypatch):
    ts = encoders
    monkeypatch.setattr(ts, "ffmpeg_encoders", lambda: frozenset({"libx264", "h264_nvenc", "hevc_nvenc"}))
    monkeypatch.setattr(ts, "gpu_present", lambda: (True, "nvidia-smi lists 1 GPU"))
    monkeypatch.setattr(ts, "nvenc_trial", lambda codec: (True, ""))
    b = ts.choose_backend("h264")
    assert (b.kind, b.encoder) == ("nvenc", "h264_nvenc") and "trial encode worked" in b.describe()
    assert ts.choose_backend("h264", "cpu").encoder == "libx264"
    b = ts.choose_backend("vp9")
    assert b.encoder == "libvpx-vp9" and "no vp9" in b.reason
    monkeypatch.setattr(ts, "nvenc_trial", lambda codec: (False, "Driver does not support the required nvenc API"))
    assert ts.choose_backend("hevc").encoder == "libx265"
    monkeypatch.setattr(ts, "gpu_present", lambda: (False, "no NVIDIA GPU found"))
    b = ts.choose_backend("h264")
    assert b.encoder == "libx264" and b.reason == "no NVIDIA GPU found"
    with pytest.raises(ts.UsageError, match="--encoder nvenc: no NVIDIA GPU"):
        ts.choose_backend("h264", "nvenc")
    monkeypatch.setattr(ts, "ffmpeg_encoders", lambda: frozenset({"libx264"}))
    assert "does not list h264_nvenc" in ts.choose_backend("h264").reason


def test_parallelism_follows_the_cores():
    p = sizing.plan_parallelism(3, cpus=2)
    assert (p.jobs, p.threads, p.decoder_threads) == (1, 0, 0)  # one process: the encoders' own threading
    p = sizing.plan_parallelism(3, cpus=16)
    assert (p.jobs, p.threads, p.decoder_threads) == (3, 3, 5)
    p = sizing.plan_parallelism(3, cpus=64, memory_per_job=1 << 50)
    assert p.jobs == 1
    assert sizing.plan_parallelism(4, jobs=2, threads=3, cpus=8).threads == 3
    assert sizing.plan_parallelism(2, jobs=1, threads=1, cpus=8).threads == 1
    assert sizing.plan_parallelism(4, cpus=64, hw=True).jobs == 2  # NVENC sessions: jobs x tiers <= 8
