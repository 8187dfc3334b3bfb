"""Inference tools on small generated videos: frame counts, fps, sizes, audio, scene cuts, bad input."""
from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from torch import nn

from vsrvfi.inference.evaluate import Convention, evaluate_sr, evaluate_vfi, scene_of, sr_targets, vfi_starts
from vsrvfi.inference.runtime import to_tensor
from vsrvfi.inference.sr import Upscaler, upscale_frames, window_indices
from vsrvfi.inference.vfi import Interpolator, interpolate_frames, is_duplicate, output_fps, plan_output
from vsrvfi.inference.video_io import VideoWriter, open_source, read_frames
from vsrvfi.models.baselines import bicubic_upscale
from vsrvfi.models.metrics import psnr
from vsrvfi.models.registry import build_model
from vsrvfi.pipelines.png_frames import downscale
from benchmarks.fixtures.clipfactory import decode_frames, ffmpeg, random_checkpoints
from vsrvfi.tools import evaluate, interpolate_video, upscale_video
from vsrvfi.tools.interpolate_video import scene_cuts
from vsrvfi.core.errors import MediaError
from vsrvfi.core.media import probe

W, H, FPS = 64, 48, 24


@pytest.fixture(scope="module")
def clip_with_cut(tmp_path_factory) -> Path:
    """64x48, 24 fps, 24 frames with audio: 12 frames of testsrc2, a hard cut at frame 12, 12 of mandelbrot."""
    out = tmp_path_factory.mktemp("vid") / "cut.mp4"
    ffmpeg("-f", "lavfi", "-i", f"testsrc2=size={W}x{H}:rate={FPS}:duration=0.5",
           "-f", "lavfi", "-i", f"mandelbrot=size={W}x{H}:rate={FPS}",
           "-f", "lavfi", "-i", "sine=frequency=440:duration=1",
           "-filter_complex", "[1:v]trim=end_frame=12,setpts=PTS-STARTPTS[m];[0:v][m]concat=n=2:v=1[v]",
           "-map", "[v]", "-map", "2:a", "-c:v", "libx264", "-pix_fmt", "yuv420p", "-g", "4",
           "-c:a", "aac", "-shortest", str(out))
    return out


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory) -> dict[str, Path]:
    """Project checkpoints with random weights: RIFE, IFRNet-S, VSRNet (tiny flow), EDVR-M (3 frames)."""
    return random_checkpoints(tmp_path_factory.mktemp("ckpt"), [
        ("rife", "base", {}), ("ifrnet", "small", {}), ("vsrnet", "base", {"flow": "tiny"}),
        ("edvr", "m", {"num_frame": 3})])


class Blend(nn.Module):
    """A stand-in interpolator whose output is the linear blend, so every output frame is predictable."""

    def __init__(self, arbitrary: bool = True):
        super().__init__()
        self.arbitrary = arbitrary
        self.calls = 0

    def interpolate(self, a, b, t, scale=1.0):
        assert self.arbitrary or t == 0.5
        self.calls += 1
        return (1 - t) * a + t * b


def audio_streams(path: Path) -> int:
    with av.open(str(path)) as c:
        return len(c.streams.audio)


# ----------------------------------------------------------------------------------------- planning

def test_plan_factor_and_target_fps():
    plan = plan_output(10, Fraction(24), output_fps(Fraction(24), factor=4))
    assert len(plan) == 40
    assert [o.t for o in plan[:4]] == [0, Fraction(1, 4), Fraction(1, 2), Fraction(3, 4)]
    assert all(o.src == 9 and o.t == 0 for o in plan[-4:])  # nothing after the last frame: repeated
    fps = output_fps(Fraction(24), fps="60")
    plan = plan_output(24, Fraction(24), fps)
    assert len(plan) == 60 and plan[1] == plan_output(24, Fraction(24), fps)[1]
    assert plan[1].src == 0 and plan[1].t == Fraction(2, 5)
    assert output_fps(Fraction(30000, 1001), fps="60000/1001") == Fraction(60000, 1001)


@pytest.mark.parametrize("padding,start,end", [
    ("reflection_circle", [4, 3, 0, 1, 2], [7, 8, 9, 6, 5]),
    ("reflection", [2, 1, 0, 1, 2], [7, 8, 9, 8, 7]),
    ("replicate", [0, 0, 0, 1, 2], [7, 8, 9, 9, 9]),
    ("circle", [3, 4, 0, 1, 2], [7, 8, 9, 5, 6]),
])
def test_window_padding_matches_basicsr(padding, start, end):
    """BasicSR generate_frame_indices(crt_idx, max_frame_num=9, num_frames=5, padding) at both ends."""
    assert window_indices(0, 10, 5, padding) == start
    assert window_indices(9, 10, 5, padding) == end
    assert window_indices(5, 10, 5, padding) == [3, 4, 5, 6, 7]


