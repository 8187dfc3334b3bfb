"""Packed frame import (--pack) and the sequence index: round trip, sequence bounds, resume, incremental
import, the index read instead of probes, and the DALI loader's open files over chunked file lists."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from benchmarks.fixtures.clipfactory import decode_frames
from benchmarks.fixtures.framefactory import make_vimeo
from vsrvfi.core import layout
from vsrvfi.core.seqindex import load_index
from vsrvfi.pipelines import build_loader
from vsrvfi.tools import prepare_data

FAST = ["--codec", "vp9", "--preset", "ultrafast"]
RES = "64p"  # the frames' own height: 128x64 sequences
PACK = 4


def _import(root: Path, data: Path) -> dict:
    assert prepare_data.main([str(root), str(data), "--from-frames", *FAST, "--pack", str(PACK)]) == 0
    return json.loads((data / "summary.json").read_text())


@pytest.fixture(scope="module")
def packed(tmp_path_factory) -> tuple[Path, Path]:
    """12 septuplets at 128x64 (sequences 1 and 4 in the test list, 5 in neither), packed 4 to a file."""
    tmp = tmp_path_factory.mktemp("packed")
    root = make_vimeo(tmp / "vimeo", sequences=12, size=(128, 64), test=(1, 4), unlisted=(5,))
    data = tmp / "data"
    _import(root, data)
    return root, data


def _png(root: Path, index, i: int, k: int) -> np.ndarray:
    from PIL import Image

    seq = index.sequences
    path = root / seq["folder"][i] / (seq["pattern"][i] % (seq["start_number"][i] + k))
    return np.array(Image.open(path).convert("RGB"))


def _loader(data: Path, kind: str, **kw):
    opts = dict(kind=kind, task="vfi", data_dir=str(data), res=RES, split="train", batch_size=4, device="cpu",
                crop=None, targets=1, training=False, workers=1)
    return build_loader(**{**opts, **kw})


def test_every_sequence_decodes_to_its_own_frames_from_a_keyframe(packed):
    import av

    root, data = packed
    index = load_index(data)
    seq = index.sequences
    assert len(index) == 11 and index.num_files == 4  # 9 train in 3 shards (4, 4, 1), 2 val in 1
    assert sorted(set(index.files["split"])) == ["train", "val"] and index.tiers[RES]["codec"] == "vp9"
    for f, name in enumerate(index.files["name"]):
        path = layout.clip_path(data, RES, index.files["split"][f], name)
        frames = decode_frames(path).astype(np.float32)
        members = [i for i, fi in enumerate(seq["file"]) if fi == f]
        assert len(frames) == index.files["frames"][f] == sum(seq["frames"][i] for i in members)
        with av.open(str(path)) as c:
            keys = [i for i, p in enumerate(p for p in c.demux(video=0) if p.size) if p.is_keyframe]
        assert keys == [seq["first"][i] for i in members]  # a keyframe at each sequence's first frame only
        for i in members:
            for k in range(seq["frames"][i]):
                src = _png(root, index, i, k).astype(np.float32)
                psnr = 10 * np.log10(255 ** 2 / np.mean((frames[seq["first"][i] + k] - src) ** 2))
                assert psnr > 25, (seq["name"][i], k, psnr)


def test_both_loaders_give_each_sequences_frames_and_never_cross_two(packed):
    """DALI (shards) and PNG (the set's own frames, in place) visit the same sequences; every sample's
    frames are its own sequence's, with groups that span most of a sequence."""
    root, data = packed
    index = load_index(data)
    where = {name: i for i, name in enumerate(index.sequences["name"])}
    kw = dict(targets=1, stride=2, step=1)  # groups of 3 frames 2 apart: 6 of a sequence's 7 frames
    d, p = _loader(data, "dali", **kw), _loader(data, "png", **kw)
    assert [c.name for c in d.clips] == [c.name for c in p.clips] and d.sequences == p.sequences
    assert sorted({s for _, s in d.sequences}) == [0, 1] and len(d.sequences) == 18
    (hr_list, _), = d.reader_lists(1)
    for line, (c, s) in zip(Path(hr_list).read_text().splitlines(), [d.sequences[i] for i in d.plan()]):
        path, label, start, end = line.split()
        i = where[d.clips[int(label)].name]
        first, n = index.sequences["first"][i], index.sequences["frames"][i]
        assert first <= int(start) and int(end) <= first + n and Path(path).stem == index.files["name"][
            index.sequences["file"][i]]
    for bd, bp in zip(d, p):
        assert torch.equal(bd["clip"], bp["clip"]) and torch.equal(bd["start"], bp["start"])
        for b in range(len(bd["clip"])):
            i = where[d.clips[int(bd["clip"][b])].name]
            truth = torch.from_numpy(_png(root, index, i, int(bd["start"][b]) + 2)).permute(2, 0, 1).float() / 255
            assert torch.equal(bp["target"][b, 0], truth)  # PNG: the frames as distributed, exactly
            mse = float(((bd["target"][b, 0] - truth) ** 2).mean())
            assert 10 * np.log10(1 / mse) > 25  # DALI: the same frame through VP9


def test_the_index_is_read_instead_of_probing(packed, monkeypatch):
    from vsrvfi.pipelines import sampling

    def no_probe(*_a, **_k):
        raise AssertionError("a clip was probed")
    monkeypatch.setattr(sampling, "probe", no_probe)
    ld = _loader(packed[1], "dali", split="val")
    assert [c.name for c in ld.clips] == ["vimeo-00001-0002", "vimeo-00002-0001"]
    assert [c.first for c in ld.clips] == [0, 7] and ld.clips[0].codec == "vp9"


def test_chunked_file_lists_keep_the_plan_and_bound_open_files(packed):
    _, data = packed
    ld = _loader(data, "dali", targets=1, step=1, batch_size=2)  # 9 sequences x 5 starts
    ld.list_chunk = 8  # 23 batches (the last one partial) in 6 chunks, each with its own file lists and pipelines
    fds = []
    got = []
    for b in ld:
        fds.append(len(os.listdir("/proc/self/fd")))
        got += list(zip(b["clip"].tolist(), b["start"].tolist()))
    assert got == [ld.sequences[i] for i in ld.plan()] and len(got) == 45 and len(ld.chunks(ld.windows())) == 6
    assert max(fds) - min(fds) <= 16, fds


@pytest.mark.slow  # two imports (6-8 s on 2 shared cores)
def test_resume_rewrites_only_missing_shards_and_new_folders_add_shards(packed, tmp_path):
    root, data = packed
    root2, data2 = tmp_path / "vimeo", tmp_path / "data"
    shutil.copytree(root, root2)
    shutil.copytree(data, data2)
    index = load_index(data2)
    train = sorted(layout.list_clips(data2, RES, "train"))
    before = {p.name: p.read_bytes() for p in train}
    train[1].unlink()
    s = _import(root2, data2)
    assert (s["packed"]["shards_written"], s["packed"]["sequences_written"]) == (1, 4)
    assert {p.name: p.read_bytes() for p in layout.list_clips(data2, RES, "train")}.keys() == before.keys()
    assert [p.read_bytes() == before[p.name] for p in train if p != train[1]] == [True, True]

    make_vimeo(root2 / "more", sequences=13, size=(128, 64))  # 13th sequence: 00004/0001
    new = root2 / "sequences" / "00004" / "0001"
    shutil.copytree(root2 / "more" / "sequences" / "00004" / "0001", new)
    with open(root2 / "sep_trainlist.txt", "a") as f:
        f.write("00004/0001\n")
    s = _import(root2, data2)
    assert (s["packed"]["shards_written"], s["packed"]["sequences_written"], s["packed"]["sequences"]) == (1, 1, 12)
    after = load_index(data2)
    assert after.sequences["name"][:11] == index.sequences["name"] and after.sequences["name"][11] == "vimeo-00004-0001"
    assert all(p.read_bytes() == before[p.name] for p in train if p.name in before and p != train[1])
    assert len(_loader(data2, "dali").clips) == 10


@pytest.mark.slow  # an import of 300 frames at 128x64 (7 s on 2 shared cores)
def test_long_clips_stay_one_file_each_and_are_indexed(tmp_path, monkeypatch):
    from benchmarks.fixtures.framefactory import make_reds
    from vsrvfi.pipelines import sampling

    root = make_reds(tmp_path / "REDS", ("000", "001", "002"), frames=40, size=(128, 64))
    data = tmp_path / "data"
    s = _import(root, data)
    assert "packed" not in s and not (data / RES / "frames").exists()  # 40 frames > 32: not packed; nothing extracted
    index = load_index(data)
    assert index.files["name"] == ["reds-000", "reds-001", "reds-002"] and index.files["frames"] == [40] * 3
    assert [p.stem for p in layout.list_clips(data, RES, "train")] == ["reds-001", "reds-002"]
    monkeypatch.setattr(sampling, "probe", lambda *_a, **_k: pytest.fail("a clip was probed"))
    d, p = _loader(data, "dali", batch_size=2), _loader(data, "png", batch_size=2)
    assert d.sequences == p.sequences and len(d.sequences) == 2 * 38
    assert p.clips[0].path == root / "train_sharp" / "001" and p.clips[0].frame_pattern == "%08d.png"
    b = next(iter(p))
    truth = np.array(__import__("PIL.Image").Image.open(root / "train_sharp" / "001" / "00000001.png").convert("RGB"))
    assert torch.equal(b["target"][0, 0], torch.from_numpy(truth).permute(2, 0, 1).float() / 255)


def test_adding_a_tier_to_packed_shards_is_refused_in_one_line(packed):
    from vsrvfi.core.errors import UsageError
    from vsrvfi.tools import transcode_scenes

    with pytest.raises(UsageError, match="--pack"):
        transcode_scenes.transcode(packed[1], transcode_scenes.TranscodeOptions(codec="vp9", resolutions=("32p",)))


def test_the_benchmarks_one_process_bound_encodes_the_same_frames(packed, tmp_path):
    from benchmarks.scale import one_process_bound

    b = one_process_bound(packed[0], tmp_path, "vp9", "ultrafast", (128, 64), limit=3)
    assert (b["sequences"], b["frames"]) == (3, 21) and b["wall_s"] > 0
    assert not (tmp_path / "bound").exists() and not (tmp_path / "bound.mp4").exists()  # nothing left behind
