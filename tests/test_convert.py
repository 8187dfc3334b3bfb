"""Official checkpoint layouts load strictly (BasicSR, old xinntao/EDVR, FlowNet2 tar, DALI VSRNet names)
and the vsr-convert CLI round-trips. Official-layout files are generated here from our models with
renamed keys and random values: nothing is downloaded."""
from __future__ import annotations

import re

import pytest
import torch

from vsrvfi.models.checkpoint import save_checkpoint
from vsrvfi.models.load import load_model, load_pretrained
from vsrvfi.models.registry import build_model
from vsrvfi.tools.convert_checkpoint import cli as convert_main
from vsrvfi.core.errors import CheckpointError


def _randomised(state_dict: dict, dtype: torch.dtype | None = None) -> dict:
    g = torch.Generator().manual_seed(0)
    out = {}
    for k, v in state_dict.items():
        r = torch.randn(v.shape, generator=g) if v.is_floating_point() else v.clone()
        out[k] = r.to(dtype) if dtype is not None and r.is_floating_point() else r
    return out


def _assert_loaded(model: torch.nn.Module, expected: dict) -> None:
    own = model.state_dict()
    for k, v in expected.items():
        torch.testing.assert_close(own[k], v.to(own[k].dtype), msg=k)


# Our (BasicSR) names -> xinntao/EDVR's codes/models/archs/EDVR_arch.py names, written from that file
# independently of the converter under test (and the reference-frame embedding swap: tAtt_2 <-> attn1).
_TO_OLD = [(re.compile(p), r) for p, r in [
    (r"^predeblur\.conv_first\.", "pre_deblur.conv_first_1."),  # with HR_in
    (r"^predeblur\.stride_conv_hr(\d)\.", lambda m: f"pre_deblur.conv_first_{int(m[1]) + 1}."),
    (r"^predeblur\.stride_conv_l(\d)\.", r"pre_deblur.deblur_L\1_conv."),
    (r"^predeblur\.resblock_l3\.", "pre_deblur.RB_L3_1."),
    (r"^predeblur\.resblock_l2_(\d)\.", r"pre_deblur.RB_L2_\1."),
    (r"^predeblur\.resblock_l1\.(\d)\.", lambda m: f"pre_deblur.RB_L1_{int(m[1]) + 1}."),
    (r"^conv_l(\d)_(\d)\.", r"fea_L\1_conv\2."),
    (r"^pcd_align\.offset_conv(\d)\.l(\d)\.", r"pcd_align.L\2_offset_conv\1."),
    (r"^pcd_align\.dcn_pack\.l(\d)\.conv_offset\.", r"pcd_align.L\1_dcnpack.conv_offset_mask."),
    (r"^pcd_align\.dcn_pack\.l(\d)\.", r"pcd_align.L\1_dcnpack."),
    (r"^pcd_align\.feat_conv\.l(\d)\.", r"pcd_align.L\1_fea_conv."),
    (r"^pcd_align\.cas_dcnpack\.conv_offset\.", "pcd_align.cas_dcnpack.conv_offset_mask."),
    (r"^fusion\.temporal_attn1\.", "tsa_fusion.tAtt_2."),
    (r"^fusion\.temporal_attn2\.", "tsa_fusion.tAtt_1."),
    (r"^fusion\.feat_fusion\.", "tsa_fusion.fea_fusion."),
    (r"^fusion\.spatial_attn_add(\d)\.", r"tsa_fusion.sAtt_add_\1."),
    (r"^fusion\.spatial_attn_l(\d)\.", r"tsa_fusion.sAtt_L\1."),
    (r"^fusion\.spatial_attn(\d)\.", r"tsa_fusion.sAtt_\1."),
    (r"^fusion\.(weight|bias)$", r"tsa_fusion.\1"),
    (r"^reconstruction\.", "recon_trunk."),
    (r"^conv_hr\.", "HRconv."),
]]


def _to_old_key(key: str) -> str:
    for pattern, repl in _TO_OLD:
        new, n = pattern.subn(repl, key, count=1)
        if n:
            return new
    return key


def _old_edvr_state(model: torch.nn.Module, scale: float = 1.0) -> tuple[dict, dict]:
    ours = {k: v * scale if v.is_floating_point() else v for k, v in _randomised(model.state_dict()).items()}
    return ours, {_to_old_key(k): v for k, v in ours.items()}


def test_basicsr_params_and_params_ema(tmp_path):
    model = build_model("edvr", "m")
    params, ema = _randomised(model.state_dict()), {k: v * 2 for k, v in _randomised(model.state_dict()).items()}
    path = tmp_path / "EDVR_M_official.pth"
    torch.save({"params": params, "params_ema": ema}, path)
    assert load_pretrained(model, path, "edvr") == ([], [])
    _assert_loaded(model, ema)
    load_pretrained(model, path, "edvr", prefer_ema=False)
    _assert_loaded(model, params)
    torch.save({"params": {"module." + k: v for k, v in params.items()}}, path)  # DDP prefix
    load_pretrained(model, path, "edvr")
    _assert_loaded(model, params)


