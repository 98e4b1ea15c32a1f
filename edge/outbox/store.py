"""The outbox's database and its API (:class:`Outbox`); see :mod:`edge.outbox` for the design."""

from __future__ import annotations

import fcntl
import hashlib
import shutil
import sqlite3
import threading
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Iterator

from wire.durable import fsync_dir
from wire.referral import AnyCaseHeader, parse_case_header

from ..atrest import SealedDataError, Sealer, key_path
from .errors import CaseDataError, DiskFullError, DuplicateGroupError, is_disk_full
from .files import ImageFiles
from .reading import OutboxReader
from .schema import PENDING, SCHEMA, STATES, WAITING, OutboxCase, now_iso

__all__ = ["Outbox", "OutboxCase", "STATES", "PENDING", "WAITING"]


class Outbox(OutboxReader):
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
        self.files = ImageFiles(self.images_dir, self.sealer)
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
        self._db.executescript(SCHEMA)
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
        return self.files.path(sha256)

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
    def _seal_header(self, header: AnyCaseHeader) -> bytes:
        return self.sealer.seal(header.model_dump_json().encode(), b"header:" + str(header.case_id).encode())

    def _open_header(self, case_id: str, blob: bytes) -> AnyCaseHeader:
        try:
            return parse_case_header(self.sealer.open(blob, b"header:" + str(case_id).encode()))
        except SealedDataError as exc:
            raise CaseDataError(f"the stored header of case {case_id} does not open: {exc}") from None

    def _read_image(self, sha: str) -> bytes:
        """The plaintext JPEG stored under ``sha``; CaseDataError if missing, altered or not ours."""
        return self.files.read(sha)

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
            sealed += self.files.seal_plaintext()
        if sealed:
            with self._lock:
                self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")   # no plaintext left in the WAL

    def add(self, header: AnyCaseHeader, images: list[bytes]) -> AnyCaseHeader:
        """Store a new case durably in state ``captured`` and return its header with ``seq`` set.

        The image files are on disk (fsynced) before the row commits. Raises
        DiskFullError (nothing stored) when space runs short, ValueError if the
        images do not match the header.
        """
        return self._store([(header, images)], "captured", None, "")[0]

    def add_group(self, cases: list[tuple[AnyCaseHeader, list[bytes]]], group_key: str | None = None,
                  group_id: str = "") -> list[AnyCaseHeader]:
        """Store several cases (a referral's lesions) as one group, released to the link (``queued``).

        All image files are written (fsynced) first, then every row commits in one transaction:
        all the cases are stored or none is. ``group_key`` (an HMAC the caller makes, never an
        identifier in clear) is recorded in the same transaction; a group whose key was stored
        before raises DuplicateGroupError and stores nothing. Also DiskFullError, ValueError as :meth:`add`.
        """
        if not cases:
            raise ValueError("a group needs at least one case")
        return self._store(cases, "queued", group_key, group_id)

    def group_submitted_at(self, group_key: str) -> str | None:
        """When a group with this key was stored (ISO time), or None."""
        with self._lock:
            row = self._db.execute("SELECT created_at FROM groups WHERE group_key = ?", (group_key,)).fetchone()
        return row[0] if row else None

    def _store(self, cases, state: str, group_key: str | None, group_id: str) -> list[AnyCaseHeader]:
        """Write the images of ``cases``, then commit their rows (and the group's key) in one transaction."""
        for header, images in cases:
            if len(images) != len(header.images):
                raise ValueError(f"header lists {len(header.images)} images, got {len(images)}")
            for meta, data in zip(header.images, images):
                if meta.length != len(data) or meta.sha256 != hashlib.sha256(data).hexdigest():
                    raise ValueError("an image does not match its header entry")
        self.check_space(sum(len(d) for _, images in cases for d in images))
        created: list[str] = []
        stored = []
        with self._exclusive():
            try:
                for header, images in cases:
                    for meta, data in zip(header.images, images):
                        if meta.sha256 not in created and self._write_image(meta.sha256, data):
                            created.append(meta.sha256)
                if created:
                    fsync_dir(self.images_dir)
                with self._tx() as db:
                    now = now_iso()
                    if group_key is not None:
                        try:
                            db.execute("INSERT INTO groups (group_key, group_id, n_cases, created_at)"
                                       " VALUES (?, ?, ?, ?)", (group_key, group_id, len(cases), now))
                        except sqlite3.IntegrityError:
                            raise DuplicateGroupError("this group of cases was stored before") from None
                    for header, images in cases:
                        cur = db.execute(
                            "INSERT INTO cases (case_id, state, header, n_images, jpeg_bytes, created_at, updated_at)"
                            " VALUES (?, ?, NULL, ?, ?, ?, ?)",
                            (str(header.case_id), state, len(images), sum(len(d) for d in images), now, now),
                        )
                        seq = cur.lastrowid
                        header = header.model_copy(update={"seq": seq})
                        db.execute("UPDATE cases SET header = ? WHERE seq = ?", (self._seal_header(header), seq))
                        db.executemany(
                            "INSERT INTO images (case_id, idx, sha256, length) VALUES (?, ?, ?, ?)",
                            [(str(header.case_id), i, m.sha256, m.length) for i, m in enumerate(header.images)],
                        )
                        stored.append(header)
            except (OSError, sqlite3.OperationalError) as exc:
                self._drop_unreferenced(created)
                if is_disk_full(exc):
                    raise DiskFullError(
                        "Storage is full: the case was not saved. Cases already waiting are safe."
                    ) from None
                raise
            except BaseException:
                self._drop_unreferenced(created)
                raise
        return stored

    def _write_image(self, sha: str, data: bytes) -> bool:
        """Write one image (sealed) unless a good copy exists; the caller fsyncs the folder."""
        if self.image_path(sha).exists():
            try:
                self.files.read(sha)
                return False
            except (CaseDataError, OSError):
                pass
        self.files.put(sha, data, sync_folder=False)
        return True

    def enqueue(self, case_id: str) -> None:
        """Release a ``captured`` case to the link (state ``queued``)."""
        self._move(case_id, ("captured",), "queued")

    def submit(self, header: AnyCaseHeader, images: list[bytes]) -> AnyCaseHeader:
        """Store a case and release it to the link in one call; returns the header with ``seq``."""
        header = self.add(header, images)
        self.enqueue(str(header.case_id))
        return header

    def release_captured(self) -> int:
        """Queue every ``captured`` case (complete on disk) left by a crash before release; return how many."""
        with self._tx() as db:
            return db.execute(
                "UPDATE cases SET state='queued', updated_at=? WHERE state='captured'", (now_iso(),)
            ).rowcount

    # ------------------------------------------------------------------ state changes
    def _move(self, case_id: str, from_states: tuple[str, ...], to: str, **cols) -> bool:
        sets = ", ".join(["state = ?", "updated_at = ?", *[f"{k} = ?" for k in cols]])
        marks = ",".join("?" * len(from_states))
        with self._tx() as db:
            cur = db.execute(
                f"UPDATE cases SET {sets} WHERE case_id = ? AND state IN ({marks})",
                (to, now_iso(), *cols.values(), str(case_id), *from_states),
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
                    now = now_iso()
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
            now = now_iso()
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
                               (now_iso(), cid))
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
                self.files.delete(sha)

    def gc_orphans(self, grace_s: float = 300.0) -> int:
        """Delete temp files and image files that no stored case refers to (left by a crash mid-write)."""
        with self._exclusive():
            with self._lock:
                needed = {r[0] for r in self._db.execute(
                    "SELECT i.sha256 FROM images i JOIN cases c ON c.case_id = i.case_id WHERE c.state != 'purged'"
                )}
            return self.files.remove_orphans(needed, grace_s)
