"""EDVR video super-resolution (Wang et al., CVPR-W 2019), key-compatible with BasicSR checkpoints.

Layout and parameter names follow XPixelGroup/BasicSR `basicsr/archs/edvr_arch.py`, so its
`EDVR_*_official-*.pth` files (`{'params': ...}`) load as they are; the older xinntao/EDVR names
(`pcd_align.L3_offset_conv1`, `L1_dcnpack.conv_offset_mask`, `tsa_fusion.tAtt_1`, ...) are mapped
by the converter registered below. PCD alignment uses torchvision's modulated deformable
convolution (`torchvision.ops.deform_conv2d` with a mask), the same op BasicSR falls back to.

Input (N, T, 3, h, w) in [0, 1] -> output (N, 3, 4h, 4w): the x4 residual added to the bilinear
upsampling of the centre frame. Any h, w works: frames are padded to a multiple of 4 (16 with
`hr_in`) and the output cropped back.

Sizes: "m" (64 channels, 5 extraction / 10 reconstruction blocks; 3,300,131 parameters with TSA and
5 frames) and "l" (128 channels, 5 / 40 blocks; 20,633,827 parameters with TSA and 5 frames).
"""
from __future__ import annotations

import logging
import math
import re

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import deform_conv2d

from vsrvfi.models.registry import register, register_converter, register_inferer

log = logging.getLogger(__name__)

#: Mean absolute DCN offset (pixels) above which alignment is considered diverging; BasicSR's limit.
OFFSET_WARN_THRESHOLD = 50.0

SIZES = {"m": dict(num_feat=64, num_extract_block=5, num_reconstruct_block=10),
         "l": dict(num_feat=128, num_extract_block=5, num_reconstruct_block=40)}


def _lrelu(x: torch.Tensor) -> torch.Tensor:
    return F.leaky_relu(x, 0.1)


def _up2(x: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)


class ResidualBlockNoBN(nn.Module):
    """conv-ReLU-conv plus identity; weights start small (Kaiming x 0.1) so a deep stack starts near identity."""

    def __init__(self, num_feat: int = 64):
        super().__init__()
        self.conv1 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv2 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        for conv in (self.conv1, self.conv2):
            nn.init.kaiming_normal_(conv.weight)
            with torch.no_grad():
                conv.weight.mul_(0.1)
            nn.init.zeros_(conv.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(F.relu(self.conv1(x)))


def make_layer(num_blocks: int, num_feat: int) -> nn.Sequential:
    return nn.Sequential(*(ResidualBlockNoBN(num_feat) for _ in range(num_blocks)))


class DCNv2Pack(nn.Module):
    """Modulated deformable 3x3 conv whose offsets and mask are predicted from a separate feature map.

    `conv_offset` yields 3 * groups * k * k channels: two thirds are offsets (concatenated in
    BasicSR's order), one third the mask (through a sigmoid). The mean absolute offset of the last
    call is kept in `last_offset_absmean` (a detached tensor) for divergence monitoring.
    """

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int = 3, padding: int = 1, deformable_groups: int = 8):
        super().__init__()
        self.padding = padding
        self.weight = nn.Parameter(torch.empty(out_ch, in_ch, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_ch))
        bound = 1.0 / math.sqrt(in_ch * kernel_size * kernel_size)
        nn.init.uniform_(self.weight, -bound, bound)
        self.conv_offset = nn.Conv2d(in_ch, deformable_groups * 3 * kernel_size * kernel_size, kernel_size, 1, padding)
        nn.init.zeros_(self.conv_offset.weight)  # start as a plain convolution: zero offset, mask 0.5
        nn.init.zeros_(self.conv_offset.bias)
        self.last_offset_absmean: torch.Tensor | None = None

    def forward(self, x: torch.Tensor, feat: torch.Tensor) -> torch.Tensor:
        o1, o2, mask = torch.chunk(self.conv_offset(feat), 3, dim=1)
        offset = torch.cat((o1, o2), dim=1)
        self.last_offset_absmean = offset.detach().abs().mean()
        return deform_conv2d(x, offset, self.weight, self.bias, padding=self.padding, mask=torch.sigmoid(mask))


