"""Kept for tests written against the old location: the frame-folder set makers are
benchmarks/fixtures/framefactory.py (shared with benchmarks/scale.py); import them from there."""
from benchmarks.fixtures.framefactory import *  # noqa: F401,F403
from benchmarks.fixtures.framefactory import _photo  # noqa: F401 - used by tests/test_import_frames.py
