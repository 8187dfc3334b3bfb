"""Where a benchmark's results go: a JSON file (written atomically) and a PNG plot beside it."""
from __future__ import annotations

import json
import platform
from pathlib import Path
from typing import Callable

import torch

from vsrvfi.core.atomic import atomic_path


def machine() -> dict:
    """What the numbers were measured on."""
    return {"torch": torch.__version__, "threads": torch.get_num_threads(),
            "machine": platform.processor() or platform.machine(),
            "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}


def save_json(stem: str | Path, meta: dict, rows: list[dict]) -> None:
    """`stem`.json ({"meta", "rows"}), complete or absent: also the rows so far of a run that may be cut short."""
    out = Path(stem)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out.with_suffix(".json")) as tmp:
        tmp.write_text(json.dumps({"meta": {**machine(), **meta}, "rows": rows}, indent=1))


def save_results(stem: str | Path, meta: dict, rows: list[dict], plot: Callable[[list[dict], Path], None]) -> None:
    """`stem`.json ({"meta", "rows"}) and `stem`.png (drawn by `plot(rows, path)`), each complete or absent."""
    out = Path(stem)
    save_json(out, meta, rows)
    with atomic_path(out.with_suffix(".png")) as tmp:
        plot(rows, tmp)
    print(f"wrote {out.with_suffix('.json')} and {out.with_suffix('.png')}")
