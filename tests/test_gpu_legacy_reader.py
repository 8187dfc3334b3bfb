"""DALI's legacy GPU reader's limits, checked on the CPU before a pipeline is built (pipelines.legacy_reader).

The clips are made to disagree with the reader: a tier holding two frame sizes, a clip whose stream
duration (its mp4 `mdhd` box) says fewer frames than it has packets, and a clip whose first frame is
not 1 / average rate long. The loader is built for device="gpu" with the legacy reader (no GPU is
needed until a pipeline is built), so these run everywhere.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import pytest

from vsrvfi.core import layout
from vsrvfi.core.errors import DataError, UsageError
from vsrvfi.core.media import probe
from vsrvfi.pipelines import build_loader
from vsrvfi.pipelines.legacy_reader import LegacyReaderWarning, legacy_view
from tests.clipfactory import ffmpeg, vp9_args, write_clip

RES = "144p"


def clip(data: Path, name: str, size=(256, 144), frames: int = 16) -> Path:
    return write_clip(layout.clip_path(data, RES, "train", name), "testsrc2=size=256x144", frames, size)


def shorten_mdhd(path: Path, fraction: float) -> None:
    """Rewrite the (version 0) mdhd duration of the clip's only track: the packets stay, the duration shrinks."""
    data = bytearray(path.read_bytes())
    i = data.find(b"mdhd")
    assert i > 0 and data[i + 4] == 0
    duration = int.from_bytes(data[i + 20:i + 24], "big")
    data[i + 20:i + 24] = int(duration * fraction).to_bytes(4, "big")
    path.write_bytes(bytes(data))


def gpu_loader(data: Path, reader: str = "legacy", **kw):
    return build_loader(kind="dali", task="vfi", data_dir=str(data), res=RES, split="train", batch_size=2,
                        crop=64, targets=1, device="gpu", device_id=0, gpu_reader=reader, **kw)


def test_mixed_frame_sizes_are_refused_for_the_legacy_reader_only(tmp_path):
    data = tmp_path / "data"
    clip(data, "a-s0000")
    clip(data, "a-s0001")
    clip(data, "b-s0000", size=(192, 144))  # another source's aspect ratio at the same tier
    with pytest.raises(UsageError) as info:
        gpu_loader(data)
    msg = str(info.value)
    assert "\n" not in msg and "2 frame sizes" in msg, msg
    assert "256x144 (2 clips, coded 256x144)" in msg and "192x144 (1 clip, coded 192x144)" in msg, msg
    assert "data.gpu_reader=experimental" in msg and str(data / RES) in msg, msg
    assert len(gpu_loader(data, "experimental").clips) == 3  # the way out named by the message
    cpu = build_loader(kind="dali", task="vfi", data_dir=str(data), res=RES, split="train", batch_size=2, crop=64,
                       device="cpu")
    assert len(cpu.clips) == 3


def test_the_legacy_frame_count_cuts_a_clip_whose_duration_disagrees(tmp_path):
    data = tmp_path / "data"
    good = clip(data, "a-s0000", frames=16)
    short = clip(data, "a-s0001", frames=16)
    shorten_mdhd(short, 0.75)
    assert probe(short).num_frames == 16  # the project counts packets
    assert legacy_view(short).frame_count == 12 and legacy_view(good).frame_count == 16
    with pytest.warns(LegacyReaderWarning, match=r"a-s0001.mp4: the legacy GPU reader counts 12 frames .* of its 16"):
        loader = gpu_loader(data, step=1)
    assert [c.num_frames for c in loader.clips] == [16, 12]
    ends = {c: max(s for cc, s in loader.sequences if cc == c) + 3 for c in (0, 1)}  # VFI triplets: 3 frames
    assert ends == {0: 16, 1: 12}  # no range ends past the reader's own count: the pipeline build cannot fail
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert [c.num_frames for c in gpu_loader(data, "experimental").clips] == [16, 16]  # untouched


def test_a_clip_the_legacy_reader_calls_variable_frame_rate_is_left_out(tmp_path):
    data = tmp_path / "data"
    clip(data, "a-s0000")
    vfr = layout.clip_path(data, RES, "train", "a-s0001")
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=256x144:rate=24", "-frames:v", "16", "-vf",
           "setpts='if(eq(N\\,0)\\,0\\,(N+1)/24/TB)'", "-fps_mode", "passthrough", *vp9_args(), str(vfr))
    assert legacy_view(vfr).problem.startswith("variable frame rate")
    with pytest.warns(LegacyReaderWarning, match=r"a-s0001.mp4: variable frame rate .*; clip left out"):
        loader = gpu_loader(data)
    assert [c.name for c in loader.clips] == ["a-s0000"]
    shorten_mdhd(layout.clip_path(data, RES, "train", "a-s0000"), 0.1)  # 1 frame left by the reader's count
    with pytest.warns(LegacyReaderWarning), pytest.raises(DataError, match="no clip is readable by DALI's legacy"):
        gpu_loader(data)
