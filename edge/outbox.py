"""Store-and-forward outbox: every case lives here until the centre acknowledges it.

One SQLite database (WAL, ``synchronous=FULL``) in the data folder plus one
folder of image files named by their SHA-256 (never by a patient identifier).
Image files are written atomically (temp file, fsync, rename, fsync of the
folder) *before* the row that refers to them commits, so a committed case
always has its images on disk.

States of a case::

    captured -> queued -> sent (PUBACK) -> delivered (centre ack) -> purged
                   \\-> rejected (centre refused, or the kiosk will not send it; kept for IT)

At rest, everything about a case is sealed with AES-256-GCM (:mod:`edge.atrest`): the header
(referral reference, lesion id...) is stored in SQLite as a sealed blob, and each image file
holds the sealed JPEG (its name is still the SHA-256 of the plaintext JPEG, never a patient
identifier). SQLite's ``secure_delete`` overwrites what is deleted (a purged case's header).
Plaintext left by an older kiosk version is sealed when the outbox opens.

``seq`` is a per-device monotonic sequence (SQLite AUTOINCREMENT, never reused)
that orders cases independently of the wall clock. Only ``delivered`` cases
have their image files deleted, after the configured retention.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import os
import secrets
import shutil
import sqlite3
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Iterator

from wire.codec import encode_case, sha256_hex
from wire.durable import fsync_dir, write_new
from wire.messages import CaseHeader
from wire.referral import AnyCaseHeader, parse_case_header

from .atrest import SealedDataError, Sealer, is_sealed, key_path

STATES = ("captured", "queued", "sent", "delivered", "purged", "rejected")
#: States the link still has to publish (``sent`` is resent until the centre acks).
PENDING = ("queued", "sent")
#: States that count towards the queue depth shown on the kiosk page.
WAITING = ("captured", "queued", "sent")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS cases (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    case_id      TEXT NOT NULL UNIQUE,
    state        TEXT NOT NULL CHECK (state IN ('captured','queued','sent','delivered','purged','rejected')),
    header       TEXT,
    n_images     INTEGER NOT NULL,
    jpeg_bytes   INTEGER NOT NULL,
    reason       TEXT NOT NULL DEFAULT '',
    attempts     INTEGER NOT NULL DEFAULT 0,
    created_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL,
    sent_at      TEXT,
    delivered_at TEXT
);
CREATE TABLE IF NOT EXISTS images (
    case_id TEXT NOT NULL REFERENCES cases(case_id),
    idx     INTEGER NOT NULL,
    sha256  TEXT NOT NULL,
    length  INTEGER NOT NULL,
    PRIMARY KEY (case_id, idx)
);
CREATE INDEX IF NOT EXISTS images_by_sha ON images(sha256);
CREATE INDEX IF NOT EXISTS cases_by_state ON cases(state, seq);
"""


class OutboxError(Exception):
    """Base class of outbox errors; ``str()`` is a message fit for the kiosk page."""


class DiskFullError(OutboxError):
    """Not enough free space to store a new case; nothing was stored, queued cases are intact."""


class CaseDataError(OutboxError):
    """A stored case whose image files are missing or do not match their hashes."""


@dataclass(frozen=True)
class OutboxCase:
    """One row of the outbox as the link and the kiosk page see it."""

    seq: int
    case_id: str
    state: str
    reason: str
    attempts: int
    n_images: int
    jpeg_bytes: int
    created_at: str
    updated_at: str


def _now() -> str:
    return datetime.now(timezone.utc).isoformat()


def _is_disk_full(exc: BaseException) -> bool:
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    return isinstance(exc, sqlite3.OperationalError) and "full" in str(exc).lower()