class PCDAlignment(nn.Module):
    """Pyramid, cascading and deformable alignment of a neighbour's features to the reference's.

    Three levels (l3 = 1/4, l2 = 1/2, l1 = full size); offsets and aligned features computed at a
    coarse level are upsampled (offsets doubled) and fed to the next finer one, then one more
    cascading DCN refines the full-size result.
    """

    def __init__(self, num_feat: int = 64, deformable_groups: int = 8):
        super().__init__()
        self.offset_conv1 = nn.ModuleDict()
        self.offset_conv2 = nn.ModuleDict()
        self.offset_conv3 = nn.ModuleDict()
        self.dcn_pack = nn.ModuleDict()
        self.feat_conv = nn.ModuleDict()
        for level in (3, 2, 1):
            key = f"l{level}"
            coarsest = level == 3
            self.offset_conv1[key] = nn.Conv2d(num_feat * 2, num_feat, 3, 1, 1)
            self.offset_conv2[key] = nn.Conv2d(num_feat if coarsest else num_feat * 2, num_feat, 3, 1, 1)
            if not coarsest:
                self.offset_conv3[key] = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
                self.feat_conv[key] = nn.Conv2d(num_feat * 2, num_feat, 3, 1, 1)
            self.dcn_pack[key] = DCNv2Pack(num_feat, num_feat, 3, 1, deformable_groups)
        self.cas_offset_conv1 = nn.Conv2d(num_feat * 2, num_feat, 3, 1, 1)
        self.cas_offset_conv2 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.cas_dcnpack = DCNv2Pack(num_feat, num_feat, 3, 1, deformable_groups)

    def dcns(self) -> list[DCNv2Pack]:
        return [*self.dcn_pack.values(), self.cas_dcnpack]

    def forward(self, nbr_feats: list[torch.Tensor], ref_feats: list[torch.Tensor]) -> torch.Tensor:
        """nbr_feats, ref_feats: [l1, l2, l3] features (N, C, h / 2^i, w / 2^i) -> aligned (N, C, h, w)."""
        up_offset = up_feat = None
        for level in (3, 2, 1):
            key, nbr, ref = f"l{level}", nbr_feats[level - 1], ref_feats[level - 1]
            offset = _lrelu(self.offset_conv1[key](torch.cat([nbr, ref], 1)))
            if up_offset is None:
                offset = _lrelu(self.offset_conv2[key](offset))
            else:
                offset = _lrelu(self.offset_conv2[key](torch.cat([offset, up_offset], 1)))
                offset = _lrelu(self.offset_conv3[key](offset))
            feat = self.dcn_pack[key](nbr, offset)
            if up_feat is not None:
                feat = self.feat_conv[key](torch.cat([feat, up_feat], 1))
            if level > 1:
                feat = _lrelu(feat)
                up_offset = _up2(offset) * 2  # offsets are in pixels of the finer level
                up_feat = _up2(feat)
        offset = _lrelu(self.cas_offset_conv1(torch.cat([feat, ref_feats[0]], 1)))
        offset = _lrelu(self.cas_offset_conv2(offset))
        return _lrelu(self.cas_dcnpack(feat, offset))


