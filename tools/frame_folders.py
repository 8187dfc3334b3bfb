"""Frame-folder data sets as FrameFolders: the layouts (Vimeo-90K, REDS, any <clip>/<numbered
frames>), each folder's numbering, the one frame size, the split each layout prescribes, and the
manifest record of an import. Reads the folders, writes nothing (tools/import_frames.py imports them).

Layouts (`--frames-layout`, `auto` detects them in this order):

- vimeo: ROOT/sequences/00001/0001/im1.png .. im7.png (septuplets; triplets im1..im3), one clip
  per sequence (`vimeo-00001-0001`, triplets `vimeo-tri-00001-0001`). The split follows
  ROOT/sep_trainlist.txt and sep_testlist.txt (tri_*list.txt for triplets): test list -> val,
  train list -> train; with both lists a sequence in neither is skipped and counted as dropped,
  with one list the other is everything else. Without lists: the seeded split below.
- reds: ROOT/train_sharp/000/00000000.png .. (and/or ROOT/val_sharp/...), or ROOT is train_sharp
  or val_sharp itself; one clip per numbered folder (`reds-000`, val_sharp's `reds-val-000`).
  `--reds-val reds4` (default, EDVR/BasicSR's convention): val = REDS4 (train_sharp 000, 011,
  015, 020), everything else trains, val_sharp included (EDVR's 266 training clips).
  `--reds-val val_sharp`: REDS's official partition, train_sharp trains and val_sharp validates.
- folders: ROOT/<clip>/<numbered frames>.png|.jpg (or ROOT itself holds one clip's frames); the
  split is by whole clips, seeded (`--val-fraction`, `--seed`), as for video scenes: at least one
  val clip when there are two.
"""
from __future__ import annotations

import hashlib
import json
import os
import random
import re
import struct
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from vsrvfi.core.errors import DataError
from vsrvfi.core.manifest import FRAMES, FrameNumbering, Scene, SourceRecord
from vsrvfi.tools.preparation.scenes import MIN_SIDE

LAYOUTS = ("auto", "vimeo", "reds", "folders")
REDS_VAL = ("reds4", "val_sharp")
REDS4 = ("000", "011", "015", "020")
REDS_PARTS = ("train_sharp", "val_sharp")
IMAGE_EXTS = (".png", ".jpg", ".jpeg")
_NUMBERED = re.compile(r"^(.*?)(\d+)(\.[A-Za-z]+)$")
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@dataclass
class FramesOptions:
    layout: str = "auto"
    fps: str = "24"                    # as given ("24", "30000/1001"); frame folders have no rate
    val_fraction: float = 0.1          # folders, and Vimeo-90K without its lists
    seed: int = 0
    reds_val: str = "reds4"


@dataclass
class FrameFolder:
    """One clip's frames: `folder/pattern % n` for n in [start, start + count)."""

    clip: str
    folder: Path
    pattern: str                       # printf name, e.g. "im%d.png", "%08d.png"
    start: int
    count: int
    split: str | None = None
    dropped: str | None = None
    bytes: int = 0

    def path(self, n: int) -> Path:
        return self.folder / (self.pattern % n)


# ------------------------------------------------------------------------------------- one folder

def scan_folder(folder: Path, clip: str) -> FrameFolder | None:
    """The numbered frames of `folder` (None when it holds no PNG/JPEG), checked for one name pattern,
    no gap and at least two frames; DataError naming the folder or the frame otherwise."""
    names, sizes = [], {}
    with os.scandir(folder) as it:
        for e in it:
            if e.name.startswith(".") or os.path.splitext(e.name)[1].lower() not in IMAGE_EXTS or not e.is_file():
                continue
            names.append(e.name)
            sizes[e.name] = e.stat().st_size
    if not names:
        return None
    parsed = {}
    for name in names:
        m = _NUMBERED.match(name)
        if m is None:
            raise DataError(folder / name, "not a numbered frame (expected names such as im1.png or 00000000.png)")
        parsed[name] = m.groups()
    kinds = sorted({(pre, ext) for pre, _, ext in parsed.values()})
    if len(kinds) > 1:
        examples = ", ".join(next(n for n, g in parsed.items() if (g[0], g[2]) == k) for k in kinds[:2])
        raise DataError(folder, f"frames named in more than one way ({examples}); one clip's frames share a pattern")
    prefix, ext = (t.replace("%", "%%") for t in kinds[0])  # printf patterns (ffmpeg's and ours)
    digits = [d for _, d, _ in parsed.values()]
    widths = {len(d) for d in digits}
    if len(widths) == 1 and (len(digits) == 1 or any(d.startswith("0") for d in digits) or widths == {1}):
        width = widths.pop()
        pattern = f"{prefix}%0{width}d{ext}" if width > 1 else f"{prefix}%d{ext}"
    elif all(d == str(int(d)) for d in digits):
        pattern = f"{prefix}%d{ext}"
    else:
        raise DataError(folder, f"frame numbers padded to different widths ({', '.join(sorted(names)[:2])} ...)")
    numbers = sorted(int(d) for d in digits)
    if len(set(numbers)) != len(numbers):
        raise DataError(folder, "a frame number appears twice")
    start, count = numbers[0], numbers[-1] - numbers[0] + 1
    if len(numbers) != count:
        present = set(numbers)
        gap = next(n for n in range(start, start + count) if n not in present)
        raise DataError(folder, f"frame {pattern % gap} is missing ({count - len(numbers)} missing between "
                                f"{pattern % start} and {pattern % numbers[-1]})")
    if count < 2:
        raise DataError(folder, f"too short (1 frame, {names[0]}); a clip needs at least 2")
    return FrameFolder(clip, folder, pattern, start, count, bytes=sum(sizes.values()))


