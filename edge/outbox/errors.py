"""Errors of the outbox; ``str()`` of each is a message fit for the kiosk page."""

from __future__ import annotations

import errno
import sqlite3


class OutboxError(Exception):
    """Base class of outbox errors; ``str()`` is a message fit for the kiosk page."""


class DiskFullError(OutboxError):
    """Not enough free space to store a new case; nothing was stored, queued cases are intact."""


class CaseDataError(OutboxError):
    """A stored case whose image files are missing or do not match their hashes."""


class DuplicateGroupError(OutboxError):
    """A group of cases (a referral) with this key was stored before; nothing was stored now."""


def is_disk_full(exc: BaseException) -> bool:
    """True when ``exc`` (OSError or SQLite's error) means the disk or the quota is full."""
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    return isinstance(exc, sqlite3.OperationalError) and "full" in str(exc).lower()
