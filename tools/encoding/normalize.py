"""Sources that are VFR, 10-bit, HDR, odd-sized or not yuv420p are first converted to one constant-rate
8-bit SDR yuv420p even-sized H.264 intermediate (near-lossless), so frame numbers mean the same thing
to the detector, the cutter and the loaders."""
from __future__ import annotations

from pathlib import Path

from tqdm import tqdm

from vsrvfi.core.atomic import atomic_path
from vsrvfi.core.ffmpeg import run_ffmpeg
from vsrvfi.core.media import VideoInfo


def needs_normalizing(info: VideoInfo) -> list[str]:
    """Reasons the source must be converted before detection and cutting (empty when none)."""
    reasons = []
    if info.is_vfr:
        reasons.append("variable frame rate")
    if info.bit_depth > 8:
        reasons.append(f"{info.bit_depth}-bit")
    if info.is_hdr:
        reasons.append("HDR")
    if info.width % 2 or info.height % 2:
        reasons.append(f"odd size {info.width}x{info.height}")
    if info.pix_fmt not in ("yuv420p", "yuvj420p"):
        reasons.append(f"pixel format {info.pix_fmt}")
    return reasons


def _video_filters(info: VideoInfo) -> list[str]:
    """ffmpeg filters that make a frame 8-bit SDR yuv420p with even dimensions."""
    filters = []
    if info.is_hdr:
        filters.append("zscale=t=linear:npl=100,format=gbrpf32le,zscale=p=bt709,tonemap=hable:desat=0,"
                       "zscale=t=bt709:m=bt709:r=tv")
    if info.width % 2 or info.height % 2:
        filters.append(f"crop={info.width - info.width % 2}:{info.height - info.height % 2}:0:0")
    filters.append("format=yuv420p")
    return filters


def normalize_source(info: VideoInfo, out: Path, crf: int = 10, preset: str = "veryfast") -> Path:
    """Convert the source to CFR 8-bit yuv420p even-sized H.264 (near-lossless), atomically."""
    if out.exists():
        return out
    fps = info.fps
    with atomic_path(out) as tmp, tqdm(total=info.num_frames, unit="frame", desc="normalise source") as bar:
        run_ffmpeg(["-y", "-i", info.path, "-map", "0:v:0", "-an", "-sn", "-dn",
                    "-vf", ",".join(["fps=" + str(fps)] + _video_filters(info)),
                    "-fps_mode", "cfr", "-c:v", "libx264", "-crf", str(crf), "-preset", preset,
                    "-bf", "0", "-f", "mp4", str(tmp)], out, on_frames=bar.update)
    return out
