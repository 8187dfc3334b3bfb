"""One writer per folder: an exclusive lock on a file inside DATA_DIR or a run folder.

The lock is a POSIX record lock (`fcntl.lockf`) on `<folder>/.lock`, so the kernel releases it when
the holder exits in any way (kill -9 included): a crash never leaves a stale lock, and a second writer
is refused with one line naming the holder's pid (written into the file) instead of mixing its output
with the first. Not `flock`: a flock belongs to the open file, which forked children (DataLoader
workers) share, so it outlived a killed trainer until its workers noticed; a record lock belongs to the
process alone. Record locks do not exclude the same process, so a registry does that here.
"""
from __future__ import annotations

import contextlib
import errno
import fcntl
import os
from pathlib import Path
from typing import Iterator

from vsrvfi.core.atomic import remove_stale_temps
from vsrvfi.core.errors import PathError, UsageError

LOCK_NAME = ".lock"
_held: dict[str, "FolderLock"] = {}  # lock files this process holds (record locks never refuse their owner)


class FolderLock:
    """An exclusive, non-blocking lock on `folder` (created if needed); `release()` or process exit frees it."""

    def __init__(self, folder: str | os.PathLike, what: str = "folder", clean: bool = True):
        self.folder = Path(folder)
        self.what = what
        self.clean = clean  # remove the temporaries a killed holder left (core.atomic.remove_stale_temps)
        self.path = self.folder / LOCK_NAME
        self._fd: int | None = None
        self._key = ""

    def _busy(self, holder: str) -> UsageError:
        by = f"process {holder}" if holder.isdigit() else "another process"
        return UsageError(f"{self.folder}: {self.what} is in use by {by}; wait for it to finish "
                          f"or stop it (the lock goes with the process)")

    def acquire(self) -> "FolderLock":
        key = os.path.realpath(self.path)
        if key in _held:  # checked before opening: closing any descriptor of the file drops our record lock
            raise self._busy(str(os.getpid()))
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise PathError(self.folder, f"cannot write here ({exc.strerror or exc})") from None
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            holder = ""
            try:
                holder = os.pread(fd, 64, 0).decode(errors="replace").strip()
            except OSError:
                pass
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise self._busy(holder) from None
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd, self._key = fd, key
        _held[key] = self
        if self.clean:
            remove_stale_temps(self.folder)
        return self

    def release(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            _held.pop(self._key, None)
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
            os.close(fd)  # releases the record lock

    def __del__(self) -> None:  # a lock object dropped without release() frees the folder too
        try:
            self.release()
        except (AttributeError, TypeError):  # at interpreter exit module globals may already be None; exit closes the fd
            pass

    @property
    def held(self) -> bool:
        return self._fd is not None

    def __enter__(self) -> "FolderLock":
        return self.acquire() if self._fd is None else self

    def __exit__(self, *exc) -> None:
        self.release()


@contextlib.contextmanager
def folder_lock(folder: str | os.PathLike, what: str = "folder", clean: bool = True,
                create: bool = True) -> Iterator[FolderLock]:
    """Hold the lock of `folder` for the block; UsageError (one line) when another process holds it.
    With `clean`, the temporaries a killed holder left in it are removed first. Without `create`, a
    folder that does not exist is not locked (the block reports it). A folder this made is removed
    again when the block fails before writing anything else into it."""
    folder = Path(folder)
    created = not folder.exists()
    if created and not create:
        yield FolderLock(folder, what, clean)
        return
    lock = FolderLock(folder, what, clean).acquire()
    try:
        yield lock
    except BaseException:
        lock.release()
        if created and [p.name for p in folder.iterdir()] == [LOCK_NAME]:
            (folder / LOCK_NAME).unlink()
            folder.rmdir()
        raise
    finally:
        lock.release()
