"""Crash-safe file writes: write a temporary file beside the target, fsync it, rename it over the target,
fsync the directory. Readers see the old file or the new one, never a torn one. Plus the checksum that
verifies such files later."""

from __future__ import annotations

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
        fsync_path(tmp)
        replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def write_text(path: str | os.PathLike, text: str) -> Path:
    return write_with(path, lambda tmp: tmp.write_text(text, encoding="utf-8", newline=""))


def sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