class TSAFusion(nn.Module):
    """Temporal (correlation with the centre frame) and spatial (pyramid attention) fusion of aligned frames."""

    def __init__(self, num_feat: int = 64, num_frame: int = 5, center_frame_idx: int = 2):
        super().__init__()
        self.center_frame_idx = center_frame_idx
        c = num_feat
        self.temporal_attn1 = nn.Conv2d(c, c, 3, 1, 1)  # embeds the reference frame
        self.temporal_attn2 = nn.Conv2d(c, c, 3, 1, 1)  # embeds every frame
        self.feat_fusion = nn.Conv2d(num_frame * c, c, 1, 1)
        self.spatial_attn1 = nn.Conv2d(num_frame * c, c, 1)
        self.spatial_attn2 = nn.Conv2d(c * 2, c, 1)
        self.spatial_attn3 = nn.Conv2d(c, c, 3, 1, 1)
        self.spatial_attn4 = nn.Conv2d(c, c, 1)
        self.spatial_attn5 = nn.Conv2d(c, c, 3, 1, 1)
        self.spatial_attn_l1 = nn.Conv2d(c, c, 1)
        self.spatial_attn_l2 = nn.Conv2d(c * 2, c, 3, 1, 1)
        self.spatial_attn_l3 = nn.Conv2d(c, c, 3, 1, 1)
        self.spatial_attn_add1 = nn.Conv2d(c, c, 1)
        self.spatial_attn_add2 = nn.Conv2d(c, c, 1)

    @staticmethod
    def _pool_pair(x: torch.Tensor) -> torch.Tensor:
        return torch.cat([F.max_pool2d(x, 3, 2, 1), F.avg_pool2d(x, 3, 2, 1)], 1)

    def forward(self, aligned: torch.Tensor) -> torch.Tensor:
        """aligned (N, T, C, h, w) -> fused (N, C, h, w)."""
        n, t, c, h, w = aligned.shape
        emb_ref = self.temporal_attn1(aligned[:, self.center_frame_idx])
        emb = self.temporal_attn2(aligned.reshape(n * t, c, h, w)).view(n, t, -1, h, w)
        corr = torch.sigmoid((emb * emb_ref.unsqueeze(1)).sum(2, keepdim=True))  # (N, T, 1, h, w)
        weighted = (aligned * corr).view(n, t * c, h, w)

        feat = _lrelu(self.feat_fusion(weighted))

        attn = _lrelu(self.spatial_attn1(weighted))
        attn = _lrelu(self.spatial_attn2(self._pool_pair(attn)))
        attn_level = _lrelu(self.spatial_attn_l1(attn))
        attn_level = _lrelu(self.spatial_attn_l2(self._pool_pair(attn_level)))
        attn_level = _up2(_lrelu(self.spatial_attn_l3(attn_level)))
        attn = _lrelu(self.spatial_attn3(attn)) + attn_level
        attn = self.spatial_attn5(_up2(_lrelu(self.spatial_attn4(attn))))
        attn_add = self.spatial_attn_add2(_lrelu(self.spatial_attn_add1(attn)))
        return feat * torch.sigmoid(attn) * 2 + attn_add  # x2: the sigmoid starts near 0.5