def image_size(path: Path) -> tuple[int, int]:
    """(width, height) from a PNG's IHDR (read directly) or any other image's header (PIL, lazily)."""
    try:
        with open(path, "rb") as f:
            head = f.read(24)
    except OSError as exc:
        raise DataError(path, f"cannot read ({exc.strerror or exc})") from None
    if head[:8] == _PNG_MAGIC and head[12:16] == b"IHDR":
        return struct.unpack(">II", head[16:24])
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            if im.format not in ("PNG", "JPEG"):
                raise DataError(path, f"a {im.format} image, not PNG or JPEG")
            return im.size
    except (UnidentifiedImageError, OSError, SyntaxError):
        raise DataError(path, "not a readable PNG or JPEG image" + (" (empty file)" if not head else "")) from None


def check_sizes(folders: list[FrameFolder], show_progress: bool = True) -> tuple[int, int]:
    """The one size of every frame of the kept clips; DataError naming the first frame that differs."""
    kept = [f for f in folders if not f.dropped]
    ref_path = kept[0].path(kept[0].start)
    ref = image_size(ref_path)
    with tqdm(total=sum(f.count for f in kept), unit="frame", desc="check frames", disable=None if show_progress else True,
              leave=False) as bar:
        for f in kept:
            for n in range(f.start, f.start + f.count):
                size = image_size(f.path(n))
                if size != ref:
                    raise DataError(f.path(n), f"{size[0]}x{size[1]}, but {ref_path} is {ref[0]}x{ref[1]}; "
                                               "every frame of an import must have one size")
            bar.update(f.count)
    w, h = ref
    if min(w, h) < MIN_SIDE:
        raise DataError(ref_path, f"too small ({w}x{h}); frames need at least {MIN_SIDE} pixels a side")
    if w % 2 or h % 2:
        raise DataError(ref_path, f"odd size {w}x{h}; yuv420p clips need even sizes: crop the frames to "
                                  f"{w - w % 2}x{h - h % 2} first (e.g. with ffmpeg's crop filter)")
    return w, h


# ---------------------------------------------------------------------------------------- layouts

def _subdirs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def detect_layout(root: Path) -> str:
    if (root / "sequences").is_dir():
        return "vimeo"
    if root.name in REDS_PARTS or any((root / p).is_dir() for p in REDS_PARTS):
        return "reds"
    return "folders"


def seeded_split(folders: list[FrameFolder], val_fraction: float, seed: int) -> None:
    """Train/val by whole clips, as tools/preparation/scenes.plan_scenes does for scenes."""
    kept = [f for f in folders if not f.dropped]
    n_val = min(len(kept) - 1, max(1, round(val_fraction * len(kept)))) if len(kept) >= 2 else 0
    val = set(random.Random(seed).sample(range(len(kept)), n_val))
    for i, f in enumerate(kept):
        f.split = "val" if i in val else "train"


def _read_list(path: Path) -> list[str]:
    return [ln.strip().strip("/") for ln in path.read_text().splitlines() if ln.strip()]


def list_vimeo(root: Path, opts: FramesOptions) -> tuple[str, list[FrameFolder]]:
    seqs = root / "sequences"
    if not seqs.is_dir():
        raise DataError(root, "no sequences/ folder (Vimeo-90K: ROOT/sequences/00001/0001/im1.png ...)")
    names = [f"{a.name}/{b.name}" for a in _subdirs(seqs) for b in _subdirs(a)]
    if not names:
        raise DataError(seqs, "no sequence folders (expected sequences/00001/0001/im1.png ...)")
    lists = {kind: {part: root / f"{kind}_{part}list.txt" for part in ("train", "test")} for kind in ("sep", "tri")}
    kind = next((k for k in ("sep", "tri") if any(p.is_file() for p in lists[k].values())), None)
    if kind is None:  # no lists: septuplets or triplets by the first sequence's frame count
        first = scan_folder(seqs / names[0], "")
        kind = "tri" if first is not None and first.count == 3 else "sep"
    listed = {part: _read_list(p) for part, p in lists[kind].items() if p.is_file()}
    for part, entries in listed.items():
        on_disk = set(names)
        for e in entries:
            if e not in on_disk:
                raise DataError(seqs / e, f"listed in {lists[kind][part].name} but missing")
    prefix = "vimeo-tri" if kind == "tri" else "vimeo"
    split_of: dict[str, str] = {}
    if listed:
        test, train = set(listed.get("test", ())), set(listed.get("train", ()))
        for n in names:
            if n in test:
                split_of[n] = "val"
            elif n in train or "train" not in listed:
                split_of[n] = "train"
            elif "test" not in listed:
                split_of[n] = "val"
    folders = []
    for n in names:
        clip = f"{prefix}-{n.replace('/', '-')}"
        if listed and n not in split_of:  # in neither list: skipped, counted as dropped
            folders.append(FrameFolder(clip, seqs / n, "im%d.png", 1, 0, dropped=f"in neither {kind}_*list.txt"))
            continue
        f = scan_folder(seqs / n, clip)
        if f is None:
            raise DataError(seqs / n, "no PNG or JPEG frames")
        f.split = split_of.get(n)
        folders.append(f)
    if not listed:
        seeded_split(folders, opts.val_fraction, opts.seed)
    return ("vimeo90k" if kind == "sep" else "vimeo90k-triplet"), folders, not listed


