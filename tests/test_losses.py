"""Loss sanity: minimum at identical inputs, positive and differentiable otherwise, and each loss's
defining property (census offset invariance, distillation masks, robust weights, DIS shift, ...)."""
from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from torchvision.models.vgg import cfgs, make_layers

from vsrvfi.models.losses import (CensusLoss, Charbonnier, FlowDistillationLoss, GeometryLoss, IFRNetLoss, LapLoss,
                           PseudoFlowLabeler, RIFEDistillationLoss, RIFELoss, VGGPerceptualLoss,
                           adaptive_charbonnier, dis_flow, laplacian_pyramid, robust_weight)
from vsrvfi.models.warp import backward_warp
from vsrvfi.core.errors import CheckpointError


pytestmark = pytest.mark.usefixtures("seeded_single_thread")


def _pair(shape=(2, 3, 48, 48)):
    a = torch.rand(shape)
    b = (a + 0.2 * torch.randn(shape)).clamp(0, 1)
    return a, b


def _texture(h=64, w=64, n=1):
    """Smooth random texture (blurred noise, rescaled to [0, 1]): well-defined optical flow."""
    x = F.avg_pool2d(torch.rand(n, 3, h + 8, w + 8), 5, 1)
    x = F.avg_pool2d(x, 3, 1)[..., :h, :w]
    return (x - x.amin()) / (x.amax() - x.amin())


def _positive_and_differentiable(loss_fn, a, b):
    a = a.clone().requires_grad_(True)
    loss = loss_fn(a, b)
    loss.backward()
    assert loss.ndim == 0 and loss > 0
    assert a.grad is not None and torch.isfinite(a.grad).all() and a.grad.abs().sum() > 0
    return loss


# ---------------------------------------------------------------- Charbonnier

def test_charbonnier_defaults_and_eps():
    a, b = _pair()
    assert Charbonnier().eps == 1e-3  # EDVR and IFRNet: sqrt(d^2 + 1e-6)
    torch.testing.assert_close(Charbonnier()(a, a), torch.tensor(1e-3))  # its minimum is eps
    torch.testing.assert_close(Charbonnier(eps=0.1)(a, a), torch.tensor(0.1))
    torch.testing.assert_close(Charbonnier()(a, b), torch.sqrt((a - b) ** 2 + 1e-6).mean())
    torch.testing.assert_close(Charbonnier(reduction="sum")(a, b), torch.sqrt((a - b) ** 2 + 1e-6).sum())
    assert Charbonnier(reduction="none")(a, b).shape == a.shape
    w = torch.zeros(1, 1, 48, 48)
    w[..., :24, :] = 1
    torch.testing.assert_close(Charbonnier()(a, b, w), (torch.sqrt((a - b) ** 2 + 1e-6) * w).mean())
    _positive_and_differentiable(Charbonnier(), a, b)
    with pytest.raises(ValueError, match="reduction"):
        Charbonnier(reduction="max")
    with pytest.raises(ValueError, match="eps"):
        Charbonnier(eps=0)


# ---------------------------------------------------------------- Laplacian pyramid

def test_lap_loss_zero_for_identical_positive_otherwise():
    a, b = _pair()
    assert LapLoss()(a, a) == 0
    _positive_and_differentiable(LapLoss(), a, b)


def test_lap_loss_ignores_a_constant_offset_but_not_structure():
    """Only band-pass levels are compared (the low-pass residual is not), as in RIFE."""
    a = torch.rand(1, 3, 48, 48)
    assert LapLoss()(a + 0.1, a) < 1e-6
    assert LapLoss()(a.flip(-1), a) > 0.05


def test_laplacian_pyramid_levels_and_odd_sizes():
    x = torch.rand(1, 3, 45, 37)
    levels = laplacian_pyramid(x, 5)
    assert [tuple(l.shape[-2:]) for l in levels] == [(45, 37), (23, 19), (12, 10), (6, 5), (3, 3)]
    assert LapLoss()(x, x.flip(-2)) > 0
    with pytest.raises(ValueError, match="larger than 32"):
        LapLoss()(torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 32))


