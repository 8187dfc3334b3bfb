"""Standard test sets (vsr-evaluate --benchmark): layouts, protocol rules, MATLAB bicubic, CLI.

The sets are tiny copies of each official layout made from real image content (benchmarks/fixtures/benchfactory.py);
stand-in models with a known output (nearest-neighbour upscaling of the centre frame, the blend of two
frames) make every score computable here independently of the scoring loop.
"""
from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from benchmarks.fixtures import benchfactory
from benchmarks.fixtures.clipfactory import random_checkpoints
from vsrvfi.core.errors import DataError
from vsrvfi.inference import benchmark, protocols, testsets
from vsrvfi.inference.sr import Upscaler
from vsrvfi.inference.vfi import Interpolator
from vsrvfi.models.matlab_resize import downscale_uint8, imresize, resize_matrix
from vsrvfi.models.metrics import interpolation_error, psnr, ssim, ssim_3d
from vsrvfi.tools import evaluate

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def sets(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("sets")
    for name, make in benchfactory.MAKERS.items():
        make(root / name)
    return root


class NearestSR(nn.Module):
    """Stand-in VSR model: the window's centre frame upscaled by nearest neighbour; keeps its inputs."""

    num_frame, scale, model_name = 3, 4, "stand-in"

    def __init__(self):
        super().__init__()
        self.inputs: list[torch.Tensor] = []

    def forward(self, x):
        self.inputs.append(x.clone())
        return F.interpolate(x[:, x.shape[1] // 2], scale_factor=4, mode="nearest")


class Blend(nn.Module):
    """Stand-in interpolator: the average of the two frames; keeps the input sizes."""

    arbitrary, model_name = True, "stand-in"

    def __init__(self):
        super().__init__()
        self.sizes: list[tuple[int, int]] = []

    def interpolate(self, a, b, t, scale=1.0):
        self.sizes.append(tuple(a.shape[-2:]))
        return (1 - t) * a + t * b


def rgb(path: Path) -> torch.Tensor:
    return torch.from_numpy(np.array(Image.open(path).convert("RGB"))).permute(2, 0, 1)[None].float() / 255


# ------------------------------------------------------------------------------- MATLAB bicubic
def matlab_bicubic_1d(signal: np.ndarray, scale: float) -> np.ndarray:
    """Independent reference written from MATLAB's documented imresize: every output sample is a sum
    over the input samples in reach, each weighted by the (widened) Keys kernel, a = -0.5, edges
    padded symmetrically with np.pad; plain loops, no weight matrix."""
    def keys(x: float) -> float:
        x = abs(x)
        if x <= 1:
            return 1.5 * x**3 - 2.5 * x**2 + 1
        if x <= 2:
            return -0.5 * x**3 + 2.5 * x**2 - 4 * x + 2
        return 0.0

    n = len(signal)
    pad = 40
    padded = np.pad(signal.astype(np.float64), pad, mode="symmetric")
    shrink = min(scale, 1.0)
    out = []
    for k in range(math.ceil(n * scale)):
        centre = (k + 0.5) / scale - 0.5          # 0-based position of output sample k in the input
        acc = norm = 0.0
        for i in range(-pad, n + pad):
            w = shrink * keys((centre - i) * shrink)
            acc += w * padded[i + pad]
            norm += w
        out.append(acc / norm)
    return np.array(out)


@pytest.mark.parametrize("n,scale", [(16, 1 / 4), (13, 1 / 4), (17, 1 / 3), (9, 1 / 2), (6, 2.0)])
def test_matlab_bicubic_matches_an_independent_direct_sum(n, scale):
    rng = np.random.default_rng(n)
    x = rng.uniform(0, 1, n)
    ours = resize_matrix(n, math.ceil(n * scale), scale) @ x
    np.testing.assert_allclose(ours, matlab_bicubic_1d(x, scale), atol=1e-12)


def test_matlab_bicubic_values_and_difference_from_torch():
    # a ramp keeps its values away from the edges (cubic convolution reproduces straight lines) ...
    ramp = torch.arange(64, dtype=torch.float64)[None].expand(8, 64).clone()
    out = imresize(ramp, 0.25)[0]
    centres = (torch.arange(16, dtype=torch.float64) + 0.5) * 4 - 0.5
    torch.testing.assert_close(out[3:-3], centres[3:-3], rtol=0, atol=1e-12)
    # ... and the edges follow MATLAB's symmetric padding (hand-computed: 0.5 * 1.5 - 0.5 = 0.25 below 1.5)
    assert out[0].item() == pytest.approx(matlab_bicubic_1d(np.arange(64.0), 0.25)[0], abs=1e-12)
    assert out[0].item() != pytest.approx(1.5, abs=1e-3)
    # 2-D is separable: rows then columns, and the LR of a real frame differs from torch's antialiased bicubic
    frame = benchfactory._frames(0, 1, (64, 48))[0]
    lr = downscale_uint8(frame, 4)
    t = torch.from_numpy(frame).permute(2, 0, 1)[None].double() / 255
    direct = np.stack([[matlab_bicubic_1d(row, 0.25) for row in ch] for ch in
                       np.stack([[matlab_bicubic_1d(col, 0.25) for col in ch.T] for ch in t[0].numpy()]).transpose(0, 2, 1)])
    np.testing.assert_array_equal(lr, np.clip(np.round(direct.transpose(1, 2, 0) * 255), 0, 255).astype(np.uint8))
    torch_lr = F.interpolate(t, scale_factor=0.25, mode="bicubic", antialias=True).mul(255).round()
    assert (torch_lr[0].permute(1, 2, 0).numpy() != lr).mean() > 0.2


# ------------------------------------------------------------------------------- metric rules
def test_y_score_ignores_a_chroma_only_change_and_crop_ignores_the_border():
    frame = torch.from_numpy(benchfactory._frames(1, 1, (64, 48))[0]).permute(2, 0, 1)[None].double() / 255
    target = frame.clamp(0.2, 0.8)
    noisy = (target + 0.01 * torch.randn_like(target, generator=None).clamp(-2, 2)).clamp(0, 1)
    # a change orthogonal to the BT.601 Y weights leaves Y alone and moves RGB
    chroma = torch.tensor([128.553, -65.481, 0.0], dtype=torch.float64).view(1, 3, 1, 1) / 128.553 * 0.05
    shifted = noisy + chroma
    kw = {"quantize": False}
    assert psnr(shifted, target, y_channel=True, **kw) == pytest.approx(psnr(noisy, target, y_channel=True, **kw).item(), abs=1e-4)
    assert psnr(shifted, target, **kw) < psnr(noisy, target, **kw) - 1
    # a changed border pixel moves no score that crops the border, and moves BasicSR's border-0 protocol
    bordered = noisy.clone()
    bordered[..., 0, 5] = 1 - bordered[..., 0, 5]
    for fn in (psnr, ssim):
        assert fn(bordered, target, crop_border=4) == pytest.approx(fn(noisy, target, crop_border=4).item(), abs=1e-6)
    assert psnr(bordered, target) < psnr(noisy, target)


def test_vfi_rounding_rules_ie_and_3d_ssim():
    target = torch.from_numpy(benchfactory._frames(2, 1, (64, 48))[0]).permute(2, 0, 1)[None].float() / 255
    target = (target * 255).round().clamp(max=250) / 255  # no clipping at white
    pred = target + 0.4 / 255  # under half a level: gone after RIFE's rounding, not under IFRNet's rules
    rife, ifrnet = protocols.vfi_scorers()
    assert benchmark.score(pred, target, rife)["psnr"][0] > 90
    assert benchmark.score(pred, target, ifrnet)["psnr"][0] == pytest.approx(20 * math.log10(255 / 0.4), abs=0.01)
    assert interpolation_error((target + 2 / 255).clamp(0, 1), target).item() == pytest.approx(
        (((target * 255).round() + 2).clamp(max=255) - (target * 255).round()).mean().item(), abs=1e-4)
    assert ssim_3d(target, target).item() == pytest.approx(1.0, abs=1e-6)
    # the official formulation, a 3-D convolution of the replicate-padded colour volume, gives the same
    g = torch.exp(-(torch.arange(11.0, dtype=torch.float64) - 5) ** 2 / 4.5)
    g /= g.sum()
    win = (g[:, None, None] * g[None, :, None] * g[None, None, :])[None, None]
    noisy = (target + 0.05 * torch.randn(target.shape, generator=torch.Generator().manual_seed(0))).clamp(0, 1)
    a, b = noisy.double()[:, None, :, :20, :30], target.double()[:, None, :, :20, :30]

    def conv(x):
        return F.conv3d(F.pad(x, (5,) * 6, mode="replicate"), win)

    mu1, mu2 = conv(a), conv(b)
    s11, s22, s12 = conv(a * a) - mu1**2, conv(b * b) - mu2**2, conv(a * b) - mu1 * mu2
    ref = ((2 * mu1 * mu2 + 1e-4) * (2 * s12 + 9e-4)) / ((mu1**2 + mu2**2 + 1e-4) * (s11 + s22 + 9e-4))
    assert ssim_3d(noisy[..., :20, :30], target[..., :20, :30]).item() == pytest.approx(ref.mean().item(), abs=1e-6)
    one_channel = target.clone()
    one_channel[:, 2] = one_channel[:, 2].flip(-1)
    assert ssim_3d(one_channel, target) < 0.95 and ssim_3d(one_channel, target) == pytest.approx(
        ssim_3d(target, one_channel).item(), abs=1e-6)


# ------------------------------------------------------------------------------- layouts
def test_every_layout_is_read_as_distributed(sets):
    vid4 = testsets.vid4(sets / "vid4")
    assert [c.name for c in vid4] == ["calendar", "city"] and len(vid4[0].gt) == len(vid4[0].lr) == 4
    reds = testsets.reds4(sets / "reds4")
    assert [c.name for c in reds] == ["000", "011", "015", "020"] and reds[0].lr[0].parent.parent.name == "X4"
    vt = testsets.vimeo_septuplet_test(sets / "vimeo90k-t")
    assert [c.name for c in vt] == ["00001/0001", "00001/0002"] and vt[0].centre_only
    assert benchmark.sr_targets(vt) == [(0, 3), (1, 3)]
    assert len(testsets.vimeo_triplet_test(sets / "vimeo90k")) == 2
    assert [t.gt.name for t in testsets.ucf101(sets / "ucf101")] == ["frame_01_gt.png"] * 2
    snu = testsets.snu_film(sets / "snu-film", "extreme")
    assert snu[0].gt.name == "000003.png" and snu[0].frame1.name == "000005.png"  # 'data/SNU-FILM/' prefix removed
    mb = testsets.middlebury_other(sets / "middlebury-other")
    assert len(mb) == 12 and mb[0].gt.name == "frame10i11.png"


@pytest.mark.parametrize("name,remove,message", [
    ("vid4", "BIx4", "BIx4"),
    ("reds4", "train_sharp/015", "015"),
    ("vimeo90k-t", "sep_testlist.txt", "sep_testlist.txt"),
    ("vimeo90k", "tri_testlist.txt", "tri_testlist.txt"),
    ("snu-film-medium", "test-medium.txt", "test-medium.txt"),
    ("middlebury-other", "other-gt-interp/Venus/frame10i11.png", "Venus/frame10i11.png"),
])
def test_bad_layouts_are_one_line_naming_what_is_missing(tmp_path, sets, name, remove, message, capsys):
    src = sets / ("snu-film" if name.startswith("snu") else name)
    root = tmp_path / "set"
    shutil.copytree(src, root)
    victim = root / remove
    shutil.rmtree(victim) if victim.is_dir() else victim.unlink()
    with pytest.raises(DataError) as err:
        protocols.read(protocols.get(name), root)
    assert message in str(err.value)
    assert evaluate.cli(["-c", str(tmp_path / "unused.pth"), "--benchmark", name, str(root)]) == 2
    out = capsys.readouterr().err.strip()
    assert out.startswith("error: ") and message in out and "\n" not in out


@pytest.mark.slow
def test_make_lr_builds_the_sets_lr_with_matlab_bicubic(sets):
    made = testsets.vid4(sets / "vid4", make_lr=True)
    assert made[0].lr is None
    up = Upscaler(NearestSR(), CPU)
    proto = protocols.get("vid4")
    given = benchmark.run_sr(proto, testsets.vid4(sets / "vid4"), up)
    ours = benchmark.run_sr(proto, made, up)
    assert ours.made_lr and ours.means() == given.means()  # the set's LR is what MATLAB bicubic makes


# ------------------------------------------------------------------------------- protocols
def test_sr_protocol_scores_every_frame_against_its_own_window(sets, tmp_path):
    model = NearestSR()
    proto = protocols.get("vid4")
    clips = testsets.vid4(sets / "vid4")
    result = benchmark.run_sr(proto, clips, Upscaler(model, CPU), batch=3, save_dir=tmp_path)
    assert [(f.clip, f.frame) for f in result.frames] == [(c.name, p.name) for c in clips for p in c.gt]
    # the first window of a clip is padded with reflection_circle: frames (2, 0, 1) for 3 frames
    first = model.inputs[0][0]
    lr = [rgb(p)[0] for p in clips[0].lr]
    torch.testing.assert_close(first, torch.stack([lr[2], lr[0], lr[1]]))
    for f, (clip, i) in zip(result.frames, [(c, i) for c in clips for i in range(len(c.gt))]):
        pred = F.interpolate(rgb(clip.lr[i]), scale_factor=4, mode="nearest")
        assert f.scores["Y"]["psnr"] == pytest.approx(psnr(pred, rgb(clip.gt[i]), y_channel=True).item(), abs=1e-4)
        saved = rgb(tmp_path / clip.name / clip.gt[i].name)  # the PNG rescored gives the same RGB number
        assert f.scores["RGB"]["psnr"] == pytest.approx(psnr(saved, rgb(clip.gt[i])).item(), abs=1e-4)
    means = result.means()
    per_clip = result.clips()
    assert means["RGB"]["psnr"] == pytest.approx(np.mean([per_clip[c]["RGB"]["psnr"] for c in per_clip]))


def test_vimeo90k_t_scores_im4_from_the_centred_window(sets):
    model = NearestSR()
    clips = testsets.vimeo_septuplet_test(sets / "vimeo90k-t")
    result = benchmark.run_sr(protocols.get("vimeo90k-t"), clips, Upscaler(model, CPU), batch=2)
    assert [f.frame for f in result.frames] == ["im4.png", "im4.png"]
    torch.testing.assert_close(model.inputs[0][1], torch.stack([rgb(clips[1].lr[k])[0] for k in (2, 3, 4)]))


@pytest.mark.slow
def test_vfi_protocols_follow_each_papers_rules(sets, tmp_path):
    model = Blend()
    interp = Interpolator(model, CPU)
    proto = protocols.get("middlebury-other")
    triplets = testsets.middlebury_other(sets / "middlebury-other")
    result = benchmark.run_vfi(proto, triplets, interp, batch=5, save_dir=tmp_path)
    assert model.sizes[1:] == [(480, 640)] * 3  # 12 triplets in batches of 5, 5, 2 on the zero canvas
    for f, t in zip(result.frames, triplets):
        blend = (rgb(t.frame0) + rgb(t.frame1)) / 2
        assert f.scores["RGB, RIFE rules"]["ie"] == pytest.approx(interpolation_error(blend, rgb(t.gt)).item(), abs=1e-4)
        assert f.scores["RGB, IFRNet rules"]["psnr"] == pytest.approx(
            psnr(blend, rgb(t.gt), quantize=False).item(), abs=1e-4)
        assert (tmp_path / t.name / "frame10i11.png").is_file()
    sub = benchmark.run_vfi(protocols.get("ucf101"), testsets.ucf101(sets / "ucf101"), interp, limit=1)
    assert len(sub.frames) == 1 and sub.subset == 1 and sub.total == 2


def test_table_puts_the_published_number_beside_this_run(sets):
    proto = protocols.get("vimeo90k")
    result = benchmark.run_vfi(proto, testsets.vimeo_triplet_test(sets / "vimeo90k"), Interpolator(Blend(), CPU))
    table = benchmark.format_table(result, proto, "rife", "base", protocols.published)
    row = next(line for line in table.splitlines() if line.startswith("RGB, RIFE rules"))
    ours = result.means()["RGB, RIFE rules"]["psnr"]
    assert "35.615" in row and f"{ours - 35.615:+.3f}" in row and "ECCV2022-RIFE README" in row
    assert "fp32 on cpu" in table and "no published number" in table  # IFRNet's rules: none for RIFE
    assert protocols.published("reds4", "edvr", "l", "RGB").psnr == 31.09
    assert protocols.published("vid4", "edvr", "l", "Y").psnr == 27.35


@pytest.mark.slow
def test_cli_scores_a_set_and_saves_frames_and_scores(sets, tmp_path, capsys, seeded_single_thread):
    ckpt = random_checkpoints(tmp_path, [("ifrnet", "small", {})])["ifrnet"]
    out = tmp_path / "saved"
    assert evaluate.cli(["-c", str(ckpt), "--benchmark", "snu-film-easy", str(sets / "snu-film"),
                         "--save", str(out), "--device", "cpu"]) == 0
    printed = capsys.readouterr().out
    assert "SNU-FILM easy: 2 frame(s), ifrnet-small, fp32 on cpu" in printed
    doc = json.loads((out / "scores.json").read_text())
    assert doc["frames_scored"] == 2 and set(doc["set"]) == {"RGB, RIFE rules", "RGB, IFRNet rules"}
    assert len(doc["clips"]) == 2 and doc["frames"][0]["RGB, IFRNet rules"]["psnr"] > 0
    saved = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.png"))
    assert saved == [f"test/GOPRO_test/GOPR{i:04d}/000003.png" for i in range(2)]  # the GT's own path in the set


# ------------------------------------------------------------------------------- training
@pytest.mark.slow
def test_training_validates_on_a_standard_set_as_the_evaluator_scores_it(sets, tiny_data_dir, tmp_path, capsys):
    from vsrvfi.core.errors import UsageError
    from vsrvfi.trainers.config import load_config
    from vsrvfi.trainers.engine import Trainer
    from vsrvfi.trainers.tasks import make_task

    def cfg(*extra):
        return load_config("vsrnet", [f"data.dir={tiny_data_dir}", "data.res=144p", "data.loader=png",
                                      "data.workers=1", "data.batch_size=2", "data.crop=32", "model.kwargs.flow=tiny",
                                      f"experiment.root={tmp_path}", "train.steps=2", "train.val_frames=3", *extra])

    with pytest.raises(UsageError, match="not NAME:ROOT"):
        cfg("train.val_benchmark=vid4")
    with pytest.raises(UsageError, match="unknown benchmark"):
        cfg(f"train.val_benchmark=vid5:{sets / 'vid4'}")
    bad = cfg(f"train.val_benchmark=vimeo90k:{sets / 'vimeo90k'}")
    with pytest.raises(UsageError, match="VFI set"):
        Trainer(bad, make_task(bad), tmp_path / "bad")
    c = cfg(f"train.val_benchmark=vid4:{sets / 'vid4'}")
    trainer = Trainer(c, make_task(c), tmp_path / "run")
    trainer.fit()
    trainer.close()
    line = trainer.state.best_line
    assert "val (Vid4 (BIx4), Y): " in line and "on 3 frames (a fixed spread subset of 8)" in line
    capsys.readouterr()
    assert evaluate.cli(["-c", str(tmp_path / "run" / "checkpoints" / "best.pth"), "--benchmark", "vid4",
                         str(sets / "vid4"), "--subset", "3", "--out", str(tmp_path / "eval")]) == 0
    doc = json.loads((tmp_path / "eval" / "vid4" / "scores.json").read_text())
    assert f"{doc['set']['Y']['psnr']:.2f} dB" in line  # the same frames and score as the trainer logged


def test_standard_sets_benchmark_plans_present_pairs_and_tables_them(tmp_path):
    from benchmarks import standard_sets

    (tmp_path / "sets" / "vimeo_triplet").mkdir(parents=True)
    (tmp_path / "ck").mkdir()
    (tmp_path / "ck" / "flownet.pkl").write_bytes(b"")
    runs, missing = standard_sets.plan(tmp_path / "sets", tmp_path / "ck")
    assert [(r["model"], r["benchmark"]) for r in runs] == [("rife", "vimeo90k")]
    assert any("rife-base on ucf101: no " in m for m in missing) and any("EDVR_L_x4_SR_REDS" in m for m in missing)
    row = {**runs[0], "precision": "fp16", "frames": 3782,
           "set": {"RGB, RIFE rules": {"psnr": 35.6, "ssim": 0.978}, "RGB, IFRNet rules": {"psnr": 35.61, "ssim": 0.978}},
           "published": {"RGB, RIFE rules": {"psnr": 35.615, "ssim": 0.9779, "ie": None, "source": "x"}}}
    text = standard_sets.table([row])
    assert "| vimeo90k | rife-base | RGB, RIFE rules | 35.615 (0.9779) | 35.600 (0.9780) | -0.015 | fp16 | 3782 |" in text


@pytest.mark.slow
def test_batching_does_not_change_the_scores(sets, tmp_path, seeded_single_thread):
    from vsrvfi.models.load import load_model

    ckpt = random_checkpoints(tmp_path, [("ifrnet", "small", {})])["ifrnet"]
    interp = Interpolator(load_model(str(ckpt))[0], CPU)
    proto = protocols.get("vimeo90k")
    triplets = testsets.vimeo_triplet_test(sets / "vimeo90k")
    one, two = (benchmark.run_vfi(proto, triplets, interp, batch=b) for b in (1, 2))
    for a, b in zip(one.frames, two.frames):
        for label in a.scores:
            assert a.scores[label]["psnr"] == pytest.approx(b.scores[label]["psnr"], abs=1e-3)