class Outbox:
    """The kiosk's durable queue of cases (thread-safe; several processes may share a data folder)."""

    def __init__(self, data_dir: Path | str, retention_s: float = 0.0, min_free_bytes: int = 64 << 20,
                 key_file: Path | str | None = None):
        """Open (creating if needed) the outbox in ``data_dir``.

        ``retention_s``: how long image files of a delivered case are kept before it is purged.
        ``min_free_bytes``: a new capture is refused when storing it would leave less free space.
        ``key_file``: the at-rest key file (created 0600 if missing); the systemd credential
        ``kiosk-key`` wins when present, the default is ``<data_dir>/../kiosk.key``
        (:func:`edge.atrest.key_path`).
        Raises :class:`edge.atrest.AtRestError` when the key cannot be used.
        """
        self.sealer = Sealer.from_file(key_path(data_dir, key_file))
        self.data_dir = Path(data_dir)
        self.images_dir = self.data_dir / "images"
        self.images_dir.mkdir(parents=True, exist_ok=True)
        self.retention_s = float(retention_s)
        self.min_free_bytes = int(min_free_bytes)
        self._lock = threading.RLock()          # the SQLite connection
        self._files_lock = threading.Lock()     # creating / deleting image files (with the flock)
        self._lockfile = open(self.data_dir / "outbox.lock", "a+")
        self.db_path = self.data_dir / "outbox.sqlite3"
        self._db = sqlite3.connect(self.db_path, isolation_level=None, check_same_thread=False, timeout=30)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("PRAGMA foreign_keys=ON")
        self._db.execute("PRAGMA secure_delete=ON")
        self._db.executescript(_SCHEMA)
        self._seal_plaintext()

    # ------------------------------------------------------------------ plumbing
    def close(self) -> None:
        """Close the database; the outbox object cannot be used afterwards."""
        with self._lock:
            self._db.close()
            self._lockfile.close()

    def __enter__(self) -> "Outbox":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @contextmanager
    def _exclusive(self) -> Iterator[None]:
        """File-set lock: thread lock plus an inter-process flock (add/purge/gc must not interleave).

        Held while image files are created or deleted; the database lock is taken only
        around each query, so the link keeps working while files are written or removed.
        """
        with self._files_lock:
            fcntl.flock(self._lockfile, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(self._lockfile, fcntl.LOCK_UN)

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
                self._db.execute("COMMIT")
            except BaseException:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise

    def image_path(self, sha256: str) -> Path:
        """Where the image with this SHA-256 is stored (content-addressed; the file is sealed)."""
        return self.images_dir / f"{sha256}.jpg"

    # ------------------------------------------------------------------ writing
    def free_bytes(self) -> int:
        """Free bytes on the filesystem that holds the data folder."""
        return shutil.disk_usage(self.data_dir).free

    def check_space(self, needed: int) -> None:
        """Raise DiskFullError if storing ``needed`` more bytes would go below the free-space floor."""
        free = self.free_bytes()
        if free - needed - (1 << 20) < self.min_free_bytes:
            raise DiskFullError(
                f"Storage is full: {free // (1 << 20)} MiB free, this case needs "
                f"{max(1, needed >> 20)} MiB plus a {self.min_free_bytes >> 20} MiB reserve. "
                "The case was not saved. Cases already waiting are safe; they are sent and "
                "cleared when the network is back."
            )

    # ------------------------------------------------------------------ sealing (edge.atrest)
    def _seal_header(self, header: CaseHeader) -> bytes:
        return self.sealer.seal(header.model_dump_json().encode(), b"header:" + str(header.case_id).encode())

    def _open_header(self, case_id: str, blob: bytes) -> CaseHeader:
        try:
            return parse_case_header(self.sealer.open(blob, b"header:" + str(case_id).encode()))
        except SealedDataError as exc:
            raise CaseDataError(f"the stored header of case {case_id} does not open: {exc}") from None

    def _read_image(self, sha: str) -> bytes:
        """The plaintext JPEG stored under ``sha``; CaseDataError if missing, altered or not ours."""
        try:
            blob = self.image_path(sha).read_bytes()
        except FileNotFoundError:
            raise CaseDataError(f"image file {sha[:12]} is missing") from None
        try:
            data = self.sealer.open(blob, b"image:" + sha.encode())
        except SealedDataError:
            raise CaseDataError(f"image file {sha[:12]} does not match its hash (cannot be opened)") from None
        return data

    def _seal_plaintext(self) -> None:
        """Seal headers and image files that an older kiosk version stored in plaintext."""
        sealed = 0
        with self._exclusive():
            with self._tx() as db:
                for row in db.execute("SELECT case_id, header FROM cases WHERE typeof(header) = 'text'").fetchall():
                    header = parse_case_header(row["header"])
                    db.execute("UPDATE cases SET header = ? WHERE case_id = ?",
                               (self._seal_header(header), row["case_id"]))
                    sealed += 1
            for path in self.images_dir.iterdir():
                if path.name.startswith(".") or path.suffix != ".jpg":
                    continue
                try:
                    with open(path, "rb") as fh:
                        if is_sealed(fh.read(4)):
                            continue
                        fh.seek(0)
                        data = fh.read()
                except OSError:
                    continue
                if sha256_hex(data) == path.stem:
                    self._put_image(path.stem, data)
                    sealed += 1
        if sealed:
            with self._lock:
                self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")   # no plaintext left in the WAL

    def _write_image(self, sha: str, data: bytes) -> bool:
        """Write one image (sealed) atomically; return True if a new file was created."""
        if self.image_path(sha).exists():
            try:
                self._read_image(sha)
                return False
            except (CaseDataError, OSError):
                pass
        self._put_image(sha, data)
        return True

    def _put_image(self, sha: str, data: bytes) -> None:
        """Seal ``data`` and write it under its hash: temp file, fsync, rename, fsync of the folder."""
        path = self.image_path(sha)
        data = self.sealer.seal(data, b"image:" + sha.encode())
        tmp = self.images_dir / f".{sha[:16]}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
        write_new(tmp, data, 0o600)
        os.replace(tmp, path)
        fsync_dir(self.images_dir)

    def add(self, header: CaseHeader, images: list[bytes]) -> CaseHeader:
        """Store a new case durably in state ``captured`` and return its header with ``seq`` set.

        The image files are on disk (fsynced) before the row commits. Raises
        DiskFullError (nothing stored) when space runs short, ValueError if the
        images do not match the header.
        """
        if len(images) != len(header.images):
            raise ValueError(f"header lists {len(header.images)} images, got {len(images)}")
        for meta, data in zip(header.images, images):
            if meta.length != len(data) or meta.sha256 != hashlib.sha256(data).hexdigest():
                raise ValueError("an image does not match its header entry")
        self.check_space(sum(len(d) for d in images))
        created: list[str] = []
        with self._exclusive():
            try:
                for meta, data in zip(header.images, images):
                    if self._write_image(meta.sha256, data):
                        created.append(meta.sha256)
                with self._tx() as db:
                    now = _now()
                    cur = db.execute(
                        "INSERT INTO cases (case_id, state, header, n_images, jpeg_bytes, created_at, updated_at)"
                        " VALUES (?, 'captured', NULL, ?, ?, ?, ?)",
                        (str(header.case_id), len(images), sum(len(d) for d in images), now, now),
                    )
                    seq = cur.lastrowid
                    header = header.model_copy(update={"seq": seq})
                    db.execute("UPDATE cases SET header = ? WHERE seq = ?", (self._seal_header(header), seq))
                    db.executemany(
                        "INSERT INTO images (case_id, idx, sha256, length) VALUES (?, ?, ?, ?)",
                        [(str(header.case_id), i, m.sha256, m.length) for i, m in enumerate(header.images)],
                    )
            except (OSError, sqlite3.OperationalError) as exc:
                self._drop_unreferenced(created)
                if _is_disk_full(exc):
                    raise DiskFullError(
                        "Storage is full: the case was not saved. Cases already waiting are safe."
                    ) from None
                raise
            except BaseException:
                self._drop_unreferenced(created)
                raise
        return header

    def enqueue(self, case_id: str) -> None:
        """Release a ``captured`` case to the link (state ``queued``)."""
        self._move(case_id, ("captured",), "queued")

    def submit(self, header: CaseHeader, images: list[bytes]) -> CaseHeader:
        """Store a case and release it to the link in one call; returns the header with ``seq``."""
        header = self.add(header, images)
        self.enqueue(str(header.case_id))
        return header

    def release_captured(self) -> int:
        """Queue every ``captured`` case (complete on disk) left by a crash before release; return how many."""
        with self._tx() as db:
            return db.execute(
                "UPDATE cases SET state='queued', updated_at=? WHERE state='captured'", (_now(),)
            ).rowcount

    # ------------------------------------------------------------------ state changes
    def _move(self, case_id: str, from_states: tuple[str, ...], to: str, **cols) -> bool:
        sets = ", ".join(["state = ?", "updated_at = ?", *[f"{k} = ?" for k in cols]])
        marks = ",".join("?" * len(from_states))
        with self._tx() as db:
            cur = db.execute(
                f"UPDATE cases SET {sets} WHERE case_id = ? AND state IN ({marks})",
                (to, _now(), *cols.values(), str(case_id), *from_states),
            )
            return cur.rowcount == 1

    def mark_sent(self, case_id: str) -> bool:
        """Record the broker's PUBACK for a case (``queued``/``sent`` -> ``sent``); False if not pending."""
        return self.mark_sent_many([case_id]) == 1

    def mark_sent_many(self, case_ids: list[str]) -> int:
        """Record PUBACKs for several cases in one transaction; returns how many changed.

        Not fsynced on its own (``synchronous=NORMAL`` for this commit): losing a ``sent``
        mark in a power cut only means the case is published again, which the centre
        answers with ``duplicate``. The next FULL commit makes it durable anyway.
        """
        if not case_ids:
            return 0
        with self._lock:
            self._db.execute("PRAGMA synchronous=NORMAL")
            try:
                with self._tx() as db:
                    now = _now()
                    return sum(db.execute(
                        "UPDATE cases SET state='sent', attempts=attempts+1, sent_at=?, updated_at=?"
                        " WHERE case_id=? AND state IN ('queued','sent')", (now, now, str(cid))).rowcount
                        for cid in case_ids)
            finally:
                self._db.execute("PRAGMA synchronous=FULL")

    def mark_delivered(self, case_id: str, status: str = "stored", purge: bool = True) -> bool:
        """Record the centre's ack (``stored``/``duplicate``); purges at once when retention is 0.

        Returns False if the case was not waiting (already delivered, unknown, rejected).
        ``purge=False`` leaves the purge to a later :meth:`purge_due` (the link's purger).
        """
        changed = self.record_acks([(case_id, status, "")]) == 1
        if changed and purge and self.retention_s <= 0:
            self.purge_due()
        return changed

    def record_acks(self, acks: list[tuple[str, str, str]]) -> int:
        """Record several centre acks ``(case_id, status, reason)`` in one durable transaction.

        ``stored``/``duplicate`` -> ``delivered``; ``rejected`` -> ``rejected`` with the reason.
        Only waiting cases change; returns how many did. Files are not touched here.
        """
        if not acks:
            return 0
        changed = 0
        with self._tx() as db:
            now = _now()
            marks = ",".join("?" * len(WAITING))
            for case_id, status, reason in acks:
                if status == "rejected":
                    cur = db.execute(f"UPDATE cases SET state='rejected', reason=?, updated_at=?"
                                     f" WHERE case_id=? AND state IN ({marks})",
                                     (reason[:500], now, str(case_id), *WAITING))
                else:
                    cur = db.execute(f"UPDATE cases SET state='delivered', reason=?, delivered_at=?, updated_at=?"
                                     f" WHERE case_id=? AND state IN ({marks})",
                                     (status, now, now, str(case_id), *WAITING))
                changed += cur.rowcount
        return changed

    def mark_rejected(self, case_id: str, reason: str) -> bool:
        """Park a case as ``rejected`` with a reason (centre refused it, or the kiosk will not send it)."""
        return self._move(case_id, WAITING, "rejected", reason=reason[:500])

    def requeue(self, case_id: str) -> bool:
        """Put a ``rejected`` case back in the queue (an IT action after fixing the cause)."""
        return self._move(case_id, ("rejected",), "queued", reason="")

    def purge_due(self, now: datetime | None = None, limit: int = 10_000) -> int:
        """Purge delivered cases past retention: forget the header, delete unshared image files.

        Returns how many cases were purged (at most ``limit``, oldest first).
        """
        now = now or datetime.now(timezone.utc)
        cutoff = (now - timedelta(seconds=self.retention_s)).isoformat()
        with self._exclusive():
            with self._tx() as db:
                ids = [r[0] for r in db.execute(
                    "SELECT case_id FROM cases WHERE state='delivered' AND delivered_at <= ? ORDER BY seq LIMIT ?",
                    (cutoff, limit))]
                shas: list[str] = []
                for cid in ids:
                    db.execute("UPDATE cases SET state='purged', header=NULL, updated_at=? WHERE case_id=?",
                               (_now(), cid))
                    shas += [r[0] for r in db.execute("SELECT sha256 FROM images WHERE case_id=?", (cid,))]
            self._drop_unreferenced(shas)
            purged = len(ids)
        return purged

    def _drop_unreferenced(self, shas: list[str]) -> None:
        """Delete image files no longer referenced by a case that still needs them."""
        for sha in shas:
            with self._lock:
                (used,) = self._db.execute(
                    "SELECT COUNT(*) FROM images i JOIN cases c ON c.case_id = i.case_id"
                    " WHERE i.sha256 = ? AND c.state != 'purged'",
                    (sha,),
                ).fetchone()
            if not used:
                self.image_path(sha).unlink(missing_ok=True)

    def gc_orphans(self, grace_s: float = 300.0) -> int:
        """Delete temp files and image files that no stored case refers to (left by a crash mid-write)."""
        removed = 0
        cutoff = time.time() - grace_s
        with self._exclusive():
            with self._lock:
                needed = {r[0] for r in self._db.execute(
                    "SELECT i.sha256 FROM images i JOIN cases c ON c.case_id = i.case_id WHERE c.state != 'purged'"
                )}
            for path in self.images_dir.iterdir():
                try:
                    if path.stat().st_mtime > cutoff:
                        continue
                except FileNotFoundError:
                    continue
                if path.suffix == ".tmp" or path.stem not in needed:
                    path.unlink(missing_ok=True)
                    removed += 1
        return removed

    # ------------------------------------------------------------------ reading
    def _row(self, row: sqlite3.Row) -> OutboxCase:
        return OutboxCase(
            seq=row["seq"], case_id=row["case_id"], state=row["state"], reason=row["reason"],
            attempts=row["attempts"], n_images=row["n_images"], jpeg_bytes=row["jpeg_bytes"],
            created_at=row["created_at"], updated_at=row["updated_at"],
        )

    def get(self, case_id: str) -> OutboxCase | None:
        """The case with this id, or None."""
        with self._lock:
            row = self._db.execute("SELECT * FROM cases WHERE case_id=?", (str(case_id),)).fetchone()
        return self._row(row) if row else None

    def cases(self, states: tuple[str, ...] = STATES, limit: int = 1000) -> list[OutboxCase]:
        """Cases in the given states, in ``seq`` order."""
        marks = ",".join("?" * len(states))
        with self._lock:
            rows = self._db.execute(
                f"SELECT * FROM cases WHERE state IN ({marks}) ORDER BY seq LIMIT ?", (*states, limit)
            ).fetchall()
        return [self._row(r) for r in rows]

    def pending(self, limit: int, exclude: set[str] | frozenset[str] = frozenset()) -> list[OutboxCase]:
        """Up to ``limit`` cases still to publish (queued or sent-not-delivered), oldest ``seq`` first."""
        out: list[OutboxCase] = []
        for case in self.cases(PENDING, limit + len(exclude)):
            if case.case_id not in exclude:
                out.append(case)
                if len(out) >= limit:
                    break
        return out

    def header(self, case_id: str) -> CaseHeader:
        """The stored header of a case (not available once purged)."""
        with self._lock:
            row = self._db.execute("SELECT header FROM cases WHERE case_id=?", (str(case_id),)).fetchone()
        if row is None or row[0] is None:
            raise KeyError(f"no stored header for case {case_id}")
        return self._open_header(str(case_id), row[0])

    def images(self, case_id: str) -> list[bytes]:
        """The image bytes of a case in header order; CaseDataError if a file is missing or altered."""
        header = self.header(case_id)
        out = []
        for meta in header.images:
            data = self._read_image(meta.sha256)
            if sha256_hex(data) != meta.sha256:
                raise CaseDataError(f"image file {meta.sha256[:12]} does not match its hash")
            out.append(data)
        return out

    def payload(self, case_id: str) -> bytes:
        """The wire frame (wire.codec) of a stored case, ready to publish.

        Raises CaseDataError when an image file is missing or altered (hashed once, by the codec).
        """
        header = self.header(case_id)
        images = [self._read_image(meta.sha256) for meta in header.images]
        try:
            return encode_case(header, images)
        except ValueError:
            raise CaseDataError("an image file does not match its hash") from None

    def counts(self) -> dict[str, int]:
        """Number of cases in each state (every state present, zero if none)."""
        with self._lock:
            rows = self._db.execute("SELECT state, COUNT(*) FROM cases GROUP BY state").fetchall()
        out = dict.fromkeys(STATES, 0)
        out.update({r[0]: r[1] for r in rows})
        return out

    def queue_depth(self) -> int:
        """Cases not yet acknowledged by the centre (captured + queued + sent)."""
        c = self.counts()
        return sum(c[s] for s in WAITING)
