"""Shared fixtures, each built once per session: a small generated video and a tiny prepared data set
(nothing is downloaded). The helpers that make them are in benchmarks/fixtures/clipfactory.py."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from benchmarks.fixtures.clipfactory import DEMO_FPS, DEMO_SCENE_SECONDS, DEMO_SCENES, DEMO_SIZE, build_data_dir
from vsrvfi.tools.demo_video import make_demo_video


@pytest.fixture(scope="session")
def demo_source(tmp_path_factory) -> Path:
    """A 320x180, 24 fps, 4-scene H.264 video with an audio track (the demo generator, small)."""
    out = tmp_path_factory.mktemp("src") / "demo.mp4"
    return make_demo_video(out, *DEMO_SIZE, fps=DEMO_FPS, scene_seconds=DEMO_SCENE_SECONDS,
                           scenes=DEMO_SCENES, progress=False)


@pytest.fixture(scope="session")
def tiny_data_dir(tmp_path_factory) -> Path:
    """The default tiny data set (5 clips, 144p and 72p, VP9, PNG frames)."""
    return build_data_dir(tmp_path_factory.mktemp("tiny_data"))


@pytest.fixture
def seeded_single_thread():
    """Seed torch and run single-threaded: far faster than 2 threads on a shared 2-core machine."""
    torch.manual_seed(0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
