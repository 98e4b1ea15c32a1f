"""Durable file writes shared by the kiosk and the centre.

A file survives a power cut only when its bytes are fsynced before it is renamed into place and
the folder holding the new name is fsynced after. Callers write to a fresh temp name with
:func:`write_new`, ``os.replace`` it onto the final name, then :func:`fsync_dir` the folder (once
per folder when they write several files).
"""

from __future__ import annotations

import os
from pathlib import Path


def write_new(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Create ``path`` (which must not exist), write all of ``data`` and fsync it.

    On any failure the partial file is removed and the error re-raised (FileNotFoundError when the
    folder is missing, OSError ENOSPC when the disk is full, ...).
    """
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        view = memoryview(data)
        while view:
            n = os.write(fd, view)
            view = view[n:]
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        try:
            os.unlink(path)
        except OSError:
            pass
        raise
    os.close(fd)


def fsync_dir(folder: Path) -> None:
    """fsync a folder, so that a rename into it survives a power cut."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
