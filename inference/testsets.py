"""Readers of the standard test sets in the layouts they are distributed in.

Each reader checks the layout first and raises `DataError` naming the missing folder, list or frame
(one line from the CLI), then returns plain lists of paths: `SRClip` (GT frames and the set's LR
frames of one clip, in order) for the SR sets and `Triplet` (two input frames and the ground truth
between them) for the VFI sets. Which frames are scored and how is `inference.protocols`' job.

Layouts (ROOT is what the user passes; the source of each layout is named beside it):
- vid4:  ROOT/GT/<clip>/*.png and ROOT/BIx4/<clip>/*.png (BasicSR datasets/Vid4; every clip folder)
- reds4: ROOT/train_sharp/{000,011,015,020}/*.png and ROOT/train_sharp_bicubic/X4/<clip>/*.png
         (REDS as downloaded; BasicSR meta_info_REDS4_test_GT.txt names the four clips)
- vimeo90k-t: ROOT/sequences/<seq>/im1..im7.png, the list ROOT/sep_testlist.txt (or BasicSR's
         meta_info_Vimeo90K_test_GT.txt), LR in ROOT/BIx4/<seq>/ or vimeo_septuplet_matlabLRx4/sequences
         beside or inside ROOT (BasicSR options/test/EDVR/test_EDVR_L_x4_SR_Vimeo90K.yml)
- vimeo90k (triplets): ROOT/tri_testlist.txt and ROOT/sequences/<seq>/im1..im3.png (IFRNet
         benchmarks/Vimeo90K.py) or ROOT/target/<seq>/ (RIFE's vimeo_interp_test)
- ucf101: ROOT/<triplet>/frame_00.png, frame_01_gt.png, frame_02.png, every folder (ucf101_interp_ours)
- snu-film-<level>: ROOT/test-<level>.txt, lines "frame0 gt frame1" relative to ROOT (the lists as
         CAIN ships them start with data/SNU-FILM/, which is tried removed too)
- middlebury-other: ROOT/other-data/<name>/frame10.png, frame11.png, ROOT/other-gt-interp/<name>/frame10i11.png
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from vsrvfi.core.errors import DataError

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".bmp")
REDS4_CLIPS = ("000", "011", "015", "020")
MIDDLEBURY_OTHER = ("Beanbags", "Dimetrodon", "DogDance", "Grove2", "Grove3", "Hydrangea", "MiniCooper",
                    "RubberWhale", "Urban2", "Urban3", "Venus", "Walking")
SNU_LEVELS = ("easy", "medium", "hard", "extreme")


@dataclass
class SRClip:
    """One clip of an SR set: GT frames and LR frames (None: to be made from GT) in display order."""

    name: str
    gt: list[Path]
    lr: list[Path] | None
    centre_only: bool = False  # Vimeo-90K-T: only the middle frame (im4) is scored


@dataclass
class Triplet:
    """Two input frames and the ground-truth frame between them; `name` is the set's own id."""

    name: str
    frame0: Path
    frame1: Path
    gt: Path
    rel: str = ""  # where the output goes under --save: the GT's path in the set (default <name>/<gt name>)

    def save_as(self) -> str:
        return self.rel or f"{self.name}/{self.gt.name}"


def _need_dir(path: Path, what: str) -> Path:
    if not path.is_dir():
        raise DataError(path, f"missing folder ({what})")
    return path


def _need_file(path: Path, what: str) -> Path:
    if not path.is_file():
        raise DataError(path, f"missing {what}")
    return path


def _frames(folder: Path) -> list[Path]:
    frames = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTS)
    if not frames:
        raise DataError(folder, "no image frames in this folder")
    return frames


def _paired_clip(name: str, gt_dir: Path, lr_dir: Path | None) -> SRClip:
    gt = _frames(gt_dir)
    lr = None
    if lr_dir is not None:
        lr = _frames(_need_dir(lr_dir, "the set's LR frames of this clip"))
        if len(lr) != len(gt):
            raise DataError(lr_dir, f"{len(lr)} LR frames but {len(gt)} GT frames in {gt_dir}")
    return SRClip(name, gt, lr)


def _read_list(path: Path) -> list[str]:
    """First token of every non-empty line (Vimeo lists, BasicSR meta_info files)."""
    return [line.split()[0] for line in path.read_text().splitlines() if line.strip()]


def vid4(root: Path, make_lr: bool = False) -> list[SRClip]:
    gt_root = _need_dir(root / "GT", "Vid4 ground truth, ROOT/GT/<clip>/")
    lr_root = None if make_lr else _need_dir(root / "BIx4", "Vid4 LR frames, ROOT/BIx4/<clip>/; or --make-lr")
    clips = sorted(p for p in gt_root.iterdir() if p.is_dir())
    if not clips:
        raise DataError(gt_root, "no clip folders")
    return [_paired_clip(c.name, c, None if lr_root is None else lr_root / c.name) for c in clips]


def reds4(root: Path, make_lr: bool = False) -> list[SRClip]:
    gt_root = _need_dir(root / "train_sharp", "REDS ground truth, ROOT/train_sharp/<clip>/")
    lr_root = None
    if not make_lr:
        base = _need_dir(root / "train_sharp_bicubic", "REDS LR frames, ROOT/train_sharp_bicubic/X4/<clip>/; or --make-lr")
        lr_root = base / "X4" if (base / "X4").is_dir() else base
    return [_paired_clip(c, _need_dir(gt_root / c, f"REDS4 clip {c}"), None if lr_root is None else lr_root / c)
            for c in REDS4_CLIPS]


