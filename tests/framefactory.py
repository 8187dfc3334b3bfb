"""Frame-folder data sets laid out like Vimeo-90K and REDS, made from real image content.

Nothing is downloaded: each sequence is a camera move (a pan of 1-3 pixels a frame with a slow
zoom) over a real photograph (the one matplotlib ships) or a procedurally generated, hill-shaded
fractal landscape (tools/demo_video.fractal_terrain: detail at every scale), saved as PNG frames
named as the real sets name them. Used by tests/test_import_frames.py and, from the command line,
to measure how much smaller the imported clips are than the frames:

    python -m tests.framefactory vimeo /tmp/vimeo --sequences 24            # 448x256 septuplets + lists
    python -m tests.framefactory reds /tmp/reds --clips 6 --frames 100 --size 1280x720
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np


def _photo() -> "Image.Image":
    import matplotlib
    from PIL import Image

    return Image.open(Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg").convert("RGB")


def base_image(index: int, width: int, height: int, frames: int) -> "Image.Image":
    """A picture large enough for `camera_move` over `frames` frames: the photo (even indices, scaled up
    as needed) or a fractal landscape."""
    from PIL import Image

    from vsrvfi.tools.demo_video import fractal_terrain

    big_w, big_h = int(width * 1.2 + 7.2 * frames) + 16, int(height * 1.2 + 4.8 * frames) + 16
    if index % 2 == 0:
        photo = _photo()
        scale = max(big_w / photo.width, big_h / photo.height) * (1.0 + 0.1 * (index % 3))
        return photo.resize((round(photo.width * scale), round(photo.height * scale)), Image.LANCZOS)
    return Image.fromarray(fractal_terrain(big_w, big_h, seed=index))


def camera_move(image: "Image.Image", frames: int, width: int, height: int, index: int) -> list["Image.Image"]:
    """`frames` crops of `image` along a pan of 1-3 pixels a frame with a slow zoom in (sub-pixel, lanczos)."""
    from PIL import Image

    rng = np.random.default_rng(index)
    dx, dy = rng.uniform(1, 3) * rng.choice([-1, 1]), rng.uniform(0.5, 2) * rng.choice([-1, 1])
    out = []
    for k in range(frames):
        zoom = 1.0 + 0.004 * k
        w, h = width / zoom * 1.2, height / zoom * 1.2
        cx = image.width / 2 + dx * k * 1.2
        cy = image.height / 2 + dy * k * 1.2
        box = (cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2)
        out.append(image.resize((width, height), Image.LANCZOS, box=box))
    return out


def make_vimeo(root: Path, sequences: int = 6, frames: int = 7, size: tuple[int, int] = (448, 256),
               test: tuple[int, ...] = (1, 4), unlisted: tuple[int, ...] = ()) -> Path:
    """ROOT/sequences/00001/000k/im1.png .. im<frames>.png, and sep_trainlist.txt / sep_testlist.txt (tri_*
    for 3 frames): sequence i (0-based) in the test list when in `test`, in neither when in `unlisted`."""
    w, h = size
    kind = "tri" if frames == 3 else "sep"
    train, testl = [], []
    for i in range(sequences):
        name = f"{i // 4 + 1:05d}/{i % 4 + 1:04d}"
        folder = root / "sequences" / name
        folder.mkdir(parents=True, exist_ok=True)
        for k, im in enumerate(camera_move(base_image(i, w, h, frames), frames, w, h, i)):
            im.save(folder / f"im{k + 1}.png")
        if i in unlisted:
            continue
        (testl if i in test else train).append(name)
    (root / f"{kind}_trainlist.txt").write_text("".join(n + "\n" for n in train))
    (root / f"{kind}_testlist.txt").write_text("".join(n + "\n" for n in testl))
    return root


def make_reds(root: Path, clips: tuple[str, ...] = ("000", "001", "002", "011", "003"), frames: int = 20,
              size: tuple[int, int] = (320, 180), part: str = "train_sharp") -> Path:
    """ROOT/<part>/<clip>/00000000.png .. (8 digits from 0, as REDS names them)."""
    w, h = size
    for i, clip in enumerate(clips):
        folder = root / part / clip
        folder.mkdir(parents=True, exist_ok=True)
        for k, im in enumerate(camera_move(base_image(i + 10, w, h, frames), frames, w, h, i + 10)):
            im.save(folder / f"{k:08d}.png")
    return root


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("layout", choices=["vimeo", "reds"])
    ap.add_argument("root", type=Path)
    ap.add_argument("--sequences", type=int, default=24, help="vimeo: sequences (every 3rd in the test list)")
    ap.add_argument("--clips", type=int, default=6, help="reds: clips (000, 001, ...; 000 is in REDS4)")
    ap.add_argument("--frames", type=int, default=0, help="frames per sequence (vimeo 7, reds 100)")
    ap.add_argument("--size", default="", help="WxH (vimeo 448x256, reds 1280x720)")
    a = ap.parse_args(argv)
    size = tuple(int(v) for v in a.size.split("x")) if a.size else None
    if a.layout == "vimeo":
        make_vimeo(a.root, a.sequences, a.frames or 7, size or (448, 256), test=tuple(range(0, a.sequences, 3)))
    else:
        make_reds(a.root, tuple(f"{i:03d}" for i in range(a.clips)), a.frames or 100, size or (1280, 720))
    print(a.root)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
