"""Tiny standard test sets in their official layouts, made from real image content.

Each set is camera moves over a real photograph or a fractal landscape (tests/framefactory.py), saved
under the names and folders the real set uses (see vsrvfi/inference/testsets.py); SR sets get their
LR frames as the real ones were made, with MATLAB's bicubic (models/matlab_resize.py) rounded to 8 bits.

    python -m tests.benchfactory /tmp/sets          # every set, small, under /tmp/sets/<name>
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image

from tests.framefactory import base_image, camera_move, make_reds, make_vimeo
from vsrvfi.models.matlab_resize import downscale_uint8

MIDDLEBURY = ("Beanbags", "Dimetrodon", "DogDance", "Grove2", "Grove3", "Hydrangea", "MiniCooper",
              "RubberWhale", "Urban2", "Urban3", "Venus", "Walking")


def _frames(index: int, n: int, size: tuple[int, int]) -> list[np.ndarray]:
    w, h = size
    return [np.array(im) for im in camera_move(base_image(index, w, h, n), n, w, h, index)]


def _save(arr: np.ndarray, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)


def _lr_tree(gt_root: Path, lr_root: Path, scale: int = 4) -> None:
    for p in sorted(gt_root.rglob("*.png")):
        _save(downscale_uint8(np.asarray(Image.open(p).convert("RGB")), scale), lr_root / p.relative_to(gt_root))


def make_vid4(root: Path, clips: tuple[str, ...] = ("calendar", "city"), frames: int = 4,
              size: tuple[int, int] = (64, 48)) -> Path:
    """ROOT/GT/<clip>/00000000.png .. and ROOT/BIx4/<clip>/ (BasicSR's datasets/Vid4)."""
    for i, clip in enumerate(clips):
        for k, f in enumerate(_frames(i, frames, size)):
            _save(f, root / "GT" / clip / f"{k:08d}.png")
    _lr_tree(root / "GT", root / "BIx4")
    return root


def make_reds4(root: Path, frames: int = 3, size: tuple[int, int] = (64, 48)) -> Path:
    """ROOT/train_sharp/{000,011,015,020}/ and ROOT/train_sharp_bicubic/X4/<clip>/ (REDS as downloaded)."""
    make_reds(root, ("000", "011", "015", "020"), frames, size)
    _lr_tree(root / "train_sharp", root / "train_sharp_bicubic" / "X4")
    return root


def make_vimeo_sr(root: Path, sequences: int = 2, size: tuple[int, int] = (64, 48)) -> Path:
    """ROOT/sequences/<seq>/im1..im7.png, sep_testlist.txt, LR in ROOT/BIx4/<seq>/ (Vimeo-90K-T)."""
    make_vimeo(root, sequences, 7, size, test=tuple(range(sequences)))
    _lr_tree(root / "sequences", root / "BIx4")
    return root


def make_vimeo_triplets(root: Path, sequences: int = 2, size: tuple[int, int] = (64, 48)) -> Path:
    """ROOT/sequences/<seq>/im1..im3.png and tri_testlist.txt (Vimeo-90K triplet test)."""
    return make_vimeo(root, sequences, 3, size, test=tuple(range(sequences)))


def make_ucf101(root: Path, triplets: int = 2, size: tuple[int, int] = (64, 64)) -> Path:
    """ROOT/<id>/frame_00.png, frame_01_gt.png, frame_02.png (ucf101_interp_ours)."""
    for i in range(triplets):
        f = _frames(i + 20, 3, size)
        for k, name in enumerate(("frame_00.png", "frame_01_gt.png", "frame_02.png")):
            _save(f[k], root / f"{i + 1}" / name)
    return root


def make_snu_film(root: Path, triplets: int = 2, size: tuple[int, int] = (64, 48), step: int = 2) -> Path:
    """ROOT/test/GOPRO_test/<clip>/000001.png .. and ROOT/test-{easy,medium,hard,extreme}.txt with
    lines 'data/SNU-FILM/test/... frame0 gt frame1' as CAIN ships them (frames `step` apart)."""
    lines = []
    for i in range(triplets):
        clip = root / "test" / "GOPRO_test" / f"GOPR{i:04d}"
        f = _frames(i + 30, 2 * step + 1, size)
        for k, arr in enumerate(f):
            _save(arr, clip / f"{k + 1:06d}.png")
        rel = [f"data/SNU-FILM/test/GOPRO_test/GOPR{i:04d}/{k + 1:06d}.png" for k in (0, step, 2 * step)]
        lines.append(" ".join(rel))
    for level in ("easy", "medium", "hard", "extreme"):
        (root / f"test-{level}.txt").write_text("\n".join(lines) + "\n")
    return root


def make_middlebury(root: Path, size: tuple[int, int] = (64, 48)) -> Path:
    """ROOT/other-data/<name>/frame10.png, frame11.png and ROOT/other-gt-interp/<name>/frame10i11.png."""
    for i, name in enumerate(MIDDLEBURY):
        f = _frames(i + 40, 3, size)
        _save(f[0], root / "other-data" / name / "frame10.png")
        _save(f[2], root / "other-data" / name / "frame11.png")
        _save(f[1], root / "other-gt-interp" / name / "frame10i11.png")
    return root


MAKERS = {"vid4": make_vid4, "reds4": make_reds4, "vimeo90k-t": make_vimeo_sr, "vimeo90k": make_vimeo_triplets,
          "ucf101": make_ucf101, "snu-film": make_snu_film, "middlebury-other": make_middlebury}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("root", type=Path)
    ap.add_argument("--sets", default=",".join(MAKERS))
    a = ap.parse_args(argv)
    for name in a.sets.split(","):
        print(MAKERS[name](a.root / name))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
