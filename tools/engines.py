"""The --engine and --ray-address options of the preparation tools (vsr-prepare, vsr-split-scenes,
vsr-transcode): which executor engine runs the scene jobs (tools/preparation/executor.ENGINES)."""
from __future__ import annotations

import argparse
import os
from pathlib import Path

from vsrvfi.tools.preparation.executor import DECODE_MODES, ENGINES, use_engine


def add_engine_arguments(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--engine", choices=sorted(ENGINES), default="local",
                    help="where scene jobs run: 'local' (ffmpeg processes on this machine) or 'ray' (tasks on a Ray "
                         "cluster whose nodes share DATA_DIR and the sources; pip install -e \".[ray]\")")
    ap.add_argument("--ray-address", default="auto",
                    help="with --engine ray: 'auto' (the cluster started on this machine, or $RAY_ADDRESS) or "
                         "HOST:PORT of its head")
    ap.add_argument("--decode", choices=DECODE_MODES, default=DECODE_MODES[0],
                    help="'once': the frames scene detection decodes feed the scene encoders, so a new source is "
                         "decoded once (local engine, CPU encoders; the same clips as 'per-scene', whose scene "
                         "processes each decode their own frames); 'auto' (default): once where the machine runs "
                         "no more scene processes at once than sources are detected at once (small machines)")


def engine_from_args(a: argparse.Namespace, data_dir: str | os.PathLike) -> None:
    """Select the engine the arguments name (joining and checking the Ray cluster for 'ray')."""
    use_engine(a.engine, a.ray_address, Path(data_dir), getattr(a, "decode", DECODE_MODES[0]))
