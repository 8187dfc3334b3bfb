"""Run the trainer on several processes with torchrun, under the project's command-line convention.

    python -m vsrvfi.trainers.launch [torchrun options] -m vsrvfi.trainers.train MODEL [key=value ...]

./run.sh uses it when there is more than one process (or TORCHRUN_ARGS is set). It takes torchrun's
own options and runs torchrun in this process, but keeps the console to what the trainer says:

- local rank 0 writes to the console as usual (progress bar, `error: ...`, `interrupted by ...`);
  the other local ranks write to log files (`--log-dir`, else a temporary folder kept only when
  something failed), so one problem is one line, not one per process;
- torchrun's own logging and its ChildFailedError traceback are not shown (`LOGLEVEL=INFO` shows
  its logging again). When another rank than local rank 0 fails, its error line (or the last line
  of its output) is printed as `error: rank N: ...`, with where its log is;
- the exit status is the failed rank's own: 2 for bad input, 128 + N after signal N; 0 when every
  rank finished. SIGINT/SIGTERM to this process are passed on to the ranks (torchrun does), which
  save a checkpoint and stop.
"""
from __future__ import annotations

import logging
import os
import shutil
import signal
import sys
import tempfile
from pathlib import Path
from typing import Sequence

_LAST_LINE_PREFIXES = ("error:", "interrupted by")


def _quiet_torchrun_logging() -> None:
    """torchrun logs through `torch.distributed.*` loggers to stderr (warnings, 'failed (exitcode: 2)', ...)."""
    if os.environ.get("LOGLEVEL"):  # asked for: leave torchrun's logging as it is
        return
    for name, logger in list(logging.root.manager.loggerDict.items()):
        if name.startswith("torch.distributed") and isinstance(logger, logging.Logger):
            logger.setLevel(logging.CRITICAL)
    for handler in logging.getLogger("torch.distributed").handlers:  # also for loggers made later
        handler.addFilter(lambda record: record.levelno >= logging.CRITICAL)


def _rank_log(log_dir: Path, local_rank: int) -> Path | None:
    """The newest stderr.log of `local_rank` under torchrun's log folder."""
    logs = sorted(log_dir.glob(f"*/attempt_*/{local_rank}/stderr.log"), key=lambda p: p.stat().st_mtime)
    return logs[-1] if logs else None


def _last_message(log: Path | None) -> str | None:
    """A rank's own one-line message, else the last line of its output (e.g. a traceback's exception line)."""
    if log is None or not log.is_file():
        return None
    lines = [ln.strip() for ln in log.read_text(errors="replace").replace("\r", "\n").splitlines() if ln.strip()]
    for ln in reversed(lines):
        if ln.startswith(_LAST_LINE_PREFIXES):
            return ln.removeprefix("error:").strip()
    return lines[-1] if lines else None


def _status(exitcode: int) -> int:
    """A process's exit status as a shell reports it: 128 + N when signal N ended it."""
    return 128 - exitcode if exitcode < 0 else exitcode


def launch(argv: Sequence[str]) -> int:
    """Run torchrun with `argv`; returns the exit status (see the module docstring)."""
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import determine_local_world_size, parse_args, run

    _quiet_torchrun_logging()  # after importing torch, which sets up its loggers

    args = parse_args(list(argv))
    own_log_dir = not args.log_dir
    log_dir = Path(args.log_dir or tempfile.mkdtemp(prefix="vsr-train-ranks-"))
    args.log_dir = str(log_dir)
    nproc = determine_local_world_size(args.nproc_per_node)
    if args.redirects == "0" and args.tee == "0" and nproc > 1:
        args.redirects = ",".join(f"{r}:3" for r in range(1, nproc))  # ranks 1.. to files, rank 0 to the console
    keep_logs = False
    try:
        run(args)
        return 0
    except ChildFailedError as exc:
        keep_logs = True
        # torchrun lists the ranks that failed first, then those it stopped because of them
        rank, first = next(iter(exc.failures.items()))
        if first.local_rank == 0 and first.exitcode >= 0:
            return _status(first.exitcode)  # its own message is on the console already
        log = _rank_log(log_dir, first.local_rank) if first.local_rank else None
        if first.exitcode < 0:
            what = f"was stopped by {signal.Signals(-first.exitcode).name}"
        else:
            what = _last_message(log) or f"failed with exit status {first.exitcode}"
        print(f"error: rank {rank}: {what}" + (f" (its output: {log})" if log else ""), file=sys.stderr)
        return _status(first.exitcode)
    except SignalException as exc:  # torchrun got SIGINT/SIGTERM and passed it on; rank 0 said what happened
        return 128 + int(exc.sigval)
    finally:
        if own_log_dir and not keep_logs:
            shutil.rmtree(log_dir, ignore_errors=True)


def main(argv: Sequence[str] | None = None) -> int:
    return launch(sys.argv[1:] if argv is None else argv)


if __name__ == "__main__":
    raise SystemExit(main())
