"""The command-line convention of every entry point.

- A known problem (bad arguments, a missing or unusable file, a bad config) is one line
  `error: <message>` on stderr and exit status 2; argparse's own errors follow it too
  (`ArgumentParser`).
- SIGTERM is handled like Ctrl-C (SIGINT): the stack unwinds, so temporary outputs are removed and
  child processes stopped on the way; one line `interrupted by SIGTERM: <what is true for that tool>`
  is printed and the exit status is 128 + the signal number (130 for SIGINT, 143 for SIGTERM).
- Success is exit status 0. Anything else is a bug and keeps its traceback.

A tool defines `main(argv) -> int` and exposes `cli = entry_point(main, interrupted="...")`, which is
both its console script (setup.cfg) and what its `python -m` block runs.
"""
from __future__ import annotations

import argparse
import contextlib
import functools
import signal
import sys
from typing import Callable, Iterator, NoReturn, Sequence

from vsrvfi.core.errors import PathError, UsageError

__all__ = ["UsageError", "Interrupted", "ArgumentParser", "run_cli", "entry_point", "signals_as_interrupts",
           "parse_list"]

Main = Callable[[Sequence[str] | None], "int | None"]


class Interrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM arrived; raised in the main thread so `finally` blocks and temp-file cleanup run.

    `message`, when given, replaces the tool's own `interrupted` text in the line `run_cli` prints
    (the trainer uses it to name the step and checkpoint it stopped at).
    """

    def __init__(self, signum: int, message: str | None = None):
        self.signum = int(signum)
        self.message = message
        super().__init__(signal.Signals(signum).name)


class ArgumentParser(argparse.ArgumentParser):
    """argparse.ArgumentParser whose errors are `UsageError`s: one line `error: ...` and exit 2 under
    `run_cli` (argparse itself prints the whole usage and the program name first)."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (--help shows the usage)")


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


def run_cli(main: Main, argv: Sequence[str] | None = None, interrupted: str = "stopped before it finished") -> int:
    """Run `main(argv)` under the convention above and return the exit status.

    `interrupted` must say what is true for that tool after a signal: what was kept or removed, and
    whether a rerun resumes or starts over.
    """
    try:
        with signals_as_interrupts():
            return int(main(argv) or 0)
    except (PathError, UsageError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        signum = getattr(exc, "signum", signal.SIGINT)
        message = getattr(exc, "message", None) or interrupted
        print(f"interrupted by {signal.Signals(signum).name}: {message}", file=sys.stderr)
        return 128 + int(signum)


def entry_point(main: Main, *, interrupted: str) -> Callable[[Sequence[str] | None], int]:
    """`cli(argv=None) -> int`: `main` under `run_cli` with the tool's own `interrupted` message.

    Use it as the console script (`sys.exit(cli())`), in the module's `__main__` block and in tests.
    """
    @functools.wraps(main, assigned=("__module__", "__doc__"))
    def cli(argv: Sequence[str] | None = None) -> int:
        return run_cli(main, argv, interrupted=interrupted)

    return cli


def parse_list(text: str) -> list[str]:
    """'720p, 540p' -> ['720p', '540p']."""
    return [t.strip() for t in text.split(",") if t.strip()]
