"""Upscale a video x4 (or x2) with VSRNet or EDVR over a sliding window of frames.

    python -m vsrvfi.tools.upscale_video IN.mp4 OUT.mp4 -c edvr.pth
    python -m vsrvfi.tools.upscale_video IN.mp4 OUT.mp4 -c EDVR_M_x4_SR_REDS.pth --model edvr --tile 128

Every frame is the centre of a window of the model's T frames; at the ends the window is filled as
the official EDVR evaluation does ('reflection_circle', see --padding). `--tile N` processes N x N
LR tiles with a margin of context, for frames that do not fit in memory. Any frame size works
(the models pad internally and crop back). The audio track is copied; the output appears under
its name only once complete.
"""
from __future__ import annotations

import time
from typing import Sequence

from tqdm import tqdm

from vsrvfi.inference.options import add_model_args, add_output_args, load_task_model
from vsrvfi.inference.runtime import pick_device
from vsrvfi.inference.sr import PADDINGS, Upscaler, upscale_frames
from vsrvfi.inference.video_io import VideoWriter, check_output, open_source, read_frames, warn_if_short
from vsrvfi.core.cli import ArgumentParser, entry_point
from vsrvfi.core.errors import UsageError
from vsrvfi.core.errors import MediaError


def main(argv: Sequence[str] | None = None) -> int:
    ap = ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("input")
    ap.add_argument("output", help=".mp4, .mkv, .mov or .webm")
    add_model_args(ap, "sr")
    ap.add_argument("--tile", type=int, default=0, help="LR tile side in pixels (0 = whole frames)")
    ap.add_argument("--tile-pad", type=int, default=16, help="LR pixels of context around each tile")
    ap.add_argument("--padding", default="reflection_circle", choices=PADDINGS,
                    help="how windows are filled at the ends of the video")
    add_output_args(ap)
    a = ap.parse_args(argv)
    if a.tile < 0 or a.tile_pad < 0:
        raise UsageError("--tile and --tile-pad must be >= 0")

    out = check_output(a.output, a.overwrite, a.input, a.codec)
    device = pick_device(a.device)
    model, meta = load_task_model(a, "sr")
    src = open_source(a.input)
    info = src.info
    if info.num_frames < model.num_frame:
        raise MediaError(info.path, f"too short: {info.num_frames} frame(s), {meta.model} needs a "
                                    f"window of {model.num_frame}")
    up = Upscaler(model, device, a.precision, a.tile, a.tile_pad)
    w, h = info.width * up.scale, info.height * up.scale
    t0 = time.perf_counter()
    with tqdm(total=info.num_frames, unit="frame", desc=f"{meta.model} x{up.scale}") as bar, \
            VideoWriter(out, w, h, info.fps, src, a.codec, a.crf, a.preset, audio=not a.no_audio) as writer:
        for frame in upscale_frames(up, read_frames(src), info.num_frames, a.padding, lambda _: bar.update(1)):
            writer.write(frame)
    secs = time.perf_counter() - t0
    warn_if_short(src, writer.frames, info.num_frames)
    print(f"wrote {out}: {writer.frames} frames {info.width}x{info.height} -> {w}x{h} at {float(info.fps):.3f} fps; "
          f"{writer.frames / secs:.2f} frames/s, audio {'copied' if writer.audio else 'none'}")
    return 0


cli = entry_point(main, interrupted="the partial output was removed; a rerun starts over")

if __name__ == "__main__":
    raise SystemExit(cli())
