"""The command-line convention of every entry point: one-line errors (exit 2), and SIGTERM handled
like Ctrl-C (cleanup runs, a true message, exit 128 + signal)."""
from __future__ import annotations

import contextlib
import signal
import sys
from typing import Callable, Iterator, Sequence

from vsrvfi.core.errors import PathError, UsageError

__all__ = ["UsageError", "Interrupted", "run_cli", "entry_point", "signals_as_interrupts", "parse_list"]


class Interrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM arrived; raised in the main thread so `finally` blocks and temp-file cleanup run."""

    def __init__(self, signum: int):
        self.signum = signum
        super().__init__(signal.Signals(signum).name)


@contextlib.contextmanager
def signals_as_interrupts(signums: Sequence[int] = (signal.SIGINT, signal.SIGTERM)) -> Iterator[None]:
    """Turn the given signals into `Interrupted` for the duration of the block (main thread only)."""
    def handler(signum, frame):
        raise Interrupted(signum)

    try:
        previous = {s: signal.signal(s, handler) for s in signums}
    except ValueError:  # not the main thread: leave signal handling alone
        yield
        return
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def run_cli(main: Callable[[Sequence[str] | None], int | None], argv: Sequence[str] | None = None,
            interrupted: str = "complete outputs are kept, a rerun resumes") -> int:
    """Run `main(argv)`; known errors become one line `error: ...` on stderr and exit status 2.

    SIGINT and SIGTERM unwind the stack (temporary outputs are removed on the way) and print
    `interrupted by SIGTERM: <interrupted>`; the status is 128 + the signal number. `interrupted`
    must say what is true for that tool (e.g. whether a rerun resumes).
    """
    try:
        with signals_as_interrupts():
            return int(main(argv) or 0)
    except (PathError, UsageError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        signum = exc.signum if isinstance(exc, Interrupted) else signal.SIGINT
        print(f"interrupted by {signal.Signals(signum).name}: {interrupted}", file=sys.stderr)
        return 128 + int(signum)


def entry_point(main: Callable[[Sequence[str] | None], int | None],
                interrupted: str = "complete outputs are kept, a rerun resumes") -> Callable[[], None]:
    """A console-script function for `main` that follows the convention of `run_cli`."""
    def cli() -> None:
        raise SystemExit(run_cli(main, interrupted=interrupted))

    cli.__doc__ = main.__doc__
    return cli


def parse_list(text: str) -> list[str]:
    """'720p, 540p' -> ['720p', '540p']."""
    return [t.strip() for t in text.split(",") if t.strip()]
