"""The project's error types: each is reported as one line `error: <message>` by `core.cli.run_cli`."""
from __future__ import annotations

import os


class UsageError(Exception):
    """A problem with the arguments, the configuration or the state of DATA_DIR, reported as one line."""


class PathError(Exception):
    """A problem with one file or folder, phrased as one line: '<path>: <problem>'."""

    def __init__(self, path: str | os.PathLike, problem: str):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{path}: {problem}")


class MediaError(PathError):
    """A video or image that is missing, unreadable, corrupt or of the wrong kind."""


class FFmpegError(MediaError):
    """ffmpeg failed; the message carries its last meaningful stderr line."""


class CheckpointError(PathError):
    """A checkpoint or weights file that is missing, unreadable or does not fit the model."""


class DataError(PathError):
    """A data set (DATA_DIR, its manifest, clips or frames) that cannot be used as asked."""
