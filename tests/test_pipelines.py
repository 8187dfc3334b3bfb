"""Loaders: the batch contract, DALI == PNG on the same sequences, order, shards, epochs, bad data."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from vsrvfi.pipelines import AugmentOptions, BatchError, LoaderOptions, ShortClipWarning, build_loader, validate_batch
from vsrvfi.pipelines.sampling import all_sequences, plan_epoch, sequence_starts
from benchmarks.fixtures.clipfactory import ClipSpec, add_clip
from vsrvfi.core.errors import UsageError
from vsrvfi.core.errors import DataError

KINDS = ("dali", "png")


def loader(data_dir, kind: str, **kw):
    base = dict(kind=kind, data_dir=str(data_dir), res="144p", device="cpu", batch_size=4, workers=1)
    base.update(kw)
    return build_loader(**base)


def collect(ld) -> list[dict]:
    return [b for b in ld]


def meta(batches) -> list[tuple[int, int]]:
    return [(int(c), int(s)) for b in batches for c, s in zip(b["clip"], b["start"])]


# ------------------------------------------------------------------------------------- contract

@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("task,kw", [
    ("sr", dict(crop=64, neighbors=1, scale=4)),
    ("sr", dict(crop=(48, 96), neighbors=2, scale=2, dtype="float16")),
    ("vfi", dict(crop=(48, 64), targets=7)),
    ("vfi", dict(crop=None, targets=1, stride=2, dtype="float16")),
])
def test_batches_follow_the_contract(tiny_data_dir, kind, task, kw):
    ld = loader(tiny_data_dir, kind, task=task, split="train", epoch_size=12, **kw)
    batches = collect(ld)
    assert len(batches) == len(ld) == 3
    dtype = torch.float16 if kw.get("dtype") == "float16" else torch.float32
    for b in batches:
        n = validate_batch(b, task, scale=kw.get("scale"), dtype=dtype,
                           frames=2 * kw.get("neighbors", 0) + 1 if task == "sr" else None,
                           targets=kw.get("targets"))
        assert n == 4
        crop = kw["crop"]
        if crop is not None:
            hw = (crop, crop) if isinstance(crop, int) else crop
            img = b["hr"] if task == "sr" else b["frames"]
            assert tuple(img.shape[-2:]) == hw
    assert ld.clip_names == ["tiny-s0000", "tiny-s0001", "tiny-s0002"]


def test_validate_batch_names_the_broken_key():
    good = {"frames": torch.rand(2, 2, 3, 8, 8), "target": torch.rand(2, 1, 3, 8, 8),
            "timesteps": torch.full((2, 1), 0.5), "clip": torch.zeros(2, dtype=torch.int64),
            "start": torch.zeros(2, dtype=torch.int64), "aug": torch.zeros(2, 5, dtype=torch.int64),
            "crop": torch.zeros(2, 2, dtype=torch.int64)}
    assert validate_batch(good, "vfi") == 2
    with pytest.raises(BatchError, match="target"):
        validate_batch({**good, "target": torch.rand(2, 1, 3, 8, 9)}, "vfi")
    with pytest.raises(BatchError, match="frames"):
        validate_batch({**good, "frames": good["frames"] * 2 + 1}, "vfi")
    with pytest.raises(BatchError, match="missing"):
        validate_batch({k: v for k, v in good.items() if k != "timesteps"}, "vfi")


# ---------------------------------------------------------------------- DALI and PNG agree

@pytest.mark.parametrize("task,kw", [
    ("sr", dict(split="val", crop=64, neighbors=1)),                         # centre crops, LR by resize
    ("sr", dict(split="val", crop=None, neighbors=2, scale=2, step=3)),      # full frames
    ("sr", dict(split="val", crop=(64, 96), scale=2, lr_res="72p")),          # LR from the 72p clips
    ("vfi", dict(split="val", crop=(48, 64), targets=7)),                     # x8 groups
    ("vfi", dict(split="train", training=True, shuffle=True, augment=AugmentOptions.off(), crop=None,
                 targets=1, stride=2, step=2)),                               # shuffled, no augmentation
    ("sr", dict(split="train", training=True, augment=AugmentOptions.off(), crop=None, clip_run=3,
                epoch_size=30, last_batch="partial")),                        # runs: windows read out of order
])
def test_dali_and_png_give_the_same_frames(tiny_data_dir, task, kw):
    d = collect(loader(tiny_data_dir, "dali", task=task, **kw))
    p = collect(loader(tiny_data_dir, "png", task=task, **kw))
    assert meta(d) == meta(p) and len(d) == len(p) > 0
    for bd, bp in zip(d, p):
        for k in bd:
            if bd[k].is_floating_point():
                diff = (bd[k].float() - bp[k].float()).abs()
                # HR frames are bit-exact (same YUV->RGB); LR may differ by one level at rounding ties
                assert float(diff.max()) <= 1.01 / 255, k
                assert float(diff.mean()) < 0.01 / 255, k
            else:
                assert torch.equal(bd[k], bp[k]), k


def test_sequences_are_the_documented_frames(tiny_data_dir):
    """The 'start' metadata and the PNG files agree: frame i of a clip is file i + 1."""
    import numpy as np
    from PIL import Image

    ld = loader(tiny_data_dir, "dali", task="vfi", split="val", targets=1, stride=3, step=5, batch_size=2)
    b = next(iter(ld))
    for i in range(2):
        clip = ld.clips[int(b["clip"][i])]
        s = int(b["start"][i])
        for j, frame in ((0, b["frames"][i, 0]), (3, b["target"][i, 0]), (6, b["frames"][i, 1])):
            png = np.asarray(Image.open(f"{tiny_data_dir}/144p/frames/val/{clip.name}/{s + j + 1:06d}.png"))
            got = (frame.permute(1, 2, 0) * 255).round().to(torch.uint8).numpy()
            assert np.array_equal(got, png)


# ------------------------------------------------------------------------ order, shards, epochs

@pytest.mark.parametrize("kind", KINDS)
def test_validation_order_is_fixed(tiny_data_dir, kind):
    kw = dict(task="sr", split="val", crop=32, step=4)
    first = loader(tiny_data_dir, kind, **kw)
    a = collect(first)
    first.set_epoch(5)
    b = collect(first)
    c = collect(loader(tiny_data_dir, kind, **kw))
    expected = [(c_, s) for c_, n in enumerate((28, 24)) for s in range(0, n - 3 + 1, 4)]
    assert meta(a) == meta(b) == meta(c) == expected
    assert all(torch.equal(x["hr"], y["hr"]) for x, y in zip(a, c))
    assert all(int(x["aug"].sum()) == 0 for x in a)


def test_training_order_depends_on_seed_and_epoch(tiny_data_dir):
    kw = dict(task="vfi", split="train", crop=32, batch_size=8, last_batch="partial")
    ld = loader(tiny_data_dir, "png", **kw)
    e0 = meta(collect(ld))
    ld.set_epoch(1)
    e1 = meta(collect(ld))
    again = meta(collect(loader(tiny_data_dir, "png", **kw)))
    other_seed = meta(collect(loader(tiny_data_dir, "png", seed=1, **kw)))
    everything = all_sequences(ld.clips, 3, 1, 1)
    assert e0 == again and e0 != e1 and e0 != other_seed
    assert sorted(e0) == sorted(e1) == sorted(everything)  # an epoch visits each sequence once


@pytest.mark.parametrize("kind", KINDS)
def test_shards_are_disjoint_and_cover_the_data(tiny_data_dir, kind):
    kw = dict(task="sr", split="val", crop=32, step=2, last_batch="partial")  # 13 + 11 = 24 sequences
    shards = [meta(collect(loader(tiny_data_dir, kind, shard_id=i, num_shards=3, **kw))) for i in range(3)]
    flat = [s for sh in shards for s in sh]
    assert [len(s) for s in shards] == [8, 8, 8]
    assert len(set(flat)) == len(flat) == 24
    assert sorted(flat) == meta(collect(loader(tiny_data_dir, kind, **kw)))


def test_shards_come_from_torch_distributed_when_initialised(monkeypatch):
    import torch.distributed as dist

    monkeypatch.setattr(dist, "is_initialized", lambda: True)
    monkeypatch.setattr(dist, "get_rank", lambda: 2)
    monkeypatch.setattr(dist, "get_world_size", lambda: 4)
    assert LoaderOptions().shard() == (2, 4)
    assert LoaderOptions(shard_id=0, num_shards=1).shard() == (0, 1)
    with pytest.raises(UsageError, match="shard_id"):
        LoaderOptions(shard_id=4, num_shards=4).validate()


def test_uneven_shards_are_padded_to_equal_length():
    shards = [plan_epoch(10, shuffle=True, seed=3, epoch=2, epoch_size=None, shard_id=i, num_shards=4)
              for i in range(4)]
    flat = [i for s in shards for i in s]
    assert [len(s) for s in shards] == [3, 3, 3, 3]
    assert set(flat) == set(range(10)) and len(flat) - len(set(flat)) == 2


def test_sequence_rule_matches_dali():
    # DALI's readers start a sequence of L frames `stride` apart at s when s + L * stride <= n
    assert list(sequence_starts(24, 5, 2, 3)) == [0, 3, 6, 9, 12]
    assert list(sequence_starts(32, 3, 1, 1))[-1] == 29
    assert list(sequence_starts(5, 3, 2, 1)) == []


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("policy,batches,last", [("drop", 2, 4), ("partial", 3, 2), ("fill", 3, 4)])
def test_epoch_size_and_last_batch_policy(tiny_data_dir, kind, policy, batches, last):
    ld = loader(tiny_data_dir, kind, task="sr", split="train", crop=32, epoch_size=10, last_batch=policy)
    got = collect(ld)
    assert len(ld) == len(got) == batches
    assert got[-1]["hr"].shape[0] == last
    if policy == "fill":  # the last batch is completed from the start of the epoch
        assert meta(got)[-2:] == meta(got)[:2]


def test_clip_runs_cover_the_epoch_with_adjacent_sequences_in_consecutive_batches(tiny_data_dir):
    ld = loader(tiny_data_dir, "png", task="sr", split="train", crop=32, batch_size=3, clip_run=4,
                last_batch="partial")
    got = meta(collect(ld))
    assert sorted(got) == sorted(all_sequences(ld.clips, 3, 1, 1))  # every sequence once
    full = [got[g:g + 12] for g in range(0, len(got), 12)]
    adjacent = 0
    for group in full[:len(full) // 2]:  # runs cut short by a clip's end come last
        for k in range(3):
            for i in range(3):
                (c0, s0), (c1, s1) = group[3 * k + i], group[3 * (k + 1) + i]
                adjacent += c0 == c1 and s1 == s0 + 3
    assert adjacent == 9 * (len(full) // 2)
    assert len({c for c, _ in got[:3]}) > 1 or len({s for _, s in got[:3]}) == 3  # batches mix runs
    plain = meta(collect(loader(tiny_data_dir, "png", task="sr", split="train", crop=32, batch_size=3,
                                last_batch="partial")))
    assert sorted(plain) == sorted(got) and plain != got


def test_clip_run_defaults_to_runs_of_two_where_frames_are_decoded_on_the_cpu(tiny_data_dir):
    assert (LoaderOptions(device="cpu").effective_clip_run, LoaderOptions(device="gpu").effective_clip_run,
            LoaderOptions(device="gpu", gpu_reader="cpu").effective_clip_run,
            LoaderOptions(device="cpu", clip_run=1).effective_clip_run) == (2, 1, 2, 1)
    kw = dict(task="sr", split="train", crop=32, batch_size=3, last_batch="partial")
    plans = {run: loader(tiny_data_dir, "png", clip_run=run, **kw).plan() for run in (None, 1, 2)}
    assert plans[None] == plans[2] != plans[1]  # the default on the CPU is the clip_run 2 epoch


@pytest.mark.parametrize("clip_run", [1, 2])
def test_parallel_dali_readers_keep_the_plan_order(tiny_data_dir, clip_run):
    kw = dict(task="sr", split="train", training=False, shuffle=True, crop=32, epoch_size=22, clip_run=clip_run)
    one = collect(loader(tiny_data_dir, "dali", readers=1, **kw))
    three = collect(loader(tiny_data_dir, "dali", readers=3, workers=3, **kw))
    assert meta(one) == meta(three) and len(three) == 6 and three[-1]["hr"].shape[0] == 2
    assert all(torch.equal(a["hr"], b["hr"]) for a, b in zip(one, three))


@pytest.mark.parametrize("kind", KINDS)
def test_a_pass_stopped_early_restarts_the_epoch(tiny_data_dir, kind):
    ld = loader(tiny_data_dir, kind, task="vfi", split="val", crop=32, readers=2, workers=2)
    first = next(iter(ld))
    full = collect(ld)
    assert len(full) == len(ld) and meta(full[:1]) == meta([first])
    assert meta(collect(ld)) == meta(full)


# ----------------------------------------------------------------------------------- bad data

@pytest.mark.parametrize("kind", KINDS)
def test_short_clip_is_skipped_with_a_warning(tiny_data_dir, tmp_path, kind):
    add_clip(tmp_path, ClipSpec("short-s0000", "train", 6, "testsrc2=size=256x144"), {"144p": (256, 144)})
    add_clip(tmp_path, ClipSpec("long-s0001", "train", 12, "testsrc2=size=256x144"), {"144p": (256, 144)})
    with pytest.warns(ShortClipWarning, match="short-s0000.*6 frames.*7"):
        ld = loader(tmp_path, kind, task="sr", neighbors=3, crop=32, batch_size=2)
    assert ld.clip_names == ["long-s0001"]
    assert {c for c, _ in meta(collect(ld))} == {0}


@pytest.mark.parametrize("kind", KINDS)
def test_empty_data_dir_is_a_one_line_error(tmp_path, kind):
    with pytest.raises(DataError) as err:
        loader(tmp_path, kind, task="sr")
    msg = str(err.value)
    assert "\n" not in msg and str(tmp_path) in msg and "no " in msg
    with pytest.raises(DataError, match="not found"):
        loader(tmp_path / "missing", kind, task="sr")


def test_bad_options_are_one_line_errors(tiny_data_dir):
    with pytest.raises(UsageError, match="crop"):
        loader(tiny_data_dir, "dali", task="sr", crop=30, scale=4)  # not a multiple of the scale
    with pytest.raises(UsageError, match="smaller than the crop"):
        loader(tiny_data_dir, "png", task="vfi", crop=200)
    with pytest.raises(UsageError, match="unknown loader option"):
        LoaderOptions.from_dict({"kind": "png", "batchsize": 3})
    with pytest.raises(UsageError, match="kind"):
        LoaderOptions(kind="nvvl").validate()


def test_options_from_yaml_style_dict():
    o = LoaderOptions.from_dict({"kind": "png", "crop": [64, 96], "augment": {"hflip": True, "rot90": False}})
    assert o.crop_hw == (64, 96) and o.augment.hflip == 0.5 and o.augment.rot90 == 0.0
    assert o.augmentation.rot90 == 0.0 and o.is_training and o.last_batch_policy == "drop"
    assert not LoaderOptions(split="val").augmentation.hflip


def test_h264_clips_on_the_cpu_dali_loader_are_one_line_before_any_pipeline(tmp_path):
    """DALI's CPU reader has no H.264 decoder: say why and what to do, instead of 90 lines of DALI errors."""
    import subprocess
    import sys

    from benchmarks.fixtures.clipfactory import DEFAULT_CLIPS, build_data_dir

    data = build_data_dir(tmp_path / "h264", clips=DEFAULT_CLIPS[2:4], sizes={"72p": (128, 72)}, pngs=True,
                          codec="h264")
    with pytest.raises(UsageError) as err:  # a setting, not a clip at fault: data.on_bad_clip must not skip them
        loader(data, "dali", task="sr", res="72p", crop=32)
    msg = str(err.value)
    assert "\n" not in msg and "h264 clips (1 of 1)" in msg and "--codec vp9" in msg and "data.loader=png" in msg
    assert next(iter(loader(data, "png", task="sr", res="72p", crop=32)))["hr"].shape[-1] == 32  # PNG works
    res = subprocess.run([sys.executable, "-m", "vsrvfi.trainers.train", "vsrnet", f"data.dir={data}",
                          "data.res=72p", "data.device=cpu", "data.crop=32", "data.on_bad_clip=skip",
                          f"experiment.root={tmp_path}"],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 2 and res.stderr.count("\n") == 1 and "need a GPU (NVDEC)" in res.stderr, res.stderr
    assert not list(tmp_path.glob("*/checkpoints/*.pth"))  # refused before training, not "stopped at step 0"


def test_a_frame_that_cannot_be_read_is_one_bad_clip_naming_it(tiny_data_dir, tmp_path):
    """The loader itself says which clip is bad (the trainer only decides to stop or skip it)."""
    import shutil

    from vsrvfi.pipelines import BadClip

    data = Path(shutil.copytree(tiny_data_dir, tmp_path / "data"))
    frames = sorted((data / "144p" / "frames" / "train" / "tiny-s0001").glob("*.png"))
    for f in frames[1:]:  # the first frame stays readable: the clip is found, its frames fail when read
        f.write_bytes(b"not a png")
    ld = loader(data, "png", task="sr", crop=32, batch_size=8, split="train")
    with pytest.raises(BadClip) as err:
        collect(ld)
    assert err.value.clip == "tiny-s0001" and "\n" not in str(err.value)
    assert str(err.value).startswith(str(frames[0].parent)) and "cannot be read" in str(err.value)
    frames[0].write_bytes(b"")  # now unreadable when the clips are found: the same BadClip, from build_loader
    with pytest.raises(BadClip) as err:
        loader(data, "png", task="sr", crop=32, split="train")
    assert err.value.clip == "tiny-s0001"


def test_an_error_naming_no_clip_is_not_a_bad_clip(tmp_path):
    from vsrvfi.pipelines.bad_clips import named_clip

    clip = tmp_path / "144p" / "scenes" / "train" / "tiny-s0002.mp4"
    bad = named_clip(RuntimeError(f"[/opt/dali/reader.cc:12] Error in thread 0: {clip}: moov atom not found"), tmp_path)
    assert (bad.clip, bad.path) == ("tiny-s0002", str(clip))
    assert bad.problem.startswith("cannot be read (") and bad.problem.endswith(": moov atom not found)")
    assert named_clip(RuntimeError("CUDA error: out of memory"), tmp_path) is None
    other = tmp_path.parent / "elsewhere" / "144p" / "scenes" / "train" / "x.mp4"  # not under the data set
    assert named_clip(RuntimeError(f"{other}: bad"), tmp_path) is None