# ---------------------------------------------------------------- census and geometry

def test_census_zero_identical_positive_otherwise():
    a, b = _pair()
    assert CensusLoss()(a, a) == 0
    loss = _positive_and_differentiable(CensusLoss(), a, b)
    assert loss < 1  # soft Hamming distance is bounded by 1


def test_census_is_invariant_to_a_brightness_offset():
    a = torch.rand(2, 3, 32, 32) * 0.8
    assert CensusLoss()(a + 0.15, a) < 1e-6
    assert CensusLoss()(a * 0.2, a) > 1e-3  # contrast changes the signature, an offset does not


def test_census_detaches_the_target():
    a, b = _pair()
    b.requires_grad_(True)
    a.requires_grad_(True)
    CensusLoss()(a, b).backward()
    assert a.grad is not None and b.grad is None


def test_geometry_loss_on_features():
    f = torch.randn(2, 16, 12, 12)
    g = torch.randn(2, 16, 12, 12, requires_grad=True)
    assert GeometryLoss()(f, f) == 0
    assert GeometryLoss()(f + 3.0, f) < 1e-6
    loss = GeometryLoss()(f.requires_grad_(True), g)
    loss.backward()
    assert loss > 0 and f.grad.abs().sum() > 0 and g.grad.abs().sum() > 0  # neither side detached


# ---------------------------------------------------------------- RIFE leakage distillation

def _rife_case(student_offset: float, student_error: float):
    gt = torch.rand(1, 3, 16, 16)
    teacher_flow = torch.randn(1, 4, 16, 16, requires_grad=True)
    flows = [(teacher_flow.detach() + student_offset).requires_grad_(True) for _ in range(3)]
    merged = [(gt + student_error).clamp(0, 1) for _ in range(3)]
    return flows, merged, teacher_flow, gt.clone(), gt


def test_rife_distillation_zero_when_student_equals_teacher():
    flows, merged, tflow, tpred, gt = _rife_case(0.0, 0.5)
    loss = RIFEDistillationLoss()(flows, merged, tflow, tpred, gt)
    loss.backward()
    assert loss < 1e-5 and all(torch.isfinite(f.grad).all() for f in flows)


def test_rife_distillation_only_where_the_student_is_worse():
    flows, merged, tflow, tpred, gt = _rife_case(2.0, 0.5)  # student off by 2 px and worse everywhere
    loss = RIFEDistillationLoss()(flows, merged, tflow, tpred, gt)
    torch.testing.assert_close(loss, torch.tensor(3 * 2.0))  # rms flow difference 2 at each of 3 stages
    loss.backward()
    assert all(f.grad.abs().sum() > 0 for f in flows) and tflow.grad is None  # teacher is detached
    flows, merged, tflow, tpred, gt = _rife_case(2.0, 0.005)  # student within the 0.01 margin
    assert RIFEDistillationLoss()(flows, merged, tflow, tpred, gt) == 0


# ---------------------------------------------------------------- IFRNet flow distillation

def test_robust_weight_and_adaptive_charbonnier():
    pred = torch.zeros(1, 2, 4, 4)
    label = torch.zeros(1, 2, 4, 4)
    label[:, 0], label[:, 1] = 3.0, 4.0  # EPE 5
    torch.testing.assert_close(robust_weight(pred, pred), torch.ones(1, 1, 4, 4))
    torch.testing.assert_close(robust_weight(pred, label, beta=0.3), torch.full((1, 1, 4, 4), math.exp(-1.5)))
    d = torch.randn(1, 2, 4, 4)
    # weight 1 is exactly the Charbonnier penalty with eps 1e-3
    torch.testing.assert_close(adaptive_charbonnier(d, torch.ones(1, 1, 4, 4)), Charbonnier()(d, torch.zeros_like(d)))


