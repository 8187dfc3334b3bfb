"""EDVR, FlowNet2-SD and VSRNet: published parameter counts, shapes, gradients, DCN divergence monitor."""
from __future__ import annotations

import logging

import pytest
import torch
import torch.nn.functional as F

from vsrvfi.models.edvr import EDVR
from vsrvfi.models.flownet_sd import FlowNetSD
from vsrvfi.models.registry import build_model, count_parameters, spec
from vsrvfi.models.vsrnet import TinyFlowNet, VSRNet, rgb_to_ycbcr, ycbcr_to_rgb


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


# Published counts: BasicSR's EDVR with with_tsa=True (its default) and 5 frames; without TSA, M has
# 2,996,259. FlowNet2-SD without batch norm is flownet2-pytorch's 45,371,666; DALI's VSRNet adds
# 159,777 (conv1 5,312 + conv2 153,664 + conv3 801 for 3 frames).
@pytest.mark.parametrize("size, kwargs, expected", [
    ("m", {}, 3_300_131),
    ("m", {"with_tsa": False}, 2_996_259),
    ("l", {}, 20_633_827),
])
def test_edvr_parameter_counts(size, kwargs, expected):
    assert count_parameters(build_model("edvr", size, **kwargs)) == expected


def test_vsrnet_parameter_counts():
    assert count_parameters(FlowNetSD()) == 45_371_666
    assert count_parameters(build_model("vsrnet")) == 45_371_666 + 159_777
    assert count_parameters(build_model("vsrnet", flow="none")) == 159_777
    assert count_parameters(build_model("vsrnet", flow="none", num_frame=5)) == 159_777 + 2 * 64 * 32 * 25


def test_registry_entries():
    assert spec("edvr").size == "m" and spec("edvr", "l").task == "sr"
    assert spec("vsrnet").size == "base" and spec("vsrnet").task == "sr"
    with pytest.raises(ValueError, match="x4 only"):
        build_model("edvr", "m", scale=2)
    with pytest.raises(ValueError, match="flow must be one of"):
        build_model("vsrnet", flow="pwc")


@pytest.mark.parametrize("h, w", [(32, 32), (18, 23)])
def test_edvr_m_shapes_and_padding(h, w):
    model = build_model("edvr", "m").eval()
    x = torch.rand(1, 5, 3, h, w)
    with torch.no_grad():
        out = model(x)
    assert out.shape == (1, 3, 4 * h, 4 * w)
    assert torch.isfinite(out).all()
    # untrained residual is small, so the output is close to the bilinear centre frame it adds
    base = F.interpolate(x[:, 2], scale_factor=4, mode="bilinear", align_corners=False)
    if h % 4 == 0 and w % 4 == 0:
        assert (out - base).abs().mean() < 0.5


def test_edvr_padding_crops_back_the_same_content():
    """A frame padded by the caller and one padded inside give the same pixels where both are valid."""
    model = build_model("edvr", "m", num_frame=3, with_tsa=False).eval()
    x = torch.rand(1, 3, 3, 14, 15)
    padded = F.pad(x.view(1, 9, 14, 15), (0, 1, 0, 2), mode="replicate").view(1, 3, 3, 16, 16)
    with torch.no_grad():
        a, b = model(x), model(padded)
    assert a.shape == (1, 3, 56, 60)
    torch.testing.assert_close(a, b[..., :56, :60])


def test_edvr_variants_shapes():
    with torch.no_grad():
        out7 = build_model("edvr", "m", num_frame=7, with_tsa=False).eval()(torch.rand(2, 7, 3, 8, 12))
        deblur = build_model("edvr", "m", with_predeblur=True, hr_in=True, scale=1).eval()
        out_hr = deblur(torch.rand(1, 5, 3, 20, 36))  # padded to 32x48 inside, cropped back
    assert out7.shape == (2, 3, 32, 48)
    assert out_hr.shape == (1, 3, 20, 36)
    with pytest.raises(ValueError, match="5 frames"):
        build_model("edvr", "m")(torch.rand(1, 3, 3, 8, 8))
    with pytest.raises(ValueError, match="hr_in needs with_predeblur"):
        EDVR(hr_in=True)


