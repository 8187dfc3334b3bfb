"""vsr-prepare --from-frames: Vimeo-90K, REDS and generic frame folders imported as clips; splits,
frame counts, sizes, tiers, resume, training through the DALI CPU loader, and bad input."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.clipfactory import decode_frames
from tests.framefactory import _photo, make_reds, make_vimeo
from vsrvfi.core import layout
from vsrvfi.core.cli import run_cli
from vsrvfi.core.manifest import load_manifest
from vsrvfi.core.media import probe
from vsrvfi.tools import frame_folders, import_frames, prepare_data, transcode_scenes
from vsrvfi.tools.encoding import command, encoders

FAST = ["--codec", "vp9", "--preset", "ultrafast"]
VIMEO_TRAIN = ["vimeo-00001-0001", "vimeo-00001-0003", "vimeo-00001-0004"]
VIMEO_VAL = ["vimeo-00001-0002", "vimeo-00002-0001"]       # sequences 1 and 4 are in sep_testlist.txt
REDS_CLIPS = ("000", "001", "002", "011", "003")


def clips(data: Path, res: str, split: str) -> list[str]:
    return [p.stem for p in layout.list_clips(data, res, split)]


@pytest.fixture(scope="module")
def vimeo(tmp_path_factory) -> tuple[Path, Path]:
    """6 septuplets at 448x256; sequence 5 (00002/0002) is in neither list."""
    tmp = tmp_path_factory.mktemp("vimeo")
    root = make_vimeo(tmp / "vimeo_septuplet", sequences=6, test=(1, 4), unlisted=(5,))
    data = tmp / "data"
    assert prepare_data.main([str(root), str(data), "--from-frames", *FAST, "--frame-resolutions", "256p"]) == 0
    return root, data


@pytest.fixture(scope="module")
def reds(tmp_path_factory) -> tuple[Path, Path]:
    """5 clips of 20 frames at 320x180 in train_sharp/, 000 and 011 of them in REDS4."""
    tmp = tmp_path_factory.mktemp("reds")
    root = make_reds(tmp / "REDS", REDS_CLIPS, frames=20, size=(320, 180))
    data = tmp / "data"
    assert prepare_data.main([str(root), str(data), "--from-frames", *FAST, "--frame-resolutions", ""]) == 0
    return root, data


def test_vimeo_split_from_lists_frames_and_tier(vimeo):
    root, data = vimeo
    assert clips(data, "256p", "train") == VIMEO_TRAIN and clips(data, "256p", "val") == VIMEO_VAL
    assert layout.existing_tiers(data) == ["256p"]  # auto: the frames' own height (no standard tier fits)
    for clip in layout.list_clips(data, "256p", "train") + layout.list_clips(data, "256p", "val"):
        info = probe(clip)
        assert (info.num_frames, info.width, info.height, info.codec) == (7, 448, 256, "vp9")
    record = load_manifest(data).sources["vimeo90k"]
    assert record.kind == "frames" and record.info["width"] == 448 and record.info["fps"] == 24
    dropped = [s for s in record.scenes if s.dropped]
    assert [s.clip for s in dropped] == ["vimeo-00002-0002"] and "neither" in dropped[0].dropped
    summary = json.loads((data / "summary.json").read_text())
    assert (summary["scenes_kept"], summary["scenes_dropped"], summary["val_scenes"]) == (5, 1, 2)
    assert summary["source_bytes"] > summary["resolutions"]["256p"]["clip_bytes"] > 0


def test_clip_frames_are_the_folder_frames_in_order(vimeo):
    from PIL import Image

    root, data = vimeo
    clip = decode_frames(layout.clip_path(data, "256p", "val", "vimeo-00001-0002")).astype(np.float32)
    source = [np.asarray(Image.open(root / "sequences" / "00001" / "0002" / f"im{k}.png").convert("RGB"),
                         dtype=np.float32) for k in range(1, 8)]
    assert len(clip) == 7
    for k, frame in enumerate(clip):  # frame k is im<k+1>.png, through yuv420p and VP9 at CRF 24, cpu-used 8
        errors = [np.abs(frame - s).mean() for s in source]
        psnr = 10 * np.log10(255 ** 2 / np.mean((frame - source[k]) ** 2))
        assert int(np.argmin(errors)) == k and psnr > 28, (errors, psnr)


def test_reds4_split_and_own_height_tier(reds):
    root, data = reds
    assert clips(data, "180p", "val") == ["reds-000", "reds-011"]
    assert clips(data, "180p", "train") == ["reds-001", "reds-002", "reds-003"]
    for clip in layout.list_clips(data, "180p", "train"):
        info = probe(clip)
        assert (info.num_frames, info.width, info.height) == (20, 320, 180)
    assert load_manifest(data).sources["reds"].options == {"layout": "reds", "fps": 24.0, "reds_val": "reds4"}


def test_rerun_writes_nothing(vimeo, capsys):
    root, data = vimeo
    files = {p: p.stat().st_mtime_ns for p in data.rglob("*") if p.is_file() and p.name not in ("summary.json", ".lock")}
    assert prepare_data.main([str(root), str(data), "--from-frames", *FAST, "--frame-resolutions", "256p"]) == 0
    assert {p: p.stat().st_mtime_ns for p in files} == files
    assert "source frames:" in capsys.readouterr().out  # the summary gives the frames' bytes against the clips'


def test_transcode_restores_a_missing_clip(reds):
    root, data = reds
    gone = layout.clip_path(data, "180p", "train", "reds-002")
    kept = layout.clip_path(data, "180p", "train", "reds-001")
    mtime = kept.stat().st_mtime_ns
    gone.unlink()
    counts = transcode_scenes.transcode(data, transcode_scenes.TranscodeOptions(
        resolutions=("180p",), codec="vp9", preset="ultrafast"), show_progress=False)
    assert counts == {"180p": 5} and probe(gone).num_frames == 20 and kept.stat().st_mtime_ns == mtime


def test_trains_with_the_dali_cpu_loader(vimeo, tmp_path):
    from vsrvfi.trainers import train

    root, data = vimeo
    assert train.main(["vsrnet", f"data.dir={data}", "data.res=256p", "data.loader=dali", "data.device=cpu",
                       "data.workers=1", "data.batch_size=2", "data.crop=32", "model.kwargs.flow=tiny",
                       "train.steps=2", "train.val_frames=2", "train.device=cpu", f"experiment.root={tmp_path}",
                       "experiment.name=vimeo"]) == 0
    assert (tmp_path / "vimeo" / "checkpoints" / "last.pth").exists()


def _frames(folder: Path, names, size=(96, 64), shift: int = 0) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    photo = _photo()
    for k, name in enumerate(names):
        x = 100 + 2 * k + shift
        photo.crop((x, 150, x + size[0], 150 + size[1])).save(folder / name)


def test_generic_folders_seeded_split_and_jpeg(tmp_path):
    root = tmp_path / "mine"
    for i, clip in enumerate(["a", "b", "c", "d"]):
        _frames(root / clip, [f"frame_{k:03d}.jpg" for k in range(1, 5)], shift=10 * i)
    data = tmp_path / "d"
    result = import_frames.import_frames(root, data, import_frames.FramesOptions(val_fraction=0.25, seed=3),
                                         transcode_scenes.TranscodeOptions(codec="vp9", preset="ultrafast"),
                                         show_progress=False)
    assert result.layout == "folders" and result.tiers == ["64p"] and result.clips_written == {"64p": 4}
    assert len(clips(data, "64p", "val")) == 1 and len(clips(data, "64p", "train")) == 3
    assert all(probe(c).num_frames == 4 for c in layout.list_clips(data, "64p", "train"))


# ----------------------------------------------------------------------------------------- bad input

def _bad(kind: str, tmp: Path) -> tuple[Path, str, str]:
    """(root, the path the error must name, a phrase of the problem) for one kind of bad input."""
    root = tmp / "frames"
    six = [f"{k:04d}.png" for k in range(1, 7)]
    if kind == "missing":
        return root, str(root), "no such folder"
    if kind == "file":
        root.write_text("not a folder")
        return root, str(root), "not a folder"
    if kind == "empty":
        (root / "clip" / "notes").mkdir(parents=True)
        return root, str(root), "no frame folders"
    if kind == "gap":
        _frames(root / "good", six)
        _frames(root / "holed", [n for n in six if n != "0003.png"])
        return root, str(root / "holed"), "frame 0003.png is missing"
    if kind == "mixed_sizes":
        _frames(root / "a", six)
        _frames(root / "b", six[:3])
        _frames(root / "b", six[3:4], size=(128, 64))
        _frames(root / "b", six[4:])
        return root, str(root / "b" / "0004.png"), "128x64, but"
    if kind == "single_frame":
        _frames(root / "a", six)
        _frames(root / "one", six[:1])
        return root, str(root / "one"), "too short"
    if kind == "odd_size":
        _frames(root / "a", six, size=(97, 64))
        return root, str(root / "a" / "0001.png"), "odd size 97x64"
    if kind == "not_an_image":
        _frames(root / "a", six[:5])
        (root / "a" / "0006.png").write_text("not a png")
        return root, str(root / "a" / "0006.png"), "not a readable PNG or JPEG"
    if kind == "vimeo_list":
        _frames(root / "sequences" / "00001" / "0001", [f"im{k}.png" for k in range(1, 8)])
        (root / "sep_trainlist.txt").write_text("00001/0001\n00001/0002\n")
        return root, str(root / "sequences" / "00001" / "0002"), "listed in sep_trainlist.txt but missing"
    if kind == "vimeo_unlisted":
        _frames(root / "sequences" / "00001" / "0001", [f"im{k}.png" for k in range(1, 8)])
        (root / "sep_trainlist.txt").write_text("")
        (root / "sep_testlist.txt").write_text("\n")
        return root, str(root), "no clip to import: all 1 are in neither list"
    raise ValueError(kind)


@pytest.mark.parametrize("kind", ["missing", "file", "empty", "gap", "mixed_sizes", "single_frame", "odd_size",
                                  "not_an_image", "vimeo_list", "vimeo_unlisted"])
def test_bad_input_is_one_line_and_writes_nothing(kind, tmp_path, capsys):
    root, named, problem = _bad(kind, tmp_path)
    data = tmp_path / "data"
    rc = run_cli(prepare_data.main, [str(root), str(data), "--from-frames", *FAST])
    lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("error:")]
    assert rc == 2 and len(lines) == 1, lines
    assert lines[0].startswith(f"error: {named}: ") and problem in lines[0], lines[0]
    assert not data.exists()


def test_bad_input_from_the_command_line_is_exactly_one_line(tmp_path):
    import subprocess
    import sys

    root, named, _ = _bad("mixed_sizes", tmp_path)  # found while the frames are being checked
    res = subprocess.run([sys.executable, "-m", "vsrvfi.tools.prepare_data", str(root), str(tmp_path / "data"),
                          "--from-frames"], cwd=Path(__file__).resolve().parents[1], capture_output=True, text=True,
                         timeout=300)
    assert res.returncode == 2 and res.stdout == "", res
    assert res.stderr.strip().splitlines() == [res.stderr.strip()] and res.stderr.startswith(f"error: {named}: ")
    assert not (tmp_path / "data").exists()


@pytest.mark.parametrize("argv, problem", [(["--fps", "0"], "--fps '0'"), (["--fps", "fast"], "--fps 'fast'"),
                                           (["--frames-layout", "nope"], "invalid choice")])
def test_bad_options(argv, problem, tmp_path, capsys):
    _frames(tmp_path / "frames" / "a", ["1.png", "2.png"])
    rc = run_cli(prepare_data.main, [str(tmp_path / "frames"), str(tmp_path / "data"), "--from-frames", *argv])
    err = capsys.readouterr().err
    assert rc == 2 and problem in err and not (tmp_path / "data").exists(), err


@pytest.mark.parametrize("names, pattern, start", [
    ([f"im{k}.png" for k in range(1, 11)], "im%d.png", 1),              # Vimeo-style, unpadded past 9
    ([f"{k:08d}.png" for k in range(0, 3)], "%08d.png", 0),             # REDS
    ([f"{k:04d}.jpg" for k in range(8, 13)], "%04d.jpg", 8),            # padded, not from 1
    ([f"50%_{k:03d}.png" for k in range(1, 3)], "50%%_%03d.png", 1),    # a printf character in the name
])
def test_frame_name_patterns(names, pattern, start, tmp_path):
    for n in names:
        (tmp_path / n).write_bytes(b"")
    f = frame_folders.scan_folder(tmp_path, "c")
    assert (f.pattern, f.start, f.count) == (pattern, start, len(names))
    assert [f.path(n).name for n in range(f.start, f.start + f.count)] == names


def test_cuts_in_a_1_over_fps_time_base_are_frame_accurate(tmp_path):
    """Image sequences and AVI time frames in 1/fps: a trim bound half a frame before frame 10 once rounded
    down onto frame 9 (the clip started a frame early); bounds are now rounded up to the microsecond."""
    from tests.clipfactory import ffmpeg
    from vsrvfi.core.ffmpeg import run_ffmpeg

    src = tmp_path / "t.avi"
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=192x108:rate=24", "-frames:v", "48", "-c:v", "mpeg4", "-q:v", "2",
           "-g", "100", str(src))
    backend = encoders.Backend("cpu", "h264", "libx264", "test")
    tiers, _ = command.make_tiers(transcode_scenes.TranscodeOptions(resolutions=("108p",), preset="ultrafast"),
                                           backend, 192, 108)
    source = decode_frames(src).astype(np.float32)
    for start, n in [(0, 7), (10, 12)]:
        out = tmp_path / f"c{start}.mp4"
        job = command.SceneJob(src, "c", start, n, 24.0, tuple(tiers))
        run_ffmpeg(command.scene_command(job, [out], threads=1), out)
        clip = decode_frames(out).astype(np.float32)
        assert [int(np.argmin([np.abs(f - s).mean() for s in source])) for f in clip] == list(range(start, start + n))
