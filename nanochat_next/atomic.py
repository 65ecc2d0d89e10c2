"""Crash-safe file writes: write a temporary file beside the target, fsync it, rename it over the target,
fsync the directory. Readers see the old file or the new one, never a torn one. Plus the checksum that
verifies such files later."""

from __future__ import annotations

import errno
import hashlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path


def fsync_path(path: str | os.PathLike) -> None:
    """fsync a file or a directory (directories cannot be opened on some platforms: then skip)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def replace(tmp: str | os.PathLike, final: str | os.PathLike) -> None:
    """Rename tmp over final (atomic on POSIX) and make the rename durable."""
    os.replace(tmp, final)
    fsync_path(Path(final).parent)


def write_with(path: str | os.PathLike, writer: Callable[[Path], None]) -> Path:
    """Let ``writer`` fill a temporary path, then move it into place atomically."""
    path = Path(path)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        writer(tmp)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; a normal write gets the umask's mode
        fsync_path(tmp)
        replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def _umask() -> int:
    mask = os.umask(0)  # reading the umask means setting it: put it straight back
    os.umask(mask)
    return mask


def writable_dir(path: str | os.PathLike, flag: str = "--out", create: bool = True) -> Path:
    """Make sure files can be written in directory ``path`` (created now, or later when ``create`` is False),
    before any work is done. Raises UserError with one line when it is a file, read-only, or cannot be created."""
    from nanochat_next.errors import UserError

    path = Path(path)
    if path.exists() and not path.is_dir():
        raise UserError(f"{flag} {path} is a file, not a directory; pass another path")
    existing = next(p for p in (path, *path.absolute().parents) if p.exists())
    if not existing.is_dir():
        raise UserError(f"{flag} {path}: {existing} is a file, not a directory; pass another path")
    try:
        if not create:
            if not os.access(existing, os.W_OK | os.X_OK):
                read_only = bool(os.statvfs(existing).f_flag & os.ST_RDONLY)
                raise OSError(errno.EROFS if read_only else errno.EACCES,
                              "Read-only file system" if read_only else "Permission denied")
            return path
        path.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=path, prefix=".write-test-")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise UserError(f"cannot write to {flag} {path}: {exc.strerror or exc}; pass a writable directory") from None
    return path


def write_text(path: str | os.PathLike, text: str) -> Path:
    return write_with(path, lambda tmp: tmp.write_text(text, encoding="utf-8", newline=""))


def sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
