"""Which ffmpeg converts YUV to RGB: always the wheel's, whatever is on PATH or in $FFMPEG.

(tests/test_prepare_data.py and test_pipelines.py check that the wheel's frames equal DALI's decode;
with Debian 12's FFmpeg 5.1 first on PATH those checks failed before conversions were pinned.)
"""
from __future__ import annotations

import os
import stat

import numpy as np

from benchmarks.fixtures.clipfactory import write_clip
from vsrvfi.core import ffmpeg as ff
from vsrvfi.inference.video_io import read_frames
from vsrvfi.pipelines.png_frames import read_png
from vsrvfi.tools.extract_frames import extract_clip


def _install_foreign_ffmpeg(tmp_path, monkeypatch):
    """A broken `ffmpeg` first on PATH and in $FFMPEG and IMAGEIO_FFMPEG_EXE (like a distribution's build)."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    fake = bindir / "ffmpeg"
    fake.write_text("#!/bin/sh\necho 'not the wheel ffmpeg' >&2\nexit 1\n")
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FFMPEG", str(fake))
    monkeypatch.setenv("IMAGEIO_FFMPEG_EXE", str(fake))
    ff.ffmpeg_binary.cache_clear()
    ff.rgb_ffmpeg_binary.cache_clear()
    return fake


def test_rgb_conversions_ignore_the_ffmpeg_on_path(tmp_path, monkeypatch):
    clip = write_clip(tmp_path / "clip.mp4", "testsrc2=size=64x48", 6, (64, 48))
    fake = _install_foreign_ffmpeg(tmp_path, monkeypatch)
    try:
        assert ff.ffmpeg_binary() == str(fake)  # encoding follows $FFMPEG ...
        assert ff.rgb_ffmpeg_binary() != str(fake)  # ... RGB conversion does not
        frames = np.stack(list(read_frames(clip)))  # the evaluator's and video tools' decoder
        out = tmp_path / "frames"
        extract_clip(clip, out, threads=1, on_frames=lambda n: None)  # the PNG loader's frames
        pngs = np.stack([read_png(str(p)) for p in sorted(out.glob("*.png"))])
        assert frames.shape == (6, 48, 64, 3) and np.array_equal(frames, pngs)
    finally:
        ff.ffmpeg_binary.cache_clear()
        ff.rgb_ffmpeg_binary.cache_clear()
