"""Run under vsrvfi.trainers.launch by test_cli: `fail` makes local rank 1 fail with a one-line error
(rank 0 waits); `wait` makes every rank wait for a signal."""
import os
import sys
import time

from vsrvfi.core.cli import entry_point
from vsrvfi.core.errors import UsageError


def main(argv):
    rank = os.environ["LOCAL_RANK"]
    print(f"rank {rank} is here", file=sys.stderr, flush=True)
    if argv[0] == "fail" and rank == "1":
        raise UsageError("rank 1 cannot go on")
    time.sleep(120)
    return 0


if __name__ == "__main__":
    raise SystemExit(entry_point(main, interrupted=f"rank {os.environ['LOCAL_RANK']} stopped")(sys.argv[1:]))
