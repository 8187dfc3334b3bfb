"""RIFE, RIFEm and IFRNet(-L/-S): published parameter counts, official key layouts, shapes and
padding, gradients (teacher included), and the shared backward warp. Random weights only."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from vsrvfi.models.ifrnet import IFRNet
from vsrvfi.models.load import load_pretrained
from vsrvfi.models.losses import IFRNetLoss, RIFELoss
from vsrvfi.models.registry import build_model, count_parameters, infer_config, spec
from vsrvfi.models.rife import RIFE
from vsrvfi.models.warp import backward_warp
from vsrvfi.core.errors import CheckpointError

OFFICIAL_KEYS = json.loads((Path(__file__).parent / "data" / "vfi_official_keys.json").read_text())


pytestmark = pytest.mark.usefixtures("seeded_single_thread")


@pytest.fixture(scope="module")
def rife():
    return build_model("rife", "base")


@pytest.fixture(scope="module")
def rife_m():
    return build_model("rife", "m")


# ---------------------------------------------------------------- sizes and registry

# IFRNet: the paper's / README's counts. RIFE: counted from the official IFNet() / IFNet_m()
# (model/IFNet.py, model/IFNet_m.py), teacher block included; "student" is without block_tea.
@pytest.mark.parametrize("name, size, total, student", [
    ("rife", "base", 10_708_215, 10_071_550),
    ("rife", "m", 10_710_780, 10_073_710),
    ("ifrnet", "base", 4_959_692, None),
    ("ifrnet", "large", 19_699_460, None),
    ("ifrnet", "small", 2_803_610, None),
])
def test_parameter_counts(name, size, total, student):
    model = build_model(name, size)
    assert count_parameters(model) == total
    if student is not None:
        assert total - count_parameters(model.block_tea) == student


def test_registry_entries():
    assert spec("rife").size == "base" and spec("rife").task == "vfi"
    assert spec("rife", "m").task == "vfi"
    assert spec("ifrnet").size == "base"
    assert {spec("ifrnet", s).task for s in ("base", "large", "small")} == {"vfi"}


# ---------------------------------------------------------------- official checkpoints

@pytest.mark.parametrize("entry", sorted(OFFICIAL_KEYS))
def test_state_dict_layout_equals_official(entry):
    """Same key names, order and shapes as the official modules (list in tests/data)."""
    name, size = entry.split("/")
    ours = [(k, list(v.shape)) for k, v in build_model(name, size).state_dict().items()]
    assert ours == [tuple(kv) for kv in OFFICIAL_KEYS[entry]["keys"]]


@pytest.mark.parametrize("entry", sorted(OFFICIAL_KEYS))
def test_official_checkpoint_loads_strictly(tmp_path, entry):
    """A checkpoint written in the official layout (RIFE's flownet.pkl carries DDP's `module.`
    prefix; IFRNet's .pth is a bare state_dict) loads strictly, values included."""
    name, size = entry.split("/")
    prefix = "module." if name == "rife" else ""
    official = {prefix + k: torch.randn(shape) for k, shape in OFFICIAL_KEYS[entry]["keys"]}
    path = tmp_path / ("flownet.pkl" if name == "rife" else f"IFRNet_{size}.pth")
    torch.save(official, path)
    model = build_model(name, size)
    assert load_pretrained(model, path, name) == ([], [])
    own = model.state_dict()
    assert all(torch.equal(own[k[len(prefix):]], v) for k, v in official.items())
    stripped = {k[len(prefix):]: v for k, v in official.items()}
    assert infer_config(name, stripped) == (size, {})


def test_wrong_variant_is_a_one_line_error(tmp_path):
    path = tmp_path / "flownet.pkl"
    torch.save({"module." + k: v for k, v in build_model("rife", "base").state_dict().items()}, path)
    with pytest.raises(CheckpointError) as err:
        load_pretrained(build_model("rife", "m"), path, "rife")
    msg = str(err.value)
    assert "\n" not in msg and str(path) in msg and "block0.conv0.0.0.weight" in msg


# ---------------------------------------------------------------- RIFE forward

@pytest.mark.parametrize("h, w", [(32, 32), (40, 56), (30, 45)])
def test_rife_inference_shapes_and_ranges(rife, h, w):
    img0, img1 = torch.rand(2, 2, 3, h, w).unbind(0)
    rife.eval()
    with torch.no_grad():
        out = rife(img0, img1)
    assert out.pred.shape == (2, 3, h, w) and 0 <= out.pred.min() and out.pred.max() <= 1
    assert [f.shape for f in out.flows] == [(2, 4, h, w)] * 3
    assert [m.shape for m in out.merged] == [(2, 3, h, w)] * 3
    assert out.mask.shape == (2, 1, h, w) and 0 <= out.mask.min() and out.mask.max() <= 1
    assert out.teacher_pred is None and out.teacher_flow is None and float(out.distill) == 0.0
    assert torch.isfinite(out.pred).all()
    pred = rife.interpolate(img0, img1)
    assert not pred.requires_grad and torch.equal(pred, out.pred)


def test_rife_padding_matches_manual_padding(rife):
    """Internal replicate padding to 32 and cropping back equals doing it by hand."""
    img0, img1 = torch.rand(2, 1, 3, 30, 29).unbind(0)
    pad = (1, 2, 1, 1)  # split evenly, the extra pixel right / bottom
    rife.eval()
    with torch.no_grad():
        a = rife(img0, img1).pred
        b = rife(F.pad(img0, pad, mode="replicate"), F.pad(img1, pad, mode="replicate")).pred
    torch.testing.assert_close(a, b[..., 1:31, 1:30], rtol=0, atol=0)


def test_rife_scale_for_4k_and_scale_checks(rife):
    img0, img1 = torch.rand(2, 1, 3, 64, 64).unbind(0)
    rife.eval()
    with torch.no_grad():
        half = rife(img0, img1, scale=0.5).pred  # scale list 8, 4, 2
        full = rife(img0, img1).pred
    assert half.shape == full.shape and not torch.equal(half, full)
    assert RIFE.pad_multiple((8, 4, 2)) == 32 and RIFE.pad_multiple((16, 8, 4)) == 64
    with pytest.raises(ValueError, match="powers of two"):
        rife(img0, img1, scale=0.8)


def test_rife_base_is_midpoint_only(rife):
    img0, img1 = torch.rand(2, 1, 3, 32, 32).unbind(0)
    with pytest.raises(ValueError, match="midpoint"):
        rife(img0, img1, timestep=0.25)
    with torch.no_grad():
        rife(img0, img1, timestep=torch.tensor([0.5]))


def test_rife_m_timestep_is_used(rife_m):
    img0, img1 = torch.rand(2, 2, 3, 32, 32).unbind(0)
    rife_m.eval()
    with torch.no_grad():
        a = rife_m(img0, img1, timestep=0.2).pred
        b = rife_m(img0, img1, timestep=0.8).pred
        per_sample = rife_m(img0, img1, timestep=torch.tensor([0.2, 0.8])).pred
    assert not torch.allclose(a, b)
    torch.testing.assert_close(per_sample[0], a[0])
    torch.testing.assert_close(per_sample[1], b[1])


def test_rife_training_outputs_and_gradients_reach_every_parameter(rife_m):
    img0, img1, gt = torch.rand(3, 1, 3, 40, 40).unbind(0)  # padded to 64 inside
    rife_m.train()
    rife_m.zero_grad()
    out = rife_m(img0, img1, timestep=0.3, gt=gt)
    assert out.teacher_pred.shape == (1, 3, 40, 40) and out.teacher_flow.shape == (1, 4, 40, 40)
    assert out.teacher_mask.shape == (1, 1, 40, 40) and out.distill.ndim == 0 and out.distill >= 0
    total, parts = RIFELoss(distill_weight=0.005)(out, gt)
    assert set(parts) == {"lap", "teacher", "distill"}
    torch.testing.assert_close(total.detach(), parts["lap"] + parts["teacher"] + 0.005 * parts["distill"])
    total.backward()
    no_grad = [n for n, p in rife_m.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert no_grad == []


def test_rife_teacher_is_untouched_without_gt(rife):
    img0, img1, gt = torch.rand(3, 1, 3, 48, 48).unbind(0)
    rife.train()
    rife.zero_grad()
    out = rife(img0, img1)
    total, parts = RIFELoss()(out, gt)
    assert set(parts) == {"lap"}
    total.backward()
    assert all(p.grad is None for p in rife.block_tea.parameters())
    assert all(p.grad is not None for n, p in rife.named_parameters() if not n.startswith("block_tea"))


# ---------------------------------------------------------------- IFRNet forward

@pytest.mark.parametrize("size", ["base", "large", "small"])
@pytest.mark.parametrize("h, w", [(32, 48), (30, 45)])
def test_ifrnet_shapes_and_ranges(size, h, w):
    model = build_model("ifrnet", size).eval()
    img0, img1 = torch.rand(2, 2, 3, h, w).unbind(0)
    with torch.no_grad():
        out = model(img0, img1, timestep=torch.tensor([0.3, 0.7]))
    ph, pw = -(-h // 16) * 16, -(-w // 16) * 16
    assert out.pred.shape == (2, 3, h, w) and 0 <= out.pred.min() and out.pred.max() <= 1
    assert [tuple(f.shape[-2:]) for f in out.flows] == [(ph // 8, pw // 8), (ph // 4, pw // 4),
                                                        (ph // 2, pw // 2), (h, w)]
    assert all(f.shape[:2] == (2, 4) for f in out.flows)
    assert out.mask.shape == (2, 1, h, w) and out.residual.shape == (2, 3, h, w)
    assert [tuple(f.shape[-2:]) for f in out.features] == [(ph // 8, pw // 8), (ph // 4, pw // 4), (ph // 2, pw // 2)]
    assert out.gt_features is None


def test_ifrnet_padding_matches_manual_padding():
    model = build_model("ifrnet", "small").eval()
    img0, img1 = torch.rand(2, 1, 3, 30, 13).unbind(0)
    pad = (1, 2, 1, 1)
    with torch.no_grad():
        a = model(img0, img1, 0.5).pred
        b = model(F.pad(img0, pad, mode="replicate"), F.pad(img1, pad, mode="replicate"), 0.5).pred
    torch.testing.assert_close(a, b[..., 1:31, 1:14], rtol=0, atol=0)


def test_ifrnet_timestep_and_scale_factor():
    model = build_model("ifrnet", "small").eval()
    img0, img1 = torch.rand(2, 1, 3, 40, 40).unbind(0)
    with torch.no_grad():
        a = model.interpolate(img0, img1, 0.25)
        b = model.interpolate(img0, img1, 0.75)
        c = model.interpolate(img0, img1, 0.25, scale_factor=0.5)  # padded to 64 inside
    assert not torch.allclose(a, b) and c.shape == a.shape and not a.requires_grad
    assert IFRNet.pad_multiple(0.8) == 20
    with pytest.raises(ValueError, match="scale_factor"):
        model(img0, img1, scale_factor=0.7)


@pytest.mark.parametrize("size", ["base", "small"])
def test_ifrnet_training_gradients_reach_every_parameter(size):
    model = build_model(size=size, name="ifrnet").train()
    img0, img1, gt = torch.rand(3, 1, 3, 32, 32).unbind(0)
    out = model(img0, img1, timestep=0.5, gt=gt)
    assert [f.shape for f in out.features] == [g.shape for g in out.gt_features]
    total, parts = IFRNetLoss()(out, gt, pseudo_flow=torch.randn(1, 4, 32, 32))
    assert set(parts) == {"rec", "geo", "distill"} and all(v > 0 for v in parts.values())
    total.backward()
    no_grad = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert no_grad == []


def test_bad_inputs_are_clear_errors(rife):
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\)"):
        rife(torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 16))
    with pytest.raises(ValueError, match="timestep has 3 values for a batch of 2"):
        build_model("ifrnet", "small")(torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32), torch.rand(3))


# ---------------------------------------------------------------- shared warp

def test_warp_integer_shift_moves_pixels_by_the_shift():
    img = torch.rand(1, 3, 16, 20)
    dx, dy = 3, -2
    flow = torch.zeros(1, 2, 16, 20)
    flow[:, 0], flow[:, 1] = dx, dy
    out = backward_warp(img, flow)
    # backward warp samples the source at p + flow: out[y, x] = img[y + dy, x + dx]
    torch.testing.assert_close(out[..., 2:16, 0:17], img[..., 0:14, 3:20])


def test_warp_zero_and_half_pixel_flow():
    img = torch.rand(2, 1, 8, 8)
    torch.testing.assert_close(backward_warp(img, torch.zeros(2, 2, 8, 8)), img)
    flow = torch.zeros(2, 2, 8, 8)
    flow[:, 0] = 0.5
    out = backward_warp(img, flow)
    torch.testing.assert_close(out[..., :7], (img[..., :7] + img[..., 1:]) / 2)