def _perturb_zero_init(model: torch.nn.Module, names: tuple[str, ...]) -> None:
    """Zero-initialised layers (DCN offset convs, flow heads) block gradients to the layers before them
    on the first step; give them small values so every parameter's gradient can be checked."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if any(n in name for n in names):
                p.normal_(0, 0.01)


def _assert_all_grads(model: torch.nn.Module, skip: str | None = None) -> None:
    no_grad = [n for n, p in model.named_parameters()
               if p.requires_grad and (skip is None or not n.startswith(skip))
               and (p.grad is None or not torch.isfinite(p.grad).all() or p.grad.abs().sum() == 0)]
    assert not no_grad, f"parameters without gradient: {no_grad[:10]}"


def test_edvr_backward_reaches_every_parameter():
    model = build_model("edvr", "m")
    _perturb_zero_init(model, ("conv_offset",))
    out = model(torch.rand(1, 5, 3, 16, 16))
    F.l1_loss(out, torch.rand_like(out)).backward()
    _assert_all_grads(model)


def test_edvr_offset_monitor_warns_when_offsets_explode(caplog):
    model = build_model("edvr", "m").eval()
    x = torch.rand(1, 5, 3, 8, 8)
    with torch.no_grad():
        model(x)
    assert model.offset_absmean == 0.0 and model.offset_warnings == 0  # offsets start at zero
    with torch.no_grad():
        model.pcd_align.cas_dcnpack.conv_offset.bias.fill_(100.0)
    with caplog.at_level(logging.WARNING, logger="vsrvfi.models.edvr"), torch.no_grad():
        model(x)
        model(x)
    assert model.offset_absmean == pytest.approx(100.0)
    assert model.offset_warnings == 2
    assert "offset abs mean is 100.0" in caplog.text
    model.monitor_offsets = False
    with torch.no_grad():
        model(x)
    assert model.offset_warnings == 2


def test_flownet_sd_pads_and_scales():
    net = FlowNetSD().eval()
    ref, nbr = torch.rand(1, 3, 64, 128), torch.rand(1, 3, 64, 128)
    with torch.no_grad():
        flow = net(ref, nbr)
        raw = net.predictions(net.normalise(ref, nbr))
        odd = net(ref[..., :50, :70], nbr[..., :50, :70])
    assert [f.shape[-1] for f in raw] == [32, 16, 8, 4, 2]  # 1/4 ... 1/64 of 128
    torch.testing.assert_close(flow, F.interpolate(raw[0] * 20, scale_factor=4, mode="bilinear", align_corners=False))
    assert odd.shape == (1, 2, 50, 70)


def test_ycbcr_round_trip():
    rgb = torch.rand(2, 3, 5, 7)
    torch.testing.assert_close(ycbcr_to_rgb(rgb_to_ycbcr(rgb)), rgb, atol=1e-5, rtol=0)
    gray = torch.full((1, 3, 2, 2), 0.3)
    torch.testing.assert_close(rgb_to_ycbcr(gray)[:, 1:], torch.full((1, 2, 2, 2), 0.5))


@pytest.mark.parametrize("flow, h, w", [("none", 8, 12), ("tiny", 9, 13), ("flownet_sd", 10, 6)])
def test_vsrnet_shapes(flow, h, w):
    model = build_model("vsrnet", flow=flow).eval()
    with torch.no_grad():
        out = model(torch.rand(2, 3, 3, h, w))
    assert out.shape == (2, 3, 4 * h, 4 * w)
    assert 0.0 <= out.min() and out.max() <= 1.0


def test_vsrnet_tiny_flow_starts_at_zero_and_warps_when_trained():
    model = build_model("vsrnet", flow="tiny").eval()
    frames = torch.rand(1, 3, 3, 8, 8)
    with torch.no_grad():
        flows = model.estimate_flows(model.upsample(frames))
        assert flows[1] is None and all(f.abs().max() == 0 for f in (flows[0], flows[2]))
        model.flow_net.head_coarse.bias.copy_(torch.tensor([3.0, -2.0]))  # a uniform shift
        flow = model.estimate_flows(model.upsample(frames))[0]
    torch.testing.assert_close(flow, torch.tensor([3.0, -2.0]).view(1, 2, 1, 1).expand_as(flow))


@pytest.mark.parametrize("flow", ["tiny", "flownet_sd"])
def test_vsrnet_backward_reaches_every_parameter(flow):
    model = build_model("vsrnet", flow=flow)
    assert not model.flow_frozen  # random flow net: trained jointly by default
    _perturb_zero_init(model, ("head_coarse", "refine.1"))
    out = model(torch.rand(2, 3, 3, 8, 8))
    F.mse_loss(out, torch.rand_like(out)).backward()
    _assert_all_grads(model)


def test_vsrnet_frozen_flow_gets_no_gradient():
    model = build_model("vsrnet", flow="tiny", freeze_flow=True)
    assert model.flow_frozen
    out = model(torch.rand(1, 3, 3, 8, 8))
    out.mean().backward()
    assert all(p.grad is None for p in model.flow_net.parameters())
    _assert_all_grads(model, skip="flow_net.")


def test_vsrnet_uses_the_flow_to_warp_outer_frames():
    """With a flow equal to the true shift, a shifted outer frame is aligned: same result as unshifted frames."""
    model = build_model("vsrnet", flow="none").eval()
    torch.manual_seed(1)
    center = torch.rand(1, 3, 12, 12)
    up = model.upsample(center.unsqueeze(1).expand(1, 3, 3, 12, 12))
    shifted = up.clone()
    shifted[:, 0] = torch.roll(up[:, 0], shifts=4, dims=-1)  # content moves 4 px right
    ycc = rgb_to_ycbcr(shifted)
    flow = torch.zeros(1, 2, 48, 48)
    flow[:, 0] = 4.0  # ref pixel x is found at x + 4 in the shifted frame
    with torch.no_grad():
        aligned = model.reconstruct(ycc, [flow, None, None])
        unaligned = model.reconstruct(ycc, [None, None, None])
        truth = model.reconstruct(rgb_to_ycbcr(up), [None, None, None])
    inner = (..., slice(8, -8), slice(8, -12))  # 8 px receptive field away from the border and wrapped columns
    assert (aligned - truth)[inner].abs().max() < 1e-5
    assert (unaligned - truth)[inner].abs().max() > 1e-3


def test_tiny_flow_net_any_size():
    assert TinyFlowNet()(torch.rand(1, 3, 21, 35), torch.rand(1, 3, 21, 35)).shape == (1, 2, 21, 35)
    assert isinstance(build_model("vsrnet", flow="none"), VSRNet)


def test_vsrnet_residual_starts_as_the_bicubic_baseline_and_learns(seeded_single_thread):
    from vsrvfi.models.baselines import bicubic_upscale

    lr = torch.rand(2, 3, 3, 12, 16)
    model = build_model("vsrnet", "base", flow="tiny", residual=True)
    plain = build_model("vsrnet", "base", flow="tiny")
    assert model.state_dict().keys() == plain.state_dict().keys()  # same layout: official weights still load
    out = model(lr)
    torch.testing.assert_close(out, bicubic_upscale(lr[:, 1], 4), atol=1e-5, rtol=0)  # YCbCr round trip only
    assert not torch.allclose(plain(lr), bicubic_upscale(lr[:, 1], 4), atol=1e-2)  # the sigmoid model does not
    out.sub(bicubic_upscale(lr[:, 1], 4).roll(1, -1)).square().mean().backward()
    assert model.conv3.weight.grad.abs().sum() > 0  # the correction is trained from the first step