class PredeblurModule(nn.Module):
    """Pre-deblurring pyramid of BasicSR's deblur models; with `hr_in` it also downsamples x4."""

    def __init__(self, num_in_ch: int = 3, num_feat: int = 64, hr_in: bool = False):
        super().__init__()
        self.hr_in = hr_in
        self.conv_first = nn.Conv2d(num_in_ch, num_feat, 3, 1, 1)
        if hr_in:
            self.stride_conv_hr1 = nn.Conv2d(num_feat, num_feat, 3, 2, 1)
            self.stride_conv_hr2 = nn.Conv2d(num_feat, num_feat, 3, 2, 1)
        self.stride_conv_l2 = nn.Conv2d(num_feat, num_feat, 3, 2, 1)
        self.stride_conv_l3 = nn.Conv2d(num_feat, num_feat, 3, 2, 1)
        self.resblock_l3 = ResidualBlockNoBN(num_feat)
        self.resblock_l2_1 = ResidualBlockNoBN(num_feat)
        self.resblock_l2_2 = ResidualBlockNoBN(num_feat)
        self.resblock_l1 = nn.ModuleList(ResidualBlockNoBN(num_feat) for _ in range(5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        l1 = _lrelu(self.conv_first(x))
        if self.hr_in:
            l1 = _lrelu(self.stride_conv_hr2(_lrelu(self.stride_conv_hr1(l1))))
        l2 = _lrelu(self.stride_conv_l2(l1))
        l3 = _lrelu(self.stride_conv_l3(l2))
        l2 = self.resblock_l2_1(l2) + _up2(self.resblock_l3(l3))
        l2 = _up2(self.resblock_l2_2(l2))
        l1 = self.resblock_l1[1](self.resblock_l1[0](l1)) + l2
        for block in self.resblock_l1[2:]:
            l1 = block(l1)
        return l1


class EDVR(nn.Module):
    """EDVR: feature pyramid per frame -> PCD alignment to the centre frame -> TSA (or 1x1 conv) fusion
    -> residual reconstruction -> x4 pixel-shuffle upsampling + bilinear centre frame.

    After each forward, `offset_absmean` holds the largest mean absolute DCN offset seen (over the
    four DCNs and all frames) and `offset_warnings` counts forwards in which it exceeded
    `offset_warn_threshold` (each also logged as a warning): the known EDVR divergence symptom a
    trainer's guard can read. Set `monitor_offsets = False` to skip the one host sync per forward.
    """

    def __init__(self, num_in_ch: int = 3, num_out_ch: int = 3, num_feat: int = 64, num_frame: int = 5,
                 deformable_groups: int = 8, num_extract_block: int = 5, num_reconstruct_block: int = 10,
                 center_frame_idx: int | None = None, hr_in: bool = False, with_predeblur: bool = False,
                 with_tsa: bool = True):
        super().__init__()
        if hr_in and not with_predeblur:
            raise ValueError("EDVR: hr_in needs with_predeblur (its stride convs do the x4 downsampling), as in BasicSR")
        self.num_frame = num_frame
        self.center_frame_idx = num_frame // 2 if center_frame_idx is None else center_frame_idx
        self.hr_in = hr_in
        self.with_predeblur = with_predeblur
        self.with_tsa = with_tsa
        self.scale = 1 if hr_in else 4

        if with_predeblur:
            self.predeblur = PredeblurModule(num_in_ch, num_feat, hr_in)
            self.conv_1x1 = nn.Conv2d(num_feat, num_feat, 1, 1)
        else:
            self.conv_first = nn.Conv2d(num_in_ch, num_feat, 3, 1, 1)
        self.feature_extraction = make_layer(num_extract_block, num_feat)
        self.conv_l2_1 = nn.Conv2d(num_feat, num_feat, 3, 2, 1)
        self.conv_l2_2 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_l3_1 = nn.Conv2d(num_feat, num_feat, 3, 2, 1)
        self.conv_l3_2 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)

        self.pcd_align = PCDAlignment(num_feat, deformable_groups)
        if with_tsa:
            self.fusion = TSAFusion(num_feat, num_frame, self.center_frame_idx)
        else:
            self.fusion = nn.Conv2d(num_frame * num_feat, num_feat, 1, 1)

        self.reconstruction = make_layer(num_reconstruct_block, num_feat)
        self.upconv1 = nn.Conv2d(num_feat, num_feat * 4, 3, 1, 1)
        self.upconv2 = nn.Conv2d(num_feat, 64 * 4, 3, 1, 1)
        self.conv_hr = nn.Conv2d(64, 64, 3, 1, 1)
        self.conv_last = nn.Conv2d(64, num_out_ch, 3, 1, 1)

        self.monitor_offsets = True
        self.offset_warn_threshold = OFFSET_WARN_THRESHOLD
        self.offset_absmean = 0.0
        self.offset_warnings = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (N, T, C, H, W) in [0, 1] -> (N, C, 4H, 4W) (same size as the input with `hr_in`)."""
        n, t, c, h, w = x.shape
        if t != self.num_frame:
            raise ValueError(f"EDVR built for {self.num_frame} frames got {t}")
        multiple = 16 if self.hr_in else 4
        pad_h, pad_w = -h % multiple, -w % multiple
        if pad_h or pad_w:
            x = F.pad(x.reshape(n, t * c, h, w), (0, pad_w, 0, pad_h), mode="replicate").view(n, t, c, h + pad_h, w + pad_w)
        out = self._forward_padded(x)
        return out[..., : h * self.scale, : w * self.scale]

    def _forward_padded(self, x: torch.Tensor) -> torch.Tensor:
        n, t, c, h, w = x.shape
        x_center = x[:, self.center_frame_idx]
        frames = x.reshape(n * t, c, h, w)
        if self.with_predeblur:
            l1 = self.conv_1x1(self.predeblur(frames))
            if self.hr_in:
                h, w = h // 4, w // 4
        else:
            l1 = _lrelu(self.conv_first(frames))
        l1 = self.feature_extraction(l1)
        l2 = _lrelu(self.conv_l2_2(_lrelu(self.conv_l2_1(l1))))
        l3 = _lrelu(self.conv_l3_2(_lrelu(self.conv_l3_1(l2))))
        pyramid = [f.view(n, t, -1, f.shape[-2], f.shape[-1]) for f in (l1, l2, l3)]

        ref = [f[:, self.center_frame_idx] for f in pyramid]
        aligned, offset_means = [], []
        for i in range(t):
            aligned.append(self.pcd_align([f[:, i] for f in pyramid], ref))
            if self.monitor_offsets:
                offset_means.extend(d.last_offset_absmean for d in self.pcd_align.dcns())
        aligned = torch.stack(aligned, 1)  # (N, T, C, h, w)
        if offset_means:
            self._check_offsets(torch.stack(offset_means).max())

        feat = self.fusion(aligned if self.with_tsa else aligned.view(n, -1, h, w))
        out = self.reconstruction(feat)
        out = _lrelu(F.pixel_shuffle(self.upconv1(out), 2))
        out = _lrelu(F.pixel_shuffle(self.upconv2(out), 2))
        out = self.conv_last(_lrelu(self.conv_hr(out)))
        base = x_center if self.hr_in else F.interpolate(x_center, scale_factor=4, mode="bilinear", align_corners=False)
        return out + base

    def _check_offsets(self, absmean: torch.Tensor) -> None:
        self.offset_absmean = float(absmean)
        if not math.isfinite(self.offset_absmean) or self.offset_absmean > self.offset_warn_threshold:
            self.offset_warnings += 1
            log.warning("EDVR: DCN offset abs mean is %.1f, larger than %g (alignment diverging; %d times so far)",
                        self.offset_absmean, self.offset_warn_threshold, self.offset_warnings)


def _build(size: str, num_frame: int, with_tsa: bool, scale: int, hr_in: bool, with_predeblur: bool,
           center_frame_idx: int | None, deformable_groups: int) -> EDVR:
    if num_frame < 1:
        raise ValueError(f"EDVR: num_frame must be positive, got {num_frame}")
    expected = 1 if hr_in else 4
    if scale != expected:
        raise ValueError(f"EDVR upsamples x4 only (x1 with hr_in); got scale={scale}")
    return EDVR(num_frame=num_frame, with_tsa=with_tsa, hr_in=hr_in, with_predeblur=with_predeblur,
                center_frame_idx=center_frame_idx, deformable_groups=deformable_groups, **SIZES[size])


@register("edvr", "m", task="sr", default=True)
def edvr_m(num_frame: int = 5, with_tsa: bool = True, scale: int = 4, hr_in: bool = False,
           with_predeblur: bool = False, center_frame_idx: int | None = None, deformable_groups: int = 8) -> EDVR:
    """EDVR-M: 64 channels, 5 extraction and 10 reconstruction blocks."""
    return _build("m", num_frame, with_tsa, scale, hr_in, with_predeblur, center_frame_idx, deformable_groups)


@register("edvr", "l", task="sr")
def edvr_l(num_frame: int = 5, with_tsa: bool = True, scale: int = 4, hr_in: bool = False,
           with_predeblur: bool = False, center_frame_idx: int | None = None, deformable_groups: int = 8) -> EDVR:
    """EDVR-L: 128 channels, 5 extraction and 40 reconstruction blocks."""
    return _build("l", num_frame, with_tsa, scale, hr_in, with_predeblur, center_frame_idx, deformable_groups)


# xinntao/EDVR (codes/models/archs/EDVR_arch.py) names -> BasicSR names, applied in order, first match wins.
# Note the swap: the old tAtt_2 embedded the reference frame, which BasicSR calls temporal_attn1.
_OLD_EDVR_RULES: list[tuple[re.Pattern, object]] = [(re.compile(p), r) for p, r in [
    (r"^pre_deblur\.conv_first_1\.", "predeblur.conv_first."),
    (r"^pre_deblur\.conv_first_2\.", "predeblur.stride_conv_hr1."),
    (r"^pre_deblur\.conv_first_3\.", "predeblur.stride_conv_hr2."),
    (r"^pre_deblur\.conv_first\.", "predeblur.conv_first."),
    (r"^pre_deblur\.deblur_L(\d)_conv\.", r"predeblur.stride_conv_l\1."),
    (r"^pre_deblur\.RB_L3_1\.", "predeblur.resblock_l3."),
    (r"^pre_deblur\.RB_L2_(\d)\.", r"predeblur.resblock_l2_\1."),
    (r"^pre_deblur\.RB_L1_(\d)\.", lambda m: f"predeblur.resblock_l1.{int(m.group(1)) - 1}."),
    (r"^fea_L(\d)_conv(\d)\.", r"conv_l\1_\2."),
    (r"^pcd_align\.L(\d)_offset_conv(\d)\.", r"pcd_align.offset_conv\2.l\1."),
    (r"^pcd_align\.L(\d)_dcnpack\.conv_offset_mask\.", r"pcd_align.dcn_pack.l\1.conv_offset."),
    (r"^pcd_align\.L(\d)_dcnpack\.", r"pcd_align.dcn_pack.l\1."),
    (r"^pcd_align\.L(\d)_fea_conv\.", r"pcd_align.feat_conv.l\1."),
    (r"^pcd_align\.cas_dcnpack\.conv_offset_mask\.", "pcd_align.cas_dcnpack.conv_offset."),
    (r"^tsa_fusion\.tAtt_1\.", "fusion.temporal_attn2."),
    (r"^tsa_fusion\.tAtt_2\.", "fusion.temporal_attn1."),
    (r"^tsa_fusion\.fea_fusion\.", "fusion.feat_fusion."),
    (r"^tsa_fusion\.sAtt_add_(\d)\.", r"fusion.spatial_attn_add\1."),
    (r"^tsa_fusion\.sAtt_L(\d)\.", r"fusion.spatial_attn_l\1."),
    (r"^tsa_fusion\.sAtt_(\d)\.", r"fusion.spatial_attn\1."),
    (r"^tsa_fusion\.(weight|bias)$", r"fusion.\1"),  # models without TSA: a single 1x1 conv
    (r"^recon_trunk\.", "reconstruction."),
    (r"^HRconv\.", "conv_hr."),
]]


def _rename_old_key(key: str) -> str:
    for pattern, repl in _OLD_EDVR_RULES:
        new, count = pattern.subn(repl, key, count=1)
        if count:
            return new
    return key


@register_converter("edvr")
def convert_old_edvr(state_dict: dict) -> dict:
    """Rename xinntao/EDVR keys to BasicSR's; BasicSR keys match no rule and pass through unchanged."""
    return {_rename_old_key(k): v for k, v in state_dict.items()}


@register_inferer("edvr")
def infer_edvr(state_dict: dict) -> tuple[str | None, dict]:
    """(size, builder kwargs) of a BasicSR-layout EDVR state_dict: frames, TSA, predeblur, hr_in, DCN groups."""
    if "conv_l2_1.weight" not in state_dict:
        return None, {}
    num_feat = state_dict["conv_l2_1.weight"].shape[0]
    fusion = state_dict.get("fusion.feat_fusion.weight", state_dict.get("fusion.weight"))
    kwargs: dict = {"with_tsa": "fusion.feat_fusion.weight" in state_dict,
                    "with_predeblur": "predeblur.conv_first.weight" in state_dict,
                    "hr_in": "predeblur.stride_conv_hr1.weight" in state_dict}
    if fusion is not None:
        kwargs["num_frame"] = fusion.shape[1] // num_feat
    dcn = state_dict.get("pcd_align.cas_dcnpack.conv_offset.weight")
    if dcn is not None:
        kwargs["deformable_groups"] = dcn.shape[0] // (3 * dcn.shape[-1] * dcn.shape[-2])
    if kwargs["hr_in"]:
        kwargs["scale"] = 1

    def blocks(prefix: str) -> int:
        return len({k.split(".")[1] for k in state_dict if k.startswith(prefix + ".")})

    found = dict(num_feat=num_feat, num_extract_block=blocks("feature_extraction"),
                 num_reconstruct_block=blocks("reconstruction"))
    size = next((s for s, cfg in SIZES.items() if cfg == found), None)
    return size, kwargs