def test_even_windows_and_block_duplicates():
    assert window_indices(5, 10, 4) == [3, 4, 5, 6]  # EDVR's centre_frame_idx = num_frame // 2
    still = np.zeros((270, 480, 3), np.uint8)
    moved = still.copy()
    moved[100:140, 200:240] = 255  # a 40x40 object on a still background: motion, not a held frame
    assert not is_duplicate(still, moved, 1.0)
    noisy = (still.astype(np.int16) + np.random.default_rng(0).integers(0, 2, still.shape)).astype(np.uint8)
    assert is_duplicate(still, noisy, 1.0) and not is_duplicate(still, still, 0)


def test_rife_midpoint_model_reaches_quarters_by_bisection():
    model = Blend(arbitrary=False)
    interp = Interpolator(model, torch.device("cpu"))
    a, b = torch.zeros(1, 3, 8, 8), torch.ones(1, 3, 8, 8)
    model.calls = 0
    out = interp.between(a, b, [Fraction(1, 4), Fraction(1, 2), Fraction(3, 4)])
    assert model.calls == 3  # the midpoint is made once and reused
    for t, img in out.items():
        assert torch.allclose(img, torch.full_like(img, float(t)))


# --------------------------------------------------------------------------------------- scene cuts

def test_scene_cut_is_not_blended_across(clip_with_cut):
    cuts = scene_cuts(str(clip_with_cut), FPS, None, 8)
    assert cuts == {12}
    src = open_source(clip_with_cut)
    frames = list(read_frames(src))
    plan = plan_output(len(frames), src.info.fps, src.info.fps * 2)
    kinds = []
    out = list(interpolate_frames(Interpolator(Blend(), torch.device("cpu")), iter(frames), plan, cuts,
                                  on_frame=kinds.append))
    assert len(out) == 48 and kinds.count("cut") == 1
    np.testing.assert_array_equal(out[23], frames[12])  # t = 1/2 across the cut: the next scene's frame
    np.testing.assert_array_equal(out[22], frames[11])
    blend = ((frames[3].astype(np.float32) + frames[4]) / 2).round()
    assert np.abs(out[7].astype(np.float32) - blend).max() <= 1  # inside a scene: the model's frame


def test_duplicate_frames_are_repeated():
    still = np.full((H, W, 3), 100, np.uint8)
    moved = np.full((H, W, 3), 200, np.uint8)
    plan = plan_output(3, Fraction(24), Fraction(48))
    kinds = []
    out = list(interpolate_frames(Interpolator(Blend(), torch.device("cpu")), iter([still, still.copy(), moved]),
                                  plan, set(), dup_threshold=0.5, on_frame=kinds.append))
    assert kinds[:4] == ["copy", "dup", "copy", "model"]
    np.testing.assert_array_equal(out[1], still)
    assert out[3].mean() == 150


# ------------------------------------------------------------------------------------- whole videos

@pytest.mark.parametrize("args,frames,fps", [(["--factor", "2"], 48, 48), (["--factor", "4"], 96, 96),
                                             (["--fps", "60"], 60, 60)])
def test_interpolate_video_counts_fps_audio(tmp_path, clip_with_cut, ckpts, args, frames, fps, seeded_single_thread):
    out = tmp_path / "out.mp4"
    ckpt = ckpts["rife"] if args[0] == "--factor" else ckpts["ifrnet"]
    assert interpolate_video.cli([str(clip_with_cut), str(out), "-c", str(ckpt), *args]) == 0
    info = probe(out)
    assert (info.num_frames, info.fps, (info.width, info.height)) == (frames, fps, (W, H))
    assert audio_streams(out) == 1
    assert abs(info.duration - probe(clip_with_cut).duration) < 0.1
    assert [p.name for p in tmp_path.iterdir()] == ["out.mp4"]  # no temporaries left


def test_upscale_video_size_frames_audio(tmp_path, clip_with_cut, ckpts, seeded_single_thread):
    out = tmp_path / "up.mkv"
    assert upscale_video.cli([str(clip_with_cut), str(out), "-c", str(ckpts["vsrnet"]), "--tile", "24"]) == 0
    info = probe(out)
    assert (info.num_frames, info.fps, info.width, info.height) == (24, FPS, 4 * W, 4 * H)
    assert audio_streams(out) == 1


