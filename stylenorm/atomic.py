"""Atomic file output: write to a temporary file beside the target, then rename."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from stylenorm.errors import StylenormError


def check_writable(path: str | os.PathLike, folder: bool = False) -> None:
    """Refuse, before any work, an output whose folder cannot be created or written.

    `path` is a file to write (its parent must be writable) or, with `folder`, a folder to
    create or fill.
    """
    target = Path(path)
    place = target if folder else target.parent
    if folder and target.exists() and not target.is_dir():
        raise StylenormError(f"{target} is a file, not a folder; pass a folder to -o")
    existing = place
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise StylenormError(f"cannot write {target}: {existing} is a file, not a folder; pass another -o")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise StylenormError(f"cannot write {target}: the folder {existing} is not writable; pass another -o")


def _make_parent(target: Path) -> None:
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:  # a file where a folder should be, no permission, ...
        raise StylenormError(f"cannot create the folder of {target} ({exc.strerror}); pass another -o") from None


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path; on success it replaces `path`, on error it is removed.

    The temporary file keeps the target's suffix so that writers which pick a
    format from the extension (PIL, matplotlib) still do.
    """
    target = Path(path)
    _make_parent(target)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.stem}.", suffix=f".part{target.suffix}", dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        # mkstemp creates 0600 files, and some writers (safetensors) recreate the file the
        # same way; users expect the permissions a plain open() gives.
        os.chmod(tmp_path, 0o666 & ~_current_umask())
        os.replace(tmp_path, target)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def atomic_directory(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary directory that becomes `path` (replacing it) once complete."""
    target = Path(path)
    _make_parent(target)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent))
    try:
        yield tmp
        if target.exists():
            old = target.with_name(f".{target.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(target, old)
            os.replace(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
