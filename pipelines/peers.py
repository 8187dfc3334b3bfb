"""Peer loaders: the PNG loader's plan and DataLoader, with frames decoded from the clips by torchcodec or decord.

They answer "what would a user pick instead of DALI?" on exactly the same work: the same sequences in
the same order (pipelines.sampling), the same crops and augmentation flags drawn per sample as the
PNG loader draws them (pipelines.png_frames.SequenceDataset), the same SR low-resolution input, the
same batch contract (pipelines.batch), through a torch DataLoader with `workers` processes. Only the
frame source differs: each worker opens the sequence's mp4 (H.264, HEVC, VP9, ...) with the peer
library, as its users do in a Dataset, keeps a few decoders open, decodes the sequence's frames by
index and crops and flips them with torch on the CPU.

YUV->RGB conversion (why a peer's pixels differ slightly from DALI's and the PNG frames'):
  * DALI's CPU reader and the PNG frames: BT.601 limited range, bilinear chroma upsampling with
    full chroma interpolation and accurate rounding (core.ffmpeg.DALI_RGB_ARGS);
  * torchcodec (CPU): FFmpeg swscale on the machine's FFmpeg libraries, SWS_BILINEAR, the stream's
    colour space (BT.601 when unspecified), limited range; on CUDA, NVDEC and its own NPP conversion;
  * decord: its wheel's own FFmpeg, a filter graph to rgb24 with swscale's default (bicubic) flags.
The difference is held to the project's colour tolerance (pipelines.colour).

`device="gpu"` (torchcodec only): frames are decoded by NVDEC into CUDA tensors in the main process
(a CUDA context cannot be forked into DataLoader workers) and cropped and flipped there.
"""
from __future__ import annotations

import functools
import importlib
from collections import OrderedDict
from typing import Callable

import torch
from torch.utils.data import DataLoader

from vsrvfi.core.errors import MediaError, UsageError
from vsrvfi.pipelines.options import LoaderOptions
from vsrvfi.pipelines.png_frames import PngLoader, SequenceDataset

PEERS = ("torchcodec", "decord")
EXTRA = "pip install 'dali-vsr-vfi[peers]'"
# Debian 12's FFmpeg 5.1 libraries, which torchcodec loads (it loads FFmpeg 4-9; the `ffmpeg` package has them too)
FFMPEG_LIBS_APT = "apt-get install libavcodec59 libavformat59 libavutil57 libswscale6 libswresample4 " \
                  "libavfilter8 libavdevice59"
OPEN_DECODERS = 8  # decoders a worker keeps open (one per clip, least recently used closed first)


class PeerUnavailable(UsageError):
    """A peer library (or the system libraries it needs) is missing: one line saying what to install."""


def check_peer(name: str) -> str:
    """Raise PeerUnavailable (one line naming what to install) unless peer `name` can decode here;
    returns the library's version (torchcodec: with the FFmpeg major version it loaded)."""
    if name not in PEERS:
        raise UsageError(f"unknown peer loader {name!r}: use one of {', '.join(PEERS)}")
    try:
        module = importlib.import_module(name)
        if name == "torchcodec":
            ops = importlib.import_module("torchcodec._core.ops")  # loads FFmpeg's shared libraries, or notes why not
            if not getattr(ops, "_FFMPEG_AVAILABLE", True):
                raise PeerUnavailable(f"torchcodec: installed, but no FFmpeg shared libraries (4-9) could be loaded; "
                                      f"{FFMPEG_LIBS_APT} (Debian 12), or install ffmpeg")
            return f"{module.__version__}, FFmpeg {getattr(ops, 'ffmpeg_major_version', '?')}"
        return str(module.__version__)
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.split(".")[0] == name:
            raise PeerUnavailable(f"{name}: not installed; {EXTRA}") from None
        raise PeerUnavailable(f"{name}: cannot be imported ({exc}); {EXTRA}") from None
    except PeerUnavailable:
        raise
    except Exception as exc:  # a broken install: one line, not a traceback
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise PeerUnavailable(f"{name}: cannot be loaded ({first[:160]}); {EXTRA}") from None


def _open_torchcodec(path: str, device: str) -> Callable[[list[int]], torch.Tensor]:
    from torchcodec.decoders import VideoDecoder

    dec = VideoDecoder(path, seek_mode="exact", num_ffmpeg_threads=1, device=device, dimension_order="NCHW")
    return lambda indices: dec.get_frames_at(indices).data


def _open_decord(path: str, device: str) -> Callable[[list[int]], torch.Tensor]:
    import decord

    vr = decord.VideoReader(path, ctx=decord.cpu(0), num_threads=1)
    return lambda indices: torch.from_numpy(vr.get_batch(indices).asnumpy()).permute(0, 3, 1, 2)


OPENERS = {"torchcodec": _open_torchcodec, "decord": _open_decord}


class VideoSequenceDataset(SequenceDataset):
    """SequenceDataset whose frames come from the clip's video file, decoded by a peer library."""

    def __init__(self, *args, peer: str, **kw):
        super().__init__(*args, **kw)
        self.peer = peer
        self._decoders: OrderedDict[str, Callable] = OrderedDict()  # opened in each worker, never pickled
        self._device = "cuda" if self.opts.device == "gpu" else "cpu"

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_decoders": OrderedDict()}

    def _decoder(self, path: str) -> Callable[[list[int]], torch.Tensor]:
        dec = self._decoders.pop(path, None) or OPENERS[self.peer](path, self._device)
        self._decoders[path] = dec
        while len(self._decoders) > OPEN_DECODERS:
            self._decoders.popitem(last=False)
        return dec

    def read(self, clip, indices, box, lr=False):
        path = clip.lr_path if lr else clip.path
        indices = [clip.first + i for i in indices]  # frames of the file (a packed sequence from its first frame)
        unique = sorted(set(indices))  # decoded in frame order, once each
        try:
            frames = self._decoder(str(path))(unique)
        except Exception as exc:  # the library's own error types: one line naming the clip, as the other loaders
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise MediaError(path, f"{self.peer} cannot decode frames {unique[0]}-{unique[-1]}: {first[:160]}") from None
        if box is not None:
            y, x, h, w = box
            frames = frames[..., y:y + h, x:x + w]
        pos = {f: i for i, f in enumerate(unique)}
        return frames[[pos[i] for i in indices]].contiguous()


class PeerLoader(PngLoader):
    """Contract batches like PngLoader's, the frames decoded from the mp4 clips by `peer`."""

    clip_kind = "dali"  # the clips the DALI loader reads (DATA_DIR/<res>/scenes/<split>/*.mp4)

    def __init__(self, opts: LoaderOptions, peer: str):
        self.version = check_peer(peer)  # before discovering clips: a missing library is the first thing to say
        if opts.device == "gpu" and peer != "torchcodec":
            raise UsageError(f"{peer} decodes on the CPU only here: use device=cpu")
        super().__init__(opts)
        self.peer = peer
        self.dataset = functools.partial(VideoSequenceDataset, peer=peer)

    def dataloader(self) -> DataLoader:
        if self.opts.device != "gpu":
            return super().dataloader()
        o = self.opts  # NVDEC in the main process: CUDA cannot be used in forked workers
        ds = self.dataset(o, self.clips, self.sequences, self.plan(), self.epoch, self.shard_id)
        return DataLoader(ds, batch_sampler=self.batches(), num_workers=0)