def test_upscale_odd_size_with_edvr(tmp_path, ckpts, seeded_single_thread):
    src = tmp_path / "odd.mkv"
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=24x18:rate=12:duration=0.5,format=yuv444p,crop=23:17:0:0", "-c:v", "ffv1", "-pix_fmt", "yuv444p", str(src))
    out = tmp_path / "odd_x4.mkv"
    assert upscale_video.cli([str(src), str(out), "-c", str(ckpts["edvr"]), "--no-audio"]) == 0
    assert (probe(out).width, probe(out).height, probe(out).num_frames) == (92, 68, 6)


def test_tiles_equal_whole_frames(seeded_single_thread):
    """With enough context around each tile (VSRNet without flow: 2 LR px), tiling changes nothing."""
    model = build_model("vsrnet", flow="none")
    lr = torch.rand(3, 3, 20, 28)
    whole = Upscaler(model, torch.device("cpu"))(lr)
    tiled = Upscaler(model, torch.device("cpu"), tile=8, tile_pad=4)(lr)
    assert whole.shape == (1, 3, 80, 112)
    torch.testing.assert_close(tiled, whole, atol=1e-5, rtol=0)


def test_upscale_stream_matches_windows(seeded_single_thread):
    """Streaming with a bounded cache gives every frame the window window_indices names."""
    model = build_model("vsrnet", flow="none", num_frame=5)
    up = Upscaler(model, torch.device("cpu"))
    frames = [np.random.default_rng(i).integers(0, 255, (8, 12, 3), dtype=np.uint8) for i in range(7)]
    out = list(upscale_frames(up, iter(frames), 7))
    lr = to_tensor(frames, torch.device("cpu"))
    for i in (0, 3, 6):
        expect = up(lr[window_indices(i, 7, 5)])
        ref = expect[0].clamp(0, 1).mul(255).round().to(torch.uint8).permute(1, 2, 0).numpy()
        np.testing.assert_array_equal(out[i], ref)


# -------------------------------------------------------------------------------------------- scoring

def test_evaluate_vfi_blend_model_equals_baseline(clip_with_cut):
    frames = list(read_frames(clip_with_cut, 9))
    score, example = evaluate_vfi(Interpolator(Blend(), torch.device("cpu")), frames, "c", Convention.default("vfi"))
    assert score.frames == 4 and example is not None
    assert score.psnr == pytest.approx(score.base_psnr, abs=1e-4)
    assert min(score.psnr) < 60  # a real comparison, not a frame against itself


def test_evaluate_sr_baseline_is_bicubic_of_pipeline_downscale(clip_with_cut, ckpts, seeded_single_thread):
    frames = list(read_frames(clip_with_cut, 3))
    from vsrvfi.models.load import load_model
    up = Upscaler(load_model(ckpts["vsrnet"])[0], torch.device("cpu"))
    score, _ = evaluate_sr(up, frames, "c", Convention.default("sr", 4))
    hr = torch.from_numpy(frames[1]).permute(2, 0, 1)[None]
    base = bicubic_upscale(downscale(hr, 4).float() / 255, 4)
    expect = psnr(base, hr.float() / 255, y_channel=True, crop_border=4)
    assert score.base_psnr[1] == pytest.approx(float(expect), abs=1e-4)
    assert score.frames == 3


def test_evaluate_skips_gaps_across_a_scene_cut(clip_with_cut):
    frames = list(read_frames(clip_with_cut))
    interp = Interpolator(Blend(), torch.device("cpu"))
    ticks = []
    score, _ = evaluate_vfi(interp, frames, "c", Convention.default("vfi"), gap=2, cuts={12}, on_frame=ticks.append)
    assert (score.cuts, score.skipped, score.frames) == (1, 1, 10)  # the gap 10 -> 12 holds the cut
    assert sum(ticks) == 22  # progress counts frames (the last 2 frames form no whole gap)
    everything, _ = evaluate_vfi(interp, frames, "c", Convention.default("vfi"), gap=2)
    assert everything.frames == 11 and min(everything.psnr) < min(score.psnr)  # the cut gap is the worst frame
    assert scene_of(11, 24, {12}) == (0, 12) and scene_of(12, 24, {12}) == (12, 24)