def _ifrnet_flows(pseudo: torch.Tensor, coarse_offset: float, final_offset: float):
    """Flows at 1/8, 1/4, 1/2 and full size consistent with a constant `pseudo`, plus offsets."""
    h = pseudo.shape[-1]
    flows = [(pseudo[..., :h // s, :h // s] / s + coarse_offset).requires_grad_(True) for s in (8, 4, 2)]
    return flows + [pseudo + final_offset]


def test_flow_distillation_minimum_and_growth():
    pseudo = torch.ones(1, 4, 32, 32) * torch.tensor([2.0, -1.0, -2.0, 1.0]).view(1, 4, 1, 1)
    loss_fn = FlowDistillationLoss()
    best = loss_fn(_ifrnet_flows(pseudo, 0.0, 0.0), pseudo)
    torch.testing.assert_close(best, torch.tensor(6e-3))  # 3 levels x 2 flows x eps
    flows = _ifrnet_flows(pseudo, 0.5, 0.0)
    worse = loss_fn(flows, pseudo)
    worse.backward()
    assert worse > best and all(f.grad.abs().sum() > 0 for f in flows[:3])


def test_flow_distillation_downweights_unreliable_labels():
    """Where the final flow disagrees with the label (likely a wrong label), coarse flows get far
    less gradient than for a reliable label with the same error."""
    pseudo = torch.zeros(1, 4, 32, 32)
    reliable = _ifrnet_flows(pseudo, 5.0, 0.0)
    unreliable = _ifrnet_flows(pseudo, 5.0, 20.0)
    FlowDistillationLoss()(reliable, pseudo).backward()
    FlowDistillationLoss()(unreliable, pseudo).backward()
    g_rel = sum(f.grad.abs().sum() for f in reliable[:3])
    g_unrel = sum(f.grad.abs().sum() for f in unreliable[:3])
    assert g_unrel < 0.01 * g_rel


def test_flow_distillation_checks_shapes():
    with pytest.raises(ValueError, match="pseudo flow"):
        FlowDistillationLoss()([torch.zeros(1, 4, 4, 4), torch.zeros(1, 4, 32, 32)], torch.zeros(1, 2, 32, 32))
    with pytest.raises(ValueError, match="multiples of 16"):  # IFRNet padded a 30x30 frame to 32
        FlowDistillationLoss()([torch.zeros(1, 4, 16, 16), torch.zeros(1, 4, 30, 30)], torch.zeros(1, 4, 30, 30))


# ---------------------------------------------------------------- pseudo flow labels

def test_dis_pseudo_flow_recovers_a_known_shift():
    imgt = _texture(64, 64, n=2)
    img0 = torch.roll(imgt, shifts=2, dims=-1)  # content moved 2 px right: imgt(x) = img0(x + 2)
    img1 = torch.roll(imgt, shifts=-3, dims=-2)  # content moved 3 px up: imgt(y) = img1(y - 3)
    flow = PseudoFlowLabeler()(img0, imgt, img1)
    assert flow.shape == (2, 4, 64, 64) and not flow.requires_grad
    inner = flow[..., 12:-12, 12:-12]
    med = inner.flatten(2).median(dim=2).values
    torch.testing.assert_close(med, torch.tensor([[2.0, 0.0, 0.0, -3.0]] * 2), atol=0.25, rtol=0)
    # backward-warp convention: warping img0 by flow t->0 reproduces imgt
    err = (backward_warp(img0, flow[:, :2]) - imgt)[..., 12:-12, 12:-12].abs().mean()
    assert err < 0.01


def test_pseudo_flow_uses_a_given_estimator():
    calls = []

    def estimator(src, dst):
        calls.append(src.shape)
        return torch.full((src.shape[0], 2, *src.shape[-2:]), 1.5)

    a, b, c = torch.rand(3, 1, 3, 16, 16).unbind(0)
    flow = PseudoFlowLabeler(estimator)(a, b, c)
    assert len(calls) == 2 and torch.equal(flow, torch.full((1, 4, 16, 16), 1.5))
    with pytest.raises(ValueError, match="flow estimator returned"):
        PseudoFlowLabeler(lambda s, d: torch.zeros(1, 3, 16, 16))(a, b, c)
    with pytest.raises(ValueError, match="preset"):
        dis_flow(a, b, preset="slow")


# ---------------------------------------------------------------- VGG perceptual

def test_vgg_perceptual_loss_from_a_local_file(tmp_path):
    features = make_layers(cfgs["E"][:7])  # first 14 modules of torchvision's vgg19().features
    path = tmp_path / "vgg19.pth"  # torchvision's key layout, random weights, truncated
    torch.save({f"features.{k}": v for k, v in features.state_dict().items()}, path)
    loss_fn = VGGPerceptualLoss(path, layers=(1, 6, 11), weights=(1.0, 1.0, 1.0))
    assert all(not p.requires_grad for p in loss_fn.parameters())
    torch.testing.assert_close(loss_fn.features[0].weight, features[0].weight)
    a, b = _pair((1, 3, 32, 32))
    assert loss_fn(a, a) == 0
    _positive_and_differentiable(loss_fn, a, b)


def test_vgg_perceptual_loss_file_errors(tmp_path):
    with pytest.raises(CheckpointError) as err:
        VGGPerceptualLoss(tmp_path / "missing.pth")
    assert "missing.pth: no such VGG19 weights file" in str(err.value) and "\n" not in str(err.value)
    path = tmp_path / "other.pth"
    torch.save({"conv.weight": torch.zeros(1)}, path)
    with pytest.raises(CheckpointError, match="not a VGG19 state_dict"):
        VGGPerceptualLoss(path, layers=(1,), weights=(1.0,))


# ---------------------------------------------------------------- composite objectives

def test_rife_and_ifrnet_objectives_combine_their_terms():
    a, gt = _pair((1, 3, 48, 48))
    rife_out = SimpleNamespace(pred=a, teacher_pred=a.flip(-1), distill=torch.tensor(2.0))
    total, parts = RIFELoss(distill_weight=0.01)(rife_out, gt)
    lap = LapLoss()
    torch.testing.assert_close(total, lap(a, gt) + lap(a.flip(-1), gt) + 0.02)
    feats = [torch.randn(1, 8, s, s) for s in (6, 12, 24)]
    ifr_out = SimpleNamespace(pred=a, features=feats, gt_features=[f + torch.randn_like(f) for f in feats],
                              flows=[torch.zeros(1, 4, 48 // s, 48 // s) for s in (8, 4, 2, 1)])
    total, parts = IFRNetLoss()(ifr_out, gt)
    assert set(parts) == {"rec", "geo"}
    torch.testing.assert_close(parts["rec"], Charbonnier()(a, gt) + CensusLoss()(a, gt))
    total, parts = IFRNetLoss()(ifr_out, gt, pseudo_flow=torch.ones(1, 4, 48, 48))
    assert set(parts) == {"rec", "geo", "distill"} and parts["distill"] > 0
    with pytest.raises(ValueError, match="given gt"):
        IFRNetLoss()(SimpleNamespace(pred=a, gt_features=None), gt)


def test_losses_compute_in_float32_for_half_inputs():
    """Under mixed precision the inputs arrive as fp16/bf16; the losses still run in float32."""
    a, b = (x.to(torch.bfloat16) for x in _pair((1, 3, 48, 48)))
    feats = torch.randn(1, 8, 12, 12, dtype=torch.bfloat16) * 300  # squares overflow fp16
    for loss in (Charbonnier()(a, b), LapLoss()(a, b), CensusLoss()(a, b),
                 GeometryLoss()(feats, feats.flip(-1))):
        assert loss.dtype == torch.float32 and torch.isfinite(loss)
