"""Which clip a loader error is about: the loaders raise one `BadClip(clip, path, problem)` for it.

A frame or clip can go bad under a running training (a disk error, a file replaced mid-run). The PNG
loader's MediaError names the frame (re-raised by torch's DataLoader as text); DALI raises a
RuntimeError whose text usually holds the clip's path, and sometimes names no file at all ("Failed to
send packet to decoder"): then the clips are probed again, and as a last resort decoded to the end
with ffmpeg, to find the one at fault. Errors that name no clip are not the data's fault and are
raised as they are. What to do about a bad clip (stop, or leave it out) is the trainer's decision.
"""
from __future__ import annotations

import functools
import os
import re
from pathlib import Path
from typing import Callable, Iterator, TypeVar

from vsrvfi.core import layout
from vsrvfi.core.errors import DataError, FFmpegError, PathError
from vsrvfi.pipelines.options import LoaderOptions

_CLIP_PATH = re.compile(r"([^\s:'\"]*/(?:scenes|frames)/(?:train|val)/([^/\s:'\"]+?)(?:\.mp4)?)(?=[/\s:'\"]|$)")
_DECODER_ERROR = re.compile(r"readers\.video|decoder|Invalid data found", re.I)

L = TypeVar("L")


class BadClip(DataError):
    """A clip (or one of its frames) that cannot be read; `clip` is its name, `path` the file at fault."""

    def __init__(self, clip: str, path: str, problem: str):
        self.clip = clip
        super().__init__(path, problem)


def named_clip(exc: BaseException, data_dir: str | os.PathLike) -> BadClip | None:
    """The clip under `data_dir` that `exc` (or an exception it was raised from) names, else None."""
    root = str(Path(data_dir).resolve())
    texts, e, seen = [], exc, set()
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        texts.append(e.path if isinstance(e, PathError) else str(e))
        texts.append(str(e))
        e = e.__cause__ or e.__context__
    for text in texts:
        for m in _CLIP_PATH.finditer(text):
            path, name = m.group(1), m.group(2)
            if Path(path).resolve().is_relative_to(root) or not Path(path).is_absolute():
                return BadClip(name, path, f"cannot be read ({_reason(exc, path, name)})")
    return None


def _reason(exc: BaseException, path: str, name: str) -> str:
    """The error's line about clip `name`, without exception class names or the path itself."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    why = next((ln for ln in reversed(lines) if name in ln), lines[-1] if lines else type(exc).__name__)
    why = re.sub(r"^[\w.]*(Error|Exception): ", "", why)
    why = why[len(path) + 2:] if why.startswith(f"{path}: ") else why
    return why[:300]


def undecodable_clip(opts: LoaderOptions) -> BadClip | None:
    """The first clip of `opts` (its tier and LR tier) ffmpeg cannot decode to the end; garbage inside
    an intact container passes a probe. Slow (decodes every clip): only after a reader failed unnamed."""
    from vsrvfi.core.ffmpeg import run_ffmpeg

    for res in [opts.res] + ([opts.lr_res] if opts.lr_res else []):
        for path in layout.list_clips(opts.data_dir, res, opts.split):
            if path.stem in opts.exclude:
                continue
            try:
                run_ffmpeg(["-xerror", "-i", str(path), "-f", "null", "-"], path)
            except FFmpegError as exc:
                return BadClip(path.stem, str(path), f"cannot be decoded ({exc.problem[:200]})")
    return None


def diagnose(exc: Exception, opts: LoaderOptions) -> BadClip | None:
    """The BadClip behind a loader error, or None when no clip is at fault. A video reader's error that
    names no file probes the clips again, then decodes them; when none is found at fault that is a
    one-line DataError saying so."""
    bad = named_clip(exc, opts.data_dir)
    if bad is not None or not _DECODER_ERROR.search(str(exc)):
        return bad
    from vsrvfi.pipelines.sampling import discover_clips

    try:  # probing each clip again names the one that went bad
        discover_clips(opts.data_dir, opts.res, opts.split, opts.kind, opts.sequence_length, opts.stride,
                       opts.lr_res, opts.exclude)
    except Exception as again:
        bad = named_clip(again, opts.data_dir)
    bad = bad or undecodable_clip(opts)
    if bad is None:
        lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip() and "failed" in ln.lower()]
        raise DataError(Path(opts.data_dir) / opts.res,
                        f"the video reader failed ({(lines or ['?'])[0][:200]}) and no single clip could "
                        f"be found at fault; check the clips with ffprobe") from None
    return bad


def reports_bad_clips(iterate: Callable[[L], Iterator[dict]]) -> Callable[[L], Iterator[dict]]:
    """Decorates a loader's `__iter__`: an error about a clip comes out as the BadClip naming it."""
    @functools.wraps(iterate)
    def wrapper(self) -> Iterator[dict]:
        try:
            yield from iterate(self)
        except BadClip:
            raise
        except Exception as exc:
            bad = diagnose(exc, self.opts)
            if bad is None:
                raise
            raise bad from exc
    return wrapper