def test_evaluate_sr_windows_stop_at_a_scene_cut():
    frames = [np.full((48, 64, 3), 8 * i, np.uint8) for i in range(24)]  # every frame its own grey

    class Recorder:  # an upscaler stand-in that remembers which LR frames each window held
        scale, window, device = 4, 3, torch.device("cpu")

        def __init__(self, lr):
            self.lr, self.windows = lr, []

        def __call__(self, x):
            self.windows.append([int((self.lr - f).abs().flatten(1).sum(1).argmin()) for f in x])
            return bicubic_upscale(x[1:2], 4)

    lr = downscale(torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2), 4).float().div_(255)
    rec = Recorder(lr)
    evaluate_sr(rec, frames, "c", Convention.default("sr", 4), cuts={12})
    assert rec.windows[11] == [10, 11, 9] and rec.windows[12] == [14, 12, 13]  # reflection_circle at the cut
    assert all(max(w) < 12 for w in rec.windows[:12]) and all(min(w) >= 12 for w in rec.windows[12:])


def test_evaluate_cli_finds_cuts_in_raw_video(tmp_path, clip_with_cut, ckpts, capsys, seeded_single_thread):
    out = tmp_path / "eval"
    args = ["-c", str(ckpts["ifrnet"]), str(clip_with_cut), "--frames", "0", "--out", str(out)]
    assert evaluate.cli(args) == 0
    text = capsys.readouterr().out
    assert "1 scene cut(s) found in the videos; 1 gap(s) across a cut not scored" in text
    clip = json.loads((out / "scores.json").read_text())["clips"][0]
    assert (clip["cuts"], clip["skipped_gaps"], clip["frames"]) == (1, 1, 10)
    assert evaluate.cli(args + ["--no-scene-detect"]) == 0
    clip = json.loads((out / "scores.json").read_text())["clips"][0]
    assert (clip["cuts"], clip["skipped_gaps"], clip["frames"]) == (0, 0, 11)


def test_spread_sample_covers_the_clip_and_is_seeded():
    picked = sr_targets(100, 5, seed=0, key="clip")
    assert len(picked) == 5 and picked == sorted(picked) and picked[0] < 20 and picked[-1] >= 80  # whole clip
    assert [b - a for a, b in zip(picked, picked[1:])] == [20] * 4  # evenly
    assert picked == sr_targets(100, 5, seed=0, key="clip")  # deterministic
    assert sr_targets(100, 5, seed=0, key="other") != picked or sr_targets(100, 5, seed=1, key="clip") != picked
    assert sr_targets(7, 30) == list(range(7)) and sr_targets(7, 0) == list(range(7))
    starts, skipped = vfi_starts(24, 2, 4, cuts={12})
    assert len(starts) == 4 and not any(i < 12 <= i + 2 for i in starts) and skipped == 1


def test_evaluate_cli_on_data_dir(tmp_path, tiny_data_dir, ckpts, capsys, seeded_single_thread):  # noqa: F811
    out = tmp_path / "eval"
    rc = evaluate.cli(["-c", str(ckpts["ifrnet"]), str(tiny_data_dir), "--res", "72p", "--frames", "5",
                       "--out", str(out)])
    assert rc == 0
    text = capsys.readouterr().out
    assert "RGB, border 0 px" in text and "blend PSNR" in text and "tiny-s0003" in text
    scores = json.loads((out / "scores.json").read_text())
    assert scores["task"] == "vfi" and [c["frames"] for c in scores["clips"]] == [5, 5]  # 5 gaps per clip
    assert "sample: 5 gaps of 2 per clip, spread evenly (seed 0), full frames" in text
    assert np.isfinite(scores["mean"]["psnr"]) and np.isfinite(scores["mean"]["base_psnr"])
    assert (out / "tiny-s0003.png").stat().st_size > 1000


# ------------------------------------------------------------------------------------ checkpoints, input

def test_official_rife_checkpoint_loads(tmp_path, clip_with_cut, seeded_single_thread):
    """An official-layout flownet.pkl (DDP 'module.' keys, no model name) works with --model rife."""
    pkl = tmp_path / "flownet.pkl"
    torch.save({"module." + k: v for k, v in build_model("rife").state_dict().items()}, pkl)
    out = tmp_path / "o.mp4"
    assert interpolate_video.cli([str(clip_with_cut), str(out), "-c", str(pkl), "--model", "rife",
                                  "--factor", "2", "--no-scene-detect", "--no-audio"]) == 0
    assert audio_streams(out) == 0 and probe(out).num_frames == 48
    assert interpolate_video.cli([str(clip_with_cut), str(tmp_path / "p.mp4"), "-c", str(pkl), "--factor", "2"]) == 2


