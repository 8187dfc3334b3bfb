"""The standard test sets' scoring protocols, rule by rule with the source of each, and the numbers
the official models publish on them.

A `Protocol` says which frames of a set are scored, how a model's input is padded, and which metric
conventions (`Scorer`s) are computed. Where the official sources disagree, both conventions are
computed and labelled (Vid4 and Vimeo-90K-T on Y and on RGB; VFI sets with RIFE's and IFRNet's rules).
Sources (read for the rules, nothing copied):
- BasicSR: options/test/EDVR/test_EDVR_{L,M}_x4_SR_{REDS,Vid4,Vimeo90K}.yml (crop_border 0,
  test_y_channel false, num_frame, padding reflection_circle), basicsr/data/video_test_dataset.py
  (frames scored, Vimeo-90K-T neighbour list), basicsr/metrics/psnr_ssim.py and
  basicsr/utils/matlab_functions.py (Y = BT.601, SSIM 11x11 Gaussian, MATLAB bicubic), docs/ModelZoo.md
  (published EDVR numbers, "we do not crop any border pixels").
- RIFE: hzwer/ECCV2022-RIFE benchmark/{Vimeo90K,UCF101,MiddleBury_Other}.py and README (numbers).
- IFRNet: ltkong218/IFRNet benchmarks/{Vimeo90K,UCF101,SNU_FILM,Middlebury_Other}.py and metric.py.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Callable

from vsrvfi.inference import testsets


@dataclass(frozen=True)
class Scorer:
    """One metric convention: what is compared and how."""

    label: str
    y_channel: bool = False
    crop_border: int = 0
    round_pred: bool = True      # prediction rounded to 8 bits before PSNR
    ssim: str = "2d"             # "2d": 11x11 Gaussian per channel (BasicSR); "3d": 11x11x11 on the colour volume (RIFE/IFRNet)
    ssim_round: bool = True      # prediction rounded to 8 bits before SSIM
    ie: bool = False             # also the interpolation error (Middlebury)
    source: str = ""

    def describe(self) -> str:
        space = "Y (BT.601: 16 + 65.481R + 128.553G + 24.966B)" if self.y_channel else "RGB"
        ssim = "SSIM 11x11 Gaussian" if self.ssim == "2d" else "SSIM 3-D 11x11x11 Gaussian ('ssim_matlab')"
        return (f"{space}, border {self.crop_border} px, PSNR on {'8-bit rounded' if self.round_pred else 'unrounded'} "
                f"output, {ssim}{' (rounded)' if self.ssim_round else ' (unrounded)'}"
                + (", IE on 8-bit" if self.ie else ""))


SR_RGB = Scorer("RGB", source="BasicSR options/test/EDVR/*.yml: calculate_psnr crop_border 0, test_y_channel false; "
                              "output rounded to uint8 by tensor2img")
SR_Y = Scorer("Y", y_channel=True, source="EDVR paper / BasicSR ModelZoo 'Vid4 (Y)': BT.601 Y of "
                                          "basicsr/utils/matlab_functions.py bgr2ycbcr, crop 0")


def vfi_scorers(ie: bool = False, rife_ssim_round: bool = False) -> tuple[Scorer, Scorer]:
    """Both VFI conventions: RIFE's (PSNR on the 8-bit rounded output) and IFRNet's (unrounded)."""
    return (Scorer("RGB, RIFE rules", round_pred=True, ssim="3d", ssim_round=rife_ssim_round, ie=ie,
                   source="RIFE benchmark/*.py: np.round(pred*255)/255, PSNR on [0,1]; ssim_matlab"),
            Scorer("RGB, IFRNet rules", round_pred=False, ssim="3d", ssim_round=False, ie=ie,
                   source="IFRNet metric.py calculate_psnr/calculate_ssim on the float output; calculate_ie"))


@dataclass(frozen=True)
class Protocol:
    name: str
    task: str                      # "sr" or "vfi"
    title: str
    frames: str                    # which frames are scored, and the source
    scorers: tuple[Scorer, ...]
    read: Callable                 # root (, make_lr) -> list of SRClip / Triplet
    window_padding: str = "reflection_circle"   # SR: BasicSR test ymls 'padding'
    canvas: tuple[int, int] | None = None       # VFI: inputs placed top-left on a zero canvas (H, W)
    ifrnet_flow_scale: float = 1.0              # IFRNet's scale_factor in its script for this set
    input_padding: str = ("the model pads to its multiple by replicate padding split evenly and crops back "
                          "(IFRNet benchmarks/SNU_FILM.py InputPadder; RIFE pads the same way)")
    notes: tuple[str, ...] = field(default_factory=tuple)

    def flow_scale(self, model_name: str) -> float:
        return self.ifrnet_flow_scale if model_name == "ifrnet" else 1.0


_SNU = {lv: Protocol(
    f"snu-film-{lv}", "vfi", f"SNU-FILM {lv}",
    f"the middle frame of every line of test-{lv}.txt (CAIN's lists; IFRNet benchmarks/SNU_FILM.py)",
    vfi_scorers(), partial(testsets.snu_film, level=lv), ifrnet_flow_scale=0.8,
    notes=("IFRNet's script pads to a multiple of 20 and runs at scale_factor 0.8 (IFRNet models here);",))
    for lv in testsets.SNU_LEVELS}

PROTOCOLS: dict[str, Protocol] = {
    "vid4": Protocol("vid4", "sr", "Vid4 (BIx4)",
                     "every frame of the 4 clips (BasicSR VideoTestDataset), LR = the set's BIx4 frames",
                     (SR_Y, SR_RGB), testsets.vid4,
                     notes=("the EDVR paper reports Y, BasicSR's yml computes RGB: both shown",)),
    "reds4": Protocol("reds4", "sr", "REDS4 (train_sharp 000/011/015/020, bicubic X4)",
                      "every frame of clips 000, 011, 015, 020 (meta_info_REDS4_test_GT.txt)",
                      (SR_RGB,), testsets.reds4),
    "vimeo90k-t": Protocol("vimeo90k-t", "sr", "Vimeo-90K-T (BIx4)",
                           "the centre frame im4 of every listed septuplet; window im(4-T//2)..im(4+T//2) "
                           "(BasicSR VideoTestVimeo90KDataset)",
                           (SR_Y, SR_RGB), testsets.vimeo_septuplet_test,
                           notes=("BasicSR's yml computes RGB; VSR papers' tables use Y: both shown",)),
    "vimeo90k": Protocol("vimeo90k", "vfi", "Vimeo-90K triplet test (3,782)",
                         "im2 of every triplet in tri_testlist.txt (RIFE/IFRNet benchmarks/Vimeo90K.py)",
                         vfi_scorers(), testsets.vimeo_triplet_test),
    "ucf101": Protocol("ucf101", "vfi", "UCF101 (379 triplets, ucf101_interp_ours)",
                       "frame_01_gt of every triplet folder (RIFE/IFRNet benchmarks/UCF101.py)",
                       vfi_scorers(rife_ssim_round=True), testsets.ucf101),
    **{p.name: p for p in _SNU.values()},
    "middlebury-other": Protocol("middlebury-other", "vfi", "Middlebury 'other' (12 sequences)",
                                 "frame10i11 of the 12 sequences with ground truth (RIFE/IFRNet Middlebury_Other.py)",
                                 vfi_scorers(ie=True), testsets.middlebury_other, canvas=(480, 640),
                                 input_padding="frames placed top-left on a zero 480x640 canvas and the output "
                                               "cropped back (both official Middlebury_Other.py scripts)"),
}


@dataclass(frozen=True)
class Published:
    psnr: float | None
    ssim: float | None
    source: str
    ie: float | None = None


_MODELZOO = "BasicSR docs/ModelZoo.md (EDVR official models) = EDVR paper"
_RIFE = "hzwer/ECCV2022-RIFE README, benchmark/*.py output"
_IFRNET = "IFRNet paper (CVPR 2022) Table 1"

# (protocol, model, size, scorer label) -> the published number for that official model.
PUBLISHED: dict[tuple[str, str, str, str], Published] = {
    ("reds4", "edvr", "l", "RGB"): Published(31.09, 0.8800, _MODELZOO + " EDVR_REDS_SR_L"),
    ("reds4", "edvr", "m", "RGB"): Published(30.53, 0.8699, _MODELZOO + " EDVR_REDS_SR_M"),
    ("vid4", "edvr", "l", "Y"): Published(27.35, 0.8264, _MODELZOO + " EDVR_Vimeo90K_SR_L"),
    ("vid4", "edvr", "l", "RGB"): Published(25.83, 0.8077, _MODELZOO + " EDVR_Vimeo90K_SR_L"),
    ("vimeo90k", "rife", "base", "RGB, RIFE rules"): Published(35.615, 0.9779, _RIFE),
    ("ucf101", "rife", "base", "RGB, RIFE rules"): Published(35.282, 0.9688, _RIFE),
    ("middlebury-other", "rife", "base", "RGB, RIFE rules"): Published(None, None, _RIFE, ie=1.956),
    ("vimeo90k", "ifrnet", "base", "RGB, IFRNet rules"): Published(35.80, None, _IFRNET),
    ("ucf101", "ifrnet", "base", "RGB, IFRNet rules"): Published(35.29, None, _IFRNET),
    ("vimeo90k", "ifrnet", "large", "RGB, IFRNet rules"): Published(36.20, None, _IFRNET + " (IFRNet-L)"),
    ("ucf101", "ifrnet", "large", "RGB, IFRNet rules"): Published(35.42, None, _IFRNET + " (IFRNet-L)"),
}


def get(name: str) -> Protocol:
    """The protocol called `name` (case-insensitive); ValueError listing the known ones otherwise."""
    key = name.lower().replace("_", "-")
    if key not in PROTOCOLS:
        raise ValueError(f"unknown benchmark {name!r}: use one of {', '.join(PROTOCOLS)}")
    return PROTOCOLS[key]


def published(protocol: str, model: str, size: str, label: str) -> Published | None:
    return PUBLISHED.get((protocol, model, size, label))


def read(protocol: Protocol, root: str | Path, make_lr: bool = False) -> list:
    """The set's items (SRClip or Triplet) under `root`; DataError naming what is missing."""
    root = Path(root)
    return protocol.read(root, make_lr=make_lr) if protocol.task == "sr" else protocol.read(root)
