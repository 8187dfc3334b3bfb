"""The built-in demo data set: the demo video, prepared like real footage, ready for the trainers.

`./run.sh` with no data directory calls this. The codec follows the machine: H.264 where a CUDA GPU
can decode it with NVDEC, VP9 where only DALI's CPU reader is available. Rerunning reuses what exists.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

from vsrvfi.tools import prepare_data
from vsrvfi.core.cli import ArgumentParser, entry_point
from vsrvfi.tools.demo_video import make_demo_video

DEMO_RESOLUTIONS = "720p,540p"
# The split seed that holds out the photograph (scene 0, real content) for validation; the model trains
# on the landscape pan, the Mandelbrot zoom and the moving test pattern.
DEMO_SPLIT_SEED = 2


def default_codec() -> str:
    """'h264' when a CUDA device is visible (NVDEC), else 'vp9' (DALI's CPU reader)."""
    try:
        import torch

        return "h264" if torch.cuda.is_available() else "vp9"
    except ImportError:
        return "vp9"


def ensure_demo_dataset(root: str | Path = "data/demo", size: str = "3840x2160", codec: str | None = None,
                        frame_resolutions: str = "540p") -> Path:
    """Make (or reuse) the demo video and its prepared data set under `root`; returns the DATA_DIR."""
    root = Path(root)
    w, h = (int(v) for v in size.lower().split("x"))
    video = make_demo_video(root / "source" / "demo4k.mp4", w, h)
    data_dir = root / "data"
    done = data_dir / "summary.json"
    if not done.exists():
        prepare_data.main([str(video), str(data_dir), "--codec", codec or default_codec(),
                           "--resolutions", DEMO_RESOLUTIONS, "--frame-resolutions", frame_resolutions,
                           "--min-scene-len", "1.0s", "--val-fraction", "0.25", "--seed", str(DEMO_SPLIT_SEED),
                           "--preset", "veryfast"])
    return data_dir


def main(argv: Sequence[str] | None = None) -> int:
    ap = ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("root", nargs="?", default="data/demo")
    ap.add_argument("--size", default="3840x2160")
    ap.add_argument("--codec", choices=["h264", "vp9"], default=None, help="default: h264 with a GPU, else vp9")
    a = ap.parse_args(argv)
    print(ensure_demo_dataset(a.root, a.size, a.codec))
    return 0


cli = entry_point(main, interrupted="complete outputs are kept; a rerun resumes")

if __name__ == "__main__":
    raise SystemExit(cli())