@pytest.mark.parametrize("kwargs", [{}, {"with_tsa": False, "num_frame": 7},
                                    {"with_predeblur": True, "hr_in": True, "scale": 1}])
def test_old_edvr_names_load_strictly(tmp_path, kwargs):
    model = build_model("edvr", "m", **kwargs)
    ours, old = _old_edvr_state(model)
    # names as in the old repository's EDVR_arch.py
    sample = {"pcd_align.L3_offset_conv1.weight", "pcd_align.L1_dcnpack.conv_offset_mask.weight",
              "pcd_align.cas_dcnpack.weight", "fea_L2_conv1.weight", "recon_trunk.9.conv2.bias", "HRconv.weight"}
    sample |= ({"tsa_fusion.tAtt_1.weight", "tsa_fusion.sAtt_add_2.bias", "tsa_fusion.sAtt_L3.weight"}
               if model.with_tsa else {"tsa_fusion.weight"})
    if kwargs.get("with_predeblur"):
        sample |= {"pre_deblur.conv_first_3.weight", "pre_deblur.RB_L1_5.conv2.weight", "pre_deblur.deblur_L3_conv.bias"}
    assert sample <= set(old)
    assert not any(k.startswith(("fusion.", "reconstruction.", "predeblur.")) for k in old)
    path = tmp_path / "EDVR_REDS_SR_M.pth"
    torch.save(old, path)  # the old repository saved bare state_dicts
    assert load_pretrained(model, path, "edvr") == ([], [])
    _assert_loaded(model, ours)
    if model.with_tsa:  # the reference embedding was tAtt_2 in the old code
        torch.testing.assert_close(model.fusion.temporal_attn1.weight, old["tsa_fusion.tAtt_2.weight"])


@pytest.fixture(scope="module")
def flownet_tar(tmp_path_factory):
    """A FlowNet2-SD checkpoint in flownet2-pytorch's layout, float16 values to halve the file."""
    from vsrvfi.models.flownet_sd import FlowNetSD
    state = _randomised(FlowNetSD().state_dict(), torch.float16)
    path = tmp_path_factory.mktemp("flownet") / "FlowNet2-SD_checkpoint.pth.tar"
    torch.save({"arch": "FlowNet2SD", "epoch": 10, "state_dict": state, "best_EPE": 2.5}, path)
    return path, state


def test_flownet2_checkpoint_loads_into_vsrnet(flownet_tar):
    path, state = flownet_tar
    model = build_model("vsrnet", flownet_path=path)
    _assert_loaded(model.flow_net, state)
    assert model.flow_frozen  # DALI trains VSRNet with the loaded FlowNet2-SD frozen
    assert not build_model("vsrnet", flownet_path=path, freeze_flow=False).flow_frozen
    with pytest.raises(ValueError, match="flow='flownet_sd'"):
        build_model("vsrnet", flow="tiny", flownet_path=path)


def test_dali_vsrnet_names_load(tmp_path, flownet_tar):
    _, flow_state = flownet_tar
    model = build_model("vsrnet", flow="flownet_sd")
    ours = _randomised(model.state_dict(), torch.float16)
    ours.update({"flow_net." + k: v for k, v in flow_state.items()})
    dali = {k.replace("flow_net.", "FlowNetSD_network.", 1): v for k, v in ours.items()}
    path = tmp_path / "vsrnet_dali.pth"
    torch.save(dali, path)
    assert load_pretrained(model, path, "vsrnet") == ([], [])
    _assert_loaded(model, ours)


def test_mismatches_are_one_line_errors(tmp_path):
    model = build_model("edvr", "m")
    path = tmp_path / "m.pth"
    state = _randomised(model.state_dict())
    del state["conv_last.bias"]
    state["extra.weight"] = torch.zeros(1)
    torch.save({"params": state}, path)
    with pytest.raises(CheckpointError) as err:
        load_pretrained(model, path, "edvr")
    assert str(path) in str(err.value) and "\n" not in str(err.value)
    assert "1 missing keys (conv_last.bias)" in str(err.value) and "1 unexpected keys (extra.weight)" in str(err.value)
    assert load_pretrained(model, path, "edvr", strict=False) == (["conv_last.bias"], ["extra.weight"])
    small = build_model("edvr", "m", num_frame=3)
    missing, unexpected = load_pretrained(small, path, "edvr", strict=False)  # fusion shapes differ
    assert "fusion.feat_fusion.weight" in missing and "fusion.feat_fusion.weight" in unexpected
    with pytest.raises(CheckpointError, match="no such checkpoint file"):
        load_pretrained(model, tmp_path / "absent.pth", "edvr")


