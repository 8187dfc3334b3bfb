"""Command-line plumbing shared by the tools: one-line errors instead of tracebacks."""
from __future__ import annotations

import sys
from typing import Callable, Sequence

from tools.media import MediaError


class UsageError(Exception):
    """A problem with the arguments or the state of DATA_DIR, reported as one line."""


def run_cli(main: Callable[[Sequence[str] | None], int | None], argv: Sequence[str] | None = None) -> int:
    """Run `main(argv)`; print known errors as one line `error: ...` on stderr and return 2."""
    try:
        return int(main(argv) or 0)
    except (MediaError, UsageError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: complete outputs are kept, a rerun resumes", file=sys.stderr)
        return 130


def parse_list(text: str) -> list[str]:
    """'720p, 540p' -> ['720p', '540p']."""
    return [t.strip() for t in text.split(",") if t.strip()]
