"""Atomic outputs: everything is written under a temporary sibling name and renamed when complete."""
from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
import uuid
from pathlib import Path
from typing import Iterator

from vsrvfi.core.errors import PathError


@contextlib.contextmanager
def atomic_path(final: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary sibling path; rename it onto `final` only if the block completes.

    Output is never half-written under its final name, and an interrupted run leaves only a temporary
    that the next run overwrites. Works for files and directories. A full disk is reported as one
    line naming `final`, and the previous `final` (if any) is left as it was.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f".{final.stem}.tmp.{uuid.uuid4().hex[:8]}{final.suffix}")
    try:
        yield tmp
        if tmp.is_dir() and final.is_dir():
            shutil.rmtree(final)  # an incomplete folder left by something else; ours is complete
        os.replace(tmp, final)
    except Exception as exc:
        if no_space(exc):
            raise PathError(final, "no space left on device; the previous version (if any) is kept") from None
        raise
    finally:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        elif tmp.exists():
            tmp.unlink()


def no_space(exc: BaseException) -> bool:
    """Whether `exc`, or an error it was raised from or while handling, is a full disk (or quota).

    Writers that wrap their OSError (torch.save raises a RuntimeError whose context is the OSError)
    are recognised too."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def check_writable_dir(path: str | os.PathLike) -> Path:
    """Create `path` if needed and check that files can be written there (one-line error if not)."""
    p = Path(path)
    try:
        p.mkdir(parents=True, exist_ok=True)
        probe_file = p / f".write-test-{uuid.uuid4().hex[:8]}"
        probe_file.write_bytes(b"")
        probe_file.unlink()
    except OSError as exc:
        raise PathError(p, f"cannot write here ({exc.strerror or exc})") from None
    return p


def dir_bytes(path: str | os.PathLike) -> int:
    """Total size in bytes of the regular files under `path` (0 if it does not exist)."""
    root = Path(path)
    if not root.exists():
        return 0
    return sum(f.stat().st_size for f in root.rglob("*") if f.is_file())


# What atomic_path and check_writable_dir name their temporaries: .<stem>.tmp.<8 hex><suffix>, .write-test-<8 hex>
_TEMP_NAME = re.compile(r"^\.(.+\.tmp\.[0-9a-f]{8}(\..*)?|write-test-[0-9a-f]{8})$")


def is_temp_name(name: str) -> bool:
    return bool(_TEMP_NAME.match(name))


def remove_stale_temps(root: str | os.PathLike, max_depth: int = 4) -> list[Path]:
    """Remove the temporaries a killed writer left under `root` (kill -9 skips atomic_path's cleanup).

    Only call it while holding the folder's lock (core.lock), when no other writer can own them. Looks
    `max_depth` levels down (DATA_DIR/<res>/frames/<split>/<clip>, a run's checkpoints/), never into
    the frame folders themselves. Returns what was removed.
    """
    removed: list[Path] = []

    def walk(d: Path, depth: int) -> None:
        try:
            entries = list(os.scandir(d))
        except OSError:
            return
        for e in entries:
            p = Path(e.path)
            if is_temp_name(e.name):
                if e.is_dir(follow_symlinks=False):
                    shutil.rmtree(p, ignore_errors=True)
                else:
                    with contextlib.suppress(OSError):
                        p.unlink()
                removed.append(p)
            elif depth < max_depth and e.is_dir(follow_symlinks=False):
                walk(p, depth + 1)

    walk(Path(root), 1)
    return removed
