"""Command-line options the inference tools share: which checkpoint, where to run, how to encode."""
from __future__ import annotations

import argparse

from torch import nn

from vsrvfi.inference.runtime import PRECISIONS
from vsrvfi.core.errors import UsageError
from vsrvfi.models.checkpoint import CheckpointMeta
from vsrvfi.models.load import load_model


def add_model_args(ap: argparse.ArgumentParser, task: str | None) -> None:
    names = {"vfi": "rife or ifrnet", "sr": "vsrnet or edvr"}.get(task or "", "rife, ifrnet, vsrnet or edvr")
    ap.add_argument("--checkpoint", "-c", required=True,
                    help="a checkpoint of this project (training or vsr-convert) or an official one")
    ap.add_argument("--model", help=f"{names}: needed for official checkpoints, which do not name their model")
    ap.add_argument("--size", help="model size when an official checkpoint leaves it ambiguous")
    ap.add_argument("--device", default="auto", help="auto (CUDA when present) | cpu | cuda | cuda:N")
    ap.add_argument("--precision", default="fp32", choices=PRECISIONS, help="fp16 needs a GPU")


def add_output_args(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--codec", default="auto", choices=("auto", "h264", "hevc", "vp9", "ffv1"),
                    help="auto: H.264, or VP9 for .webm")
    ap.add_argument("--crf", type=int, default=18, help="quality (lower is better; h264/hevc/vp9)")
    ap.add_argument("--preset", default="medium", help="x264/x265 speed preset")
    ap.add_argument("--no-audio", action="store_true", help="do not carry the input's audio over")
    ap.add_argument("--overwrite", action="store_true", help="replace an existing output")


def load_task_model(args: argparse.Namespace, task: str | None) -> tuple[nn.Module, CheckpointMeta]:
    """(model, metadata) of the checkpoint, checked to be a `task` ('sr' or 'vfi'; None: either) model."""
    model, meta = load_model(args.checkpoint, name=args.model, size=args.size)
    if task is not None and meta.task != task:
        want = "an interpolation (rife, ifrnet)" if task == "vfi" else "a super-resolution (vsrnet, edvr)"
        raise UsageError(f"{args.checkpoint}: holds {meta.model}, not {want} model")
    return model, meta
