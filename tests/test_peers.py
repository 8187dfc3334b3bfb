"""Peer loaders (torchcodec, decord): the PNG loader's samples, decoded from the clips, within the colour
tolerance for another YUV->RGB conversion; a missing library is one line naming what to install."""
from __future__ import annotations

import json
import types

import pytest

from benchmarks import dataloader
from benchmarks.fixtures.clipfactory import build_data_dir
from vsrvfi.pipelines.bad_clips import BadClip
from vsrvfi.pipelines import AugmentOptions, LoaderOptions, build_loader, validate_batch
from vsrvfi.pipelines import peers as peers_mod
from vsrvfi.pipelines.colour import PEER_TOLERANCE, batch_difference, within_tolerance
from vsrvfi.pipelines.peers import PEERS, PeerUnavailable, check_peer

ALL = AugmentOptions(hflip=0.5, vflip=0.5, rot90=0.5, reverse=0.5, swap_rgb=0.5)


def need(peer: str) -> None:
    try:
        check_peer(peer)
    except PeerUnavailable as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="session")
def tiny_h264_dir(tmp_path_factory):
    """The tiny test set in H.264 (which DALI's CPU reader cannot read, and the peers can)."""
    return build_data_dir(tmp_path_factory.mktemp("tiny_h264_peers"), codec="h264")


@pytest.mark.parametrize("peer", PEERS)
@pytest.mark.parametrize("codec,task,kw", [
    ("vp9", "sr", dict(crop=64, neighbors=1, scale=4)),
    ("h264", "sr", dict(crop=(48, 96), neighbors=2, scale=2)),
    ("vp9", "vfi", dict(crop=(48, 64), targets=3)),
])
def test_peer_batches_are_the_png_batches(peer, codec, task, kw, tiny_data_dir, tiny_h264_dir):
    need(peer)
    data = tiny_data_dir if codec == "vp9" else tiny_h264_dir
    opts = LoaderOptions(kind="png", task=task, data_dir=str(data), res="144p", split="train", device="cpu",
                         batch_size=4, workers=1, epoch_size=4, augment=ALL, **kw)
    ref = list(build_loader(opts))
    got = list(build_loader(opts, kind=peer))  # data.loader=torchcodec|decord in a trainer config
    assert len(got) == len(ref) == 1
    for b, r in zip(got, ref):
        validate_batch(b, task, scale=kw.get("scale"))
        diff = batch_difference(b, r)  # raises unless clip, start, crop, aug (and timesteps) are identical
        assert within_tolerance(diff, PEER_TOLERANCE), diff
        # the tolerance tells samples apart: each sample against its neighbour's reference is far outside it
        rolled = {k: v.roll(1, 0) for k, v in r.items()}
        rolled.update({k: b[k] for k in ("clip", "start", "aug", "crop", "timesteps") if k in b})
        assert not within_tolerance(batch_difference(b, rolled), PEER_TOLERANCE)


def test_a_clip_the_peer_cannot_decode_is_one_line_naming_it(tiny_data_dir, monkeypatch):
    need("torchcodec")

    def broken(path, device):
        def decode(indices):
            raise RuntimeError("Requested next frame while there are no more frames left to decode.\nmore")
        return decode

    monkeypatch.setitem(peers_mod.OPENERS, "torchcodec", broken)  # forked workers inherit it
    ld = build_loader(kind="torchcodec", task="sr", data_dir=str(tiny_data_dir), res="144p", split="train",
                      device="cpu", crop=64, batch_size=2, workers=1, shuffle=False)
    with pytest.raises(BadClip) as exc:  # the loaders' one error type for a clip (pipelines.bad_clips)
        next(iter(ld))
    assert str(exc.value) == (f"{ld.clips[0].path}: cannot be read (torchcodec cannot decode frames 0-2: "
                              "Requested next frame while there are no more frames left to decode.)")


def test_a_peer_without_its_library_is_one_line_naming_the_extra(monkeypatch):
    def missing(name):
        raise ModuleNotFoundError(f"No module named {name!r}", name=name)

    monkeypatch.setattr(peers_mod.importlib, "import_module", missing)
    with pytest.raises(PeerUnavailable) as exc:
        check_peer("decord")
    assert str(exc.value) == "decord: not installed; pip install 'dali-vsr-vfi[peers]'"


def test_torchcodec_without_ffmpeg_libraries_names_the_system_packages(monkeypatch):
    fake = {"torchcodec": types.SimpleNamespace(__version__="0.17.0"),
            "torchcodec._core.ops": types.SimpleNamespace(_FFMPEG_AVAILABLE=False)}
    monkeypatch.setattr(peers_mod.importlib, "import_module", fake.__getitem__)
    with pytest.raises(PeerUnavailable) as exc:
        check_peer("torchcodec")
    msg = str(exc.value)
    assert "\n" not in msg and msg.startswith("torchcodec: ") and "apt-get install libavcodec59" in msg


@pytest.mark.slow
def test_benchmark_peer_rows_check_their_first_batch_and_skip_a_missing_peer(tiny_data_dir, tmp_path, monkeypatch,
                                                                             capsys):
    need("torchcodec")
    real = dataloader.check_peer

    def only_torchcodec(name):
        if name == "decord":
            raise PeerUnavailable("decord: not installed; pip install 'dali-vsr-vfi[peers]'")
        return real(name)

    monkeypatch.setattr(dataloader, "check_peer", only_torchcodec)
    out = tmp_path / "bench"
    rc = dataloader.main(["--data", str(tiny_data_dir), "--res", "144p", "--crop", "64", "--batch-size", "2",
                          "--workers", "1", "--iters", "2", "--warmup", "1", "--repeats", "1", "--kinds", "png",
                          "--no-ceiling", "--peers", "--out", str(out)])
    assert rc == 0
    result = json.loads(out.with_suffix(".json").read_text())
    rows = {r["kind"]: r for r in result["rows"]}
    assert set(rows) == {"png", "torchcodec"}
    assert rows["png"]["check"] == "reference" and rows["torchcodec"]["check"].startswith("= PNG")
    assert rows["torchcodec"]["first_batch_s"] > 0 and rows["torchcodec"]["frames_per_s"] > 0
    assert result["skipped"] == ["decord rows skipped: decord: not installed; pip install 'dali-vsr-vfi[peers]'"]
    printed = capsys.readouterr().out
    assert "note: decord rows skipped" in printed and "1st batch s" in printed