def _vimeo_lr_root(root: Path) -> Path | None:
    for cand in (root / "BIx4", root / "vimeo_septuplet_matlabLRx4" / "sequences",
                 root.parent / "vimeo_septuplet_matlabLRx4" / "sequences"):
        if cand.is_dir():
            return cand
    return None


def vimeo_septuplet_test(root: Path, make_lr: bool = False, frames: int = 7) -> list[SRClip]:
    seq_root = _need_dir(root / "sequences", "Vimeo-90K septuplets, ROOT/sequences/<seq>/im1..im7.png")
    lists = [root / "sep_testlist.txt", root / "meta_info_Vimeo90K_test_GT.txt"]
    listed = next((p for p in lists if p.is_file()), None)
    if listed is None:
        raise DataError(lists[0], "missing test list (sep_testlist.txt of Vimeo-90K, or BasicSR's "
                                  "meta_info_Vimeo90K_test_GT.txt in ROOT)")
    lr_root = None if make_lr else _vimeo_lr_root(root)
    if lr_root is None and not make_lr:
        raise DataError(root / "BIx4", "missing folder (Vimeo-90K-T LR frames: ROOT/BIx4/<seq>/ or "
                                       "vimeo_septuplet_matlabLRx4/sequences beside ROOT; or --make-lr)")
    out = []
    for seq in _read_list(listed):
        gt = [seq_root / seq / f"im{i}.png" for i in range(1, frames + 1)]
        _need_file(gt[0], "frame im1.png of a listed sequence")
        lr = None if lr_root is None else [lr_root / seq / f"im{i}.png" for i in range(1, frames + 1)]
        if lr is not None:
            _need_file(lr[0], "LR frame im1.png of a listed sequence")
        out.append(SRClip(seq, gt, lr, centre_only=True))
    if not out:
        raise DataError(listed, "the test list is empty")
    return out


def vimeo_triplet_test(root: Path) -> list[Triplet]:
    listed = _need_file(root / "tri_testlist.txt", "test list tri_testlist.txt (Vimeo-90K triplets)")
    seq_root = root / "sequences" if (root / "sequences").is_dir() else root / "target"
    _need_dir(seq_root, "Vimeo-90K triplets, ROOT/sequences/<seq>/im1..im3.png (or RIFE's ROOT/target/)")
    out = []
    for seq in _read_list(listed):
        d = seq_root / seq
        out.append(Triplet(seq, _need_file(d / "im1.png", "frame im1.png"), _need_file(d / "im3.png", "frame im3.png"),
                           _need_file(d / "im2.png", "frame im2.png")))
    if not out:
        raise DataError(listed, "the test list is empty")
    return out


def ucf101(root: Path) -> list[Triplet]:
    _need_dir(root, "UCF101 triplets, ROOT/<id>/frame_00.png, frame_01_gt.png, frame_02.png")
    out = []
    for d in sorted(p for p in root.iterdir() if p.is_dir()):
        out.append(Triplet(d.name, _need_file(d / "frame_00.png", "frame frame_00.png"),
                           _need_file(d / "frame_02.png", "frame frame_02.png"),
                           _need_file(d / "frame_01_gt.png", "ground truth frame_01_gt.png")))
    if not out:
        raise DataError(root, "no triplet folders (expected ROOT/<id>/frame_00.png ...; ucf101_interp_ours)")
    return out


def _snu_path(root: Path, rel: str) -> Path:
    for cand in (root / rel, root / rel.removeprefix("data/SNU-FILM/"), root / rel.removeprefix("data/")):
        if cand.is_file():
            return cand
    raise DataError(root / rel, "missing frame named in the SNU-FILM list")


def snu_film(root: Path, level: str) -> list[Triplet]:
    listed = _need_file(root / f"test-{level}.txt", f"SNU-FILM list test-{level}.txt")
    out = []
    for n, line in enumerate(listed.read_text().splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 3:
            raise DataError(listed, f"line {n}: expected 3 paths (frame0 gt frame1), got {len(parts)}")
        f0, gt, f1 = (_snu_path(root, p) for p in parts)
        out.append(Triplet(parts[1], f0, f1, gt, gt.relative_to(root).as_posix()))
    if not out:
        raise DataError(listed, "the list is empty")
    return out


def middlebury_other(root: Path) -> list[Triplet]:
    data = _need_dir(root / "other-data", "Middlebury 'other' input frames, ROOT/other-data/<name>/")
    gt = _need_dir(root / "other-gt-interp", "Middlebury 'other' ground truth, ROOT/other-gt-interp/<name>/")
    return [Triplet(n, _need_file(data / n / "frame10.png", "frame frame10.png"),
                    _need_file(data / n / "frame11.png", "frame frame11.png"),
                    _need_file(gt / n / "frame10i11.png", "ground truth frame10i11.png")) for n in MIDDLEBURY_OTHER]


def names() -> Sequence[str]:
    return ("vid4", "reds4", "vimeo90k-t", "vimeo90k", "ucf101", *(f"snu-film-{lv}" for lv in SNU_LEVELS),
            "middlebury-other")
