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


# ----------------------------------------------------------------- validation per sequence (trainers.validation)

def _val_truth(data: Path) -> dict[str, list[np.ndarray]]:
    """Each val sequence's frames, cut out of one full decode of its shard (the decoder validation uses)."""
    from vsrvfi.inference.video_io import read_frames

    index = load_index(data)
    seq, files = index.sequences, index.files
    out = {}
    for i, name in enumerate(seq["name"]):
        f = seq["file"][i]
        if files["split"][f] == "val":
            frames = list(read_frames(layout.clip_path(data, RES, "val", files["name"][f])))
            out[name] = frames[seq["first"][i]:seq["first"][i] + seq["frames"][i]]
    return out


def _recording_reads(monkeypatch) -> list:
    """Record every read validation makes: (clip path, first frame, frames in the list, the list)."""
    from vsrvfi.trainers import validation

    calls = []

    def read(src, needed, on_frame=None, first=0, total=None):
        frames = real(src, needed, on_frame, first, total)
        calls.append((src.path, first, total, frames))
        return frames
    real = validation.read_selected
    monkeypatch.setattr(validation, "read_selected", read)
    return calls


class _OracleSR:
    """An SR 'model' that returns the exact target for a window of LR frames made from one sequence's
    own frames (padded at that sequence's ends), and black for any other window: a perfect score
    proves every scored window was the sequence's own."""

    scale, window, device = 4, 3, torch.device("cpu")

    def __init__(self, truth: dict[str, list[np.ndarray]]):
        from vsrvfi.inference.sr import window_indices
        from vsrvfi.pipelines.png_frames import downscale

        def lr(f: np.ndarray) -> torch.Tensor:
            return downscale(torch.from_numpy(f).permute(2, 0, 1)[None], self.scale).float().div_(255)
        self.table = {}
        for frames in truth.values():
            for k in range(len(frames)):
                window = torch.cat([lr(frames[j]) for j in window_indices(k, len(frames), self.window)])
                self.table[window.numpy().tobytes()] = torch.from_numpy(frames[k]).permute(2, 0, 1)[None].float() / 255

    def __call__(self, lr: torch.Tensor) -> torch.Tensor:
        hit = self.table.get(lr.numpy().tobytes())
        return hit if hit is not None else torch.zeros(1, 3, lr.shape[-2] * 4, lr.shape[-1] * 4)


class _OracleVFI:
    """A VFI 'model' that returns the exact middle frame for two ends 2 apart in one sequence, else black."""

    device = torch.device("cpu")

    def __init__(self, truth: dict[str, list[np.ndarray]]):
        from vsrvfi.inference.runtime import to_tensor

        self.table = {}
        for frames in truth.values():
            for i in range(len(frames) - 2):
                key = to_tensor(frames[i], self.device).numpy().tobytes() + to_tensor(frames[i + 2], self.device).numpy().tobytes()
                self.table[key] = to_tensor(frames[i + 1], self.device)

    def between(self, a: torch.Tensor, b: torch.Tensor, ts) -> dict:
        hit = self.table.get(a.numpy().tobytes() + b.numpy().tobytes())
        return {t: hit if hit is not None else torch.zeros_like(a) for t in ts}


@pytest.mark.parametrize("task", ["sr", "vfi"])
def test_validation_scores_whole_sequences_never_across_two(packed, monkeypatch, task, seeded_single_thread):
    """Every frame (frames=0) of the two val sequences, which share one shard and differ completely
    (a fractal landscape, then a photograph): each read starts at its sequence's first frame and
    stays inside it, and a model that knows each sequence's own frames scores perfectly (120 dB);
    scoring the shard as one clip would put a window or gap across the two."""
    from vsrvfi.inference.evaluate import Convention
    from vsrvfi.trainers.validation import Validator

    _, data = packed
    index = load_index(data)
    truth = _val_truth(data)
    calls = _recording_reads(monkeypatch)
    v = Validator.of_data_dir(data, RES, task, Convention.default(task, 4), frames=0, window=3, gap=2, cache_mb=0)
    assert [c.name for c in v.clips] == ["vimeo-00001-0002", "vimeo-00002-0001"] and v.available == 2
    oracle = _OracleSR(truth) if task == "sr" else _OracleVFI(truth)
    r = v.score(oracle)
    where = {n: i for i, n in enumerate(index.sequences["name"])}
    assert len(calls) == 2
    for clip, (path, first, total, frames) in zip(v.clips, calls):
        i = where[clip.name]
        assert (first, total) == (index.sequences["first"][i], index.sequences["frames"][i]) == (clip.first, 7)
        for k, f in enumerate(frames):  # what was decoded is the sequence's own frame k, bit for bit
            assert f is None or np.array_equal(f, truth[clip.name][k]), (clip.name, k)
        assert sum(f is not None for f in frames) == 7
    assert r.frames == (14 if task == "sr" else 6), r.line()
    assert min(p for s in r.scores for p in s.psnr) >= 100 and min(x for s in r.scores for x in s.ssim) > 0.999
    # (scoring the shard as one clip, as before: 103.8 dB mean for SR but two frames far off, SSIM 0.87)
    assert "frames of 2 sequences (of 2)" in r.line()


def test_validation_spreads_the_frame_budget_over_sequences_and_vsr_evaluate_reproduces_it(packed, monkeypatch,
                                                                                             seeded_single_thread):
    """frames=1 scores one frame of one sequence (only that sequence is decoded, from its first frame);
    frames=3 over 2 sequences scores 2 of each; `vsr-evaluate DATA_DIR --sequences M --frames P` plans
    the same sample the trainer prints it for."""
    from vsrvfi.inference.evaluate import Convention
    from vsrvfi.tools import evaluate
    from vsrvfi.trainers.validation import Validator

    _, data = packed
    conv = Convention.default("vfi")
    calls = _recording_reads(monkeypatch)
    one = Validator.of_data_dir(data, RES, "vfi", conv, frames=1, cache_mb=0)
    assert (len(one.clips), one.sequences, one.per_clip, len(one.clips[0].picks)) == (1, 1, 1, 1)
    one.score(_OracleVFI(_val_truth(data)))
    (path, first, total, frames), = calls
    assert (first, total) == (one.clips[0].first, 7) and sum(f is not None for f in frames) == 3
    three = Validator.of_data_dir(data, RES, "vfi", conv, frames=3, cache_mb=0)
    assert (three.sequences, three.per_clip, [len(c.picks) for c in three.clips]) == (2, 2, [2, 2])
    for v in (one, three):
        a = evaluate.parse_args(["-c", "x.pth", str(data), "--res", RES, "--sequences", str(v.sequences),
                                 "--frames", str(v.per_clip)])
        again, _ = evaluate.make_validator(a, "vfi", conv, 1)
        assert [(c.name, c.first, c.picks) for c in again.clips] == [(c.name, c.first, c.picks) for c in v.clips]