def list_reds(root: Path, opts: FramesOptions) -> tuple[str, list[FrameFolder]]:
    parts = [(root.name, root)] if root.name in REDS_PARTS else [(p, root / p) for p in REDS_PARTS
                                                                  if (root / p).is_dir()]
    if not parts:
        raise DataError(root, "no train_sharp/ or val_sharp/ folder (REDS: ROOT/train_sharp/000/00000000.png ...)")
    folders = []
    for part, folder in parts:
        for d in _subdirs(folder):
            clip = f"reds-{d.name}" if part == "train_sharp" else f"reds-val-{d.name}"
            f = scan_folder(d, clip)
            if f is None:
                continue
            if opts.reds_val == "reds4":
                f.split = "val" if part == "train_sharp" and d.name in REDS4 else "train"
            else:
                f.split = "val" if part == "val_sharp" else "train"
            folders.append(f)
    if not folders:
        raise DataError(parts[0][1], "no frame folders (expected numbered folders such as 000/00000000.png)")
    if not any(f.split == "val" for f in folders):
        tqdm.write(f"warning: {root}: no val clip ({'none of REDS4 ' + ', '.join(REDS4) if opts.reds_val == 'reds4' else 'no val_sharp/'} is there)")
    return "reds", folders, False


def list_folders(root: Path, opts: FramesOptions) -> tuple[str, list[FrameFolder]]:
    name = root.resolve().name
    folders = [f for d in _subdirs(root) for f in [scan_folder(d, d.name)] if f is not None]
    if not folders:
        own = scan_folder(root, name)  # ROOT itself holds one clip's frames
        if own is None:
            raise DataError(root, "no frame folders found (expected ROOT/<clip>/<numbered frames>.png or .jpg)")
        folders = [own]
    seeded_split(folders, opts.val_fraction, opts.seed)
    return name, folders, True


def list_frames(root: str | os.PathLike, opts: FramesOptions) -> tuple[str, str, list[FrameFolder], bool]:
    """(layout, manifest key, every frame folder with its split, whether the split is the seeded one) of
    `root`; DataError when unusable."""
    root = Path(root)
    if not root.exists():
        raise DataError(root, "no such folder")
    if not root.is_dir():
        raise DataError(root, "not a folder (--from-frames takes a folder of frame folders)")
    kind = detect_layout(root) if opts.layout == "auto" else opts.layout
    lister = {"vimeo": list_vimeo, "reds": list_reds, "folders": list_folders}[kind]
    key, folders, seeded = lister(root, opts)
    return kind, key, folders, seeded


# ------------------------------------------------------------------------------------------ record

def _fingerprint(folders: list[FrameFolder], size: tuple[int, int]) -> str:
    ident = [[f.clip, str(f.folder), f.pattern, f.start, f.count, f.dropped] for f in folders]
    return hashlib.sha1(json.dumps([ident, list(size)]).encode()).hexdigest()[:16]


def frames_record(root: Path, kind: str, folders: list[FrameFolder], size: tuple[int, int], fps: float,
                  options: dict) -> SourceRecord:
    """The manifest record of an import: one scene per frame folder (dropped ones included)."""
    kept = [f for f in folders if not f.dropped]
    scenes = [Scene(clip=f.clip, source=str(f.folder.resolve()), index=i, start_frame=0, end_frame=f.count,
                    start_time=0.0, end_time=round(f.count / fps, 6), fps=fps, num_frames=f.count, split=f.split,
                    dropped=f.dropped) for i, f in enumerate(folders)]
    return SourceRecord(path=str(root.resolve()), fingerprint=_fingerprint(folders, size), normalized=False,
                        options=options, scenes=scenes, kind=FRAMES,
                        info={"width": size[0], "height": size[1], "fps": fps, "num_frames": sum(f.count for f in kept),
                              "clips": len(kept), "layout": kind},
                        frames={f.clip: FrameNumbering(f.pattern, f.start) for f in kept})


