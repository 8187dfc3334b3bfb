"""One writer per folder: an exclusive lock on a file inside DATA_DIR or a run folder.

The lock is `fcntl.flock` on `<folder>/.lock`, so the kernel releases it when the holder exits in
any way (kill -9 included): a crash never leaves a stale lock, and a second writer is refused with
one line naming the holder's pid (written into the file) instead of mixing its output with the first.
"""
from __future__ import annotations

import contextlib
import errno
import fcntl
import os
from pathlib import Path
from typing import Iterator

from vsrvfi.core.atomic import remove_stale_temps
from vsrvfi.core.errors import UsageError

LOCK_NAME = ".lock"


class FolderLock:
    """An exclusive, non-blocking lock on `folder` (created if needed); `release()` or process exit frees it."""

    def __init__(self, folder: str | os.PathLike, what: str = "folder", clean: bool = True):
        self.folder = Path(folder)
        self.what = what
        self.clean = clean  # remove the temporaries a killed holder left (core.atomic.remove_stale_temps)
        self.path = self.folder / LOCK_NAME
        self._fd: int | None = None

    def acquire(self) -> "FolderLock":
        self.folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            holder = ""
            try:
                holder = os.pread(fd, 64, 0).decode(errors="replace").strip()
            except OSError:
                pass
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                by = f"process {holder}" if holder.isdigit() else "another process"
                raise UsageError(f"{self.folder}: {self.what} is in use by {by}; wait for it to finish "
                                 f"or stop it (the lock goes with the process)") from None
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd
        if self.clean:
            remove_stale_temps(self.folder)
        return self

    def release(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
            os.close(fd)  # closing the last descriptor releases the flock

    def __del__(self) -> None:  # a lock object dropped without release() frees the folder too
        self.release()

    @property
    def held(self) -> bool:
        return self._fd is not None

    def __enter__(self) -> "FolderLock":
        return self.acquire() if self._fd is None else self

    def __exit__(self, *exc) -> None:
        self.release()


@contextlib.contextmanager
def folder_lock(folder: str | os.PathLike, what: str = "folder", clean: bool = True) -> Iterator[FolderLock]:
    """Hold the lock of `folder` for the block; UsageError (one line) when another process holds it.
    With `clean`, the temporaries a killed holder left in it are removed first."""
    lock = FolderLock(folder, what, clean).acquire()
    try:
        yield lock
    finally:
        lock.release()