def _edvr_old_file(tmp_path, scale: float = 1.0, **kwargs):
    model = build_model("edvr", "m", **kwargs)
    _, old = _old_edvr_state(model, scale)
    path = tmp_path / "EDVR_official.pth"
    torch.save(old, path)
    return path


def test_convert_cli_round_trip(tmp_path, capsys):
    src = _edvr_old_file(tmp_path, scale=0.05)  # unit-variance weights make the DCN offsets overflow to NaN
    dst = tmp_path / "edvr_m.pth"
    assert convert_main(["--model", "edvr", "--size", "m", str(src), str(dst)]) == 0
    out = capsys.readouterr().out
    assert "edvr/m" in out and "3,300,131 parameters" in out and "all keys match" in out
    ckpt = torch.load(dst, weights_only=False)
    assert ckpt["model_name"] == "edvr" and ckpt["size"] == "m" and ckpt["kwargs"]["num_frame"] == 5
    converted, meta = load_model(dst)
    assert (meta.model, meta.size, meta.task, meta.source, meta.step) == ("edvr", "m", "sr", str(src), None)
    direct = build_model("edvr", "m").eval()
    load_pretrained(direct, src, "edvr")
    x = torch.rand(1, 5, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        out = converted(x)
        assert torch.isfinite(out).all()
        torch.testing.assert_close(out, direct(x), rtol=0, atol=0)
    # the converted file is itself a valid input (already in our layout)
    again = build_model("edvr", "m")
    assert load_pretrained(again, dst, "edvr") == ([], [])


def test_convert_cli_infers_frames_and_tsa(tmp_path, capsys):
    src = _edvr_old_file(tmp_path, num_frame=7, with_tsa=False)
    dst = tmp_path / "out.pth"
    assert convert_main(["--model", "edvr", str(src), str(dst)]) == 0
    ckpt = torch.load(dst, weights_only=False)
    assert ckpt["kwargs"]["num_frame"] == 7 and ckpt["kwargs"]["with_tsa"] is False
    assert load_model(dst)[0].num_frame == 7
    capsys.readouterr()
    assert convert_main(["--model", "edvr", "--set", "num_frame=5", str(src), str(dst)]) == 2  # forced wrong
    captured = capsys.readouterr()
    assert "fusion.weight: (64, 448, 1, 1) vs (64, 320, 1, 1)" in captured.out
    assert len(captured.err.strip().splitlines()) == 1 and "does not match edvr" in captured.err


def test_convert_cli_errors(tmp_path, capsys, flownet_tar):
    missing = tmp_path / "nope.pth"
    assert convert_main(["--model", "edvr", str(missing), str(tmp_path / "o.pth")]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"error: {missing}: no such checkpoint file"
    # a FlowNet2 checkpoint is not an EDVR one
    tar, _ = flownet_tar
    assert convert_main(["--model", "edvr", str(tar), str(tmp_path / "o.pth")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "not a checkpoint of edvr" in err
    # the size asked for disagrees with the weights
    src = _edvr_old_file(tmp_path)
    assert convert_main(["--model", "edvr", "--size", "l", str(src), str(tmp_path / "o.pth")]) == 2
    assert "holds edvr size 'm', not 'l'" in capsys.readouterr().err
    assert not (tmp_path / "o.pth").exists()
    # a converted EDVR checkpoint offered as VSRNet
    dst = tmp_path / "edvr.pth"
    save_checkpoint({"model": build_model("edvr", "m").state_dict(), "model_name": "edvr", "size": "m", "kwargs": {}}, dst)
    assert convert_main(["--model", "vsrnet", str(dst), str(tmp_path / "o.pth")]) == 2
    assert "checkpoint is for model 'edvr', not 'vsrnet'" in capsys.readouterr().err
    assert convert_main(["--model", "nosuch", str(dst), str(tmp_path / "o.pth")]) == 2
    assert "unknown model" in capsys.readouterr().err


def test_convert_flownet_vsrnet(tmp_path, capsys, flownet_tar):
    """DALI-layout VSRNet (frames inferred from conv2) converts; load_model rebuilds the flow kind."""
    model = build_model("vsrnet", flow="tiny", num_frame=5)
    src = tmp_path / "v.pth"
    torch.save({"state_dict": _randomised(model.state_dict())}, src)
    dst = tmp_path / "v_out.pth"
    assert convert_main(["--model", "vsrnet", str(src), str(dst)]) == 0
    assert "vsrnet/base (num_frame=5, flow=tiny)" in capsys.readouterr().out
    rebuilt, _ = load_model(dst)
    assert rebuilt.num_frame == 5 and rebuilt.flow == "tiny"
    with pytest.raises(CheckpointError, match="not a project checkpoint"):
        load_model(src)
