"""Kept for tests and commands written against the old location (`python -m tests.framefactory`): the
frame-folder set makers are benchmarks/fixtures/framefactory.py (shared with the benchmarks)."""
from benchmarks.fixtures.framefactory import *  # noqa: F401,F403
from benchmarks.fixtures.framefactory import _photo, main  # noqa: F401

if __name__ == "__main__":
    raise SystemExit(main())
