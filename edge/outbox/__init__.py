"""Store-and-forward outbox: every case lives here until the centre acknowledges it.

One SQLite database (WAL, ``synchronous=FULL``) in the data folder plus one folder of image
files named by their SHA-256 (never by a patient identifier). Image files are written
atomically *before* the rows that refer to them commit, so a committed case always has its
images on disk. A referral's cases (one per lesion) are stored as one group in one
transaction: all of them or none (:meth:`Outbox.add_group`).

States of a case::

    captured -> queued -> sent (PUBACK) -> delivered (centre ack) -> purged
                   \\-> rejected (centre refused, or the kiosk will not send it; kept for IT)

At rest, everything about a case is sealed with AES-256-GCM (:mod:`edge.atrest`): the header
in SQLite and each image file (:mod:`edge.outbox.files`). ``seq`` is a per-device monotonic
sequence (SQLite AUTOINCREMENT, never reused) that orders cases independently of the wall
clock. Only ``delivered`` cases have their image files deleted, after the configured retention.

Modules: :mod:`.errors` (the exceptions), :mod:`.files` (sealed image files), :mod:`.store`
(the database and the :class:`Outbox` API).
"""

from .errors import CaseDataError, DiskFullError, DuplicateGroupError, OutboxError
from .store import PENDING, STATES, WAITING, Outbox, OutboxCase

__all__ = ["Outbox", "OutboxCase", "OutboxError", "DiskFullError", "CaseDataError", "DuplicateGroupError",
           "STATES", "PENDING", "WAITING"]
