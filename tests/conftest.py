"""Shared fixtures: small generated videos and a small prepared data set (nothing is downloaded)."""
from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from vsrvfi.tools.demo_video import make_demo_video
from vsrvfi.core.ffmpeg import ffmpeg_binary

DEMO_SIZE = (320, 180)
DEMO_FPS = 24
DEMO_SCENE_SECONDS = 1.0
DEMO_SCENES = 4


def ffmpeg(*args: str) -> None:
    """Run the project's ffmpeg binary quietly; fail the test with ffmpeg's message on error."""
    res = subprocess.run([ffmpeg_binary(), "-hide_banner", "-loglevel", "error", "-y", *args],
                         capture_output=True, text=True)
    if res.returncode:
        raise AssertionError(f"ffmpeg {' '.join(args)} failed: {res.stderr.strip()}")


def decode_frames(path: str | Path) -> np.ndarray:
    """All frames of a video as uint8 RGB, (T, H, W, 3), decoded with PyAV."""
    import av

    with av.open(str(path)) as c:
        return np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)])


@pytest.fixture(scope="session")
def demo_source(tmp_path_factory) -> Path:
    """A 320x180, 24 fps, 4-scene H.264 video with an audio track (the demo generator, small)."""
    out = tmp_path_factory.mktemp("src") / "demo.mp4"
    return make_demo_video(out, *DEMO_SIZE, fps=DEMO_FPS, scene_seconds=DEMO_SCENE_SECONDS,
                           scenes=DEMO_SCENES, progress=False)


@pytest.fixture
def seeded_single_thread():
    """Seed torch and run single-threaded: far faster than 2 threads on a shared 2-core machine."""
    torch.manual_seed(0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