def test_bad_inputs_are_one_line_errors(tmp_path, clip_with_cut, ckpts, capsys):
    existing = tmp_path / "exists.mp4"
    existing.write_bytes(b"keep me")
    not_video = tmp_path / "notes.mp4"
    not_video.write_text("hello")
    one_frame = tmp_path / "one.mp4"
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=64x48:rate=24", "-frames:v", "1", str(one_frame))
    cases = [
        (interpolate_video, [str(tmp_path / "missing.mp4"), str(tmp_path / "a.mp4"), "--factor", "2"], "no such file"),
        (interpolate_video, [str(not_video), str(tmp_path / "a.mp4"), "--factor", "2"], "notes.mp4"),
        (interpolate_video, [str(one_frame), str(tmp_path / "a.mp4"), "--factor", "2"], "too short"),
        (interpolate_video, [str(clip_with_cut), str(existing), "--factor", "2"], "exists already"),
        (interpolate_video, [str(clip_with_cut), str(clip_with_cut), "--factor", "2", "--overwrite"], "is the input"),
        (interpolate_video, [str(clip_with_cut), str(tmp_path / "a.webm"), "--factor", "2", "--codec", "h264"],
         "cannot hold h264"),
        (interpolate_video, [str(clip_with_cut), str(tmp_path / "a.mp4"), "--fps", "1/0"], "not a number"),
        (interpolate_video, [str(clip_with_cut), str(tmp_path / "a.mp4"), "--fps", "12"], "must be above"),
        (interpolate_video, [str(clip_with_cut), str(tmp_path / "a.mp4"), "--factor", "2", "--scale", "0"],
         "--scale must be positive"),
        (interpolate_video, [str(clip_with_cut), str(existing / "a.mp4"), "--factor", "2"], "exists.mp4"),
        (upscale_video, [str(one_frame), str(tmp_path / "a.mp4")], "too short"),
        (upscale_video, [str(clip_with_cut), str(tmp_path / "a.mp4"), "--device", "foo"], "--device 'foo'"),
        (upscale_video, [str(clip_with_cut), str(tmp_path / "a.mp4"), "--size", "l"], "not 'l'"),
        (upscale_video, [str(clip_with_cut), str(tmp_path / "a.mp4"), "--device", "cpu", "--precision", "fp16"],
         "fp16 needs a CUDA GPU"),
    ]
    for tool, args, message in cases:
        ckpt = ckpts["vsrnet"] if tool is upscale_video else ckpts["rife"]
        assert tool.cli([*args, "-c", str(ckpt)]) == 2, args
        err = capsys.readouterr().err.strip()
        assert err.startswith("error: ") and message in err and "\n" not in err, err
    assert existing.read_bytes() == b"keep me"
    assert upscale_video.cli([str(clip_with_cut), str(tmp_path / "b.mp4"), "-c", str(ckpts["rife"])]) == 2
    assert "not a super-resolution" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["exists.mp4", "notes.mp4", "one.mp4"]


def test_stopped_run_leaves_no_output(tmp_path, clip_with_cut):
    out = tmp_path / "x.mp4"
    src = open_source(clip_with_cut)
    with pytest.raises(KeyboardInterrupt):
        with VideoWriter(out, W, H, Fraction(FPS), src) as writer:
            for i, frame in enumerate(read_frames(src)):
                writer.write(frame)
                if i == 5:
                    raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(MediaError, match="no frames"):
        with VideoWriter(out, W, H, Fraction(FPS), src):
            pass
    assert list(tmp_path.iterdir()) == []


def test_copied_frames_keep_their_pixels(tmp_path, clip_with_cut):
    """Decode -> encode -> decode keeps the picture: the same BT.601 matrix both ways (4:2:0 costs some chroma)."""
    src = open_source(clip_with_cut)
    frames = list(read_frames(src, 4))
    out = tmp_path / "copy.mkv"
    with VideoWriter(out, W, H, Fraction(FPS), src, codec="ffv1", audio=False) as writer:
        for f in frames:
            writer.write(f)
    again = list(read_frames(out))
    luma = np.array([0.299, 0.587, 0.114])
    diff = np.abs(np.stack(again).astype(float) @ luma - np.stack(frames).astype(float) @ luma).mean()
    assert len(again) == 4 and diff < 1.0, diff
    assert decode_frames(out).shape == (4, H, W, 3)
