"""The centre's case store: SQLite (sqlite-utils, WAL, ``synchronous=FULL``) plus a content-addressed image folder.

Images are kept as ``images_dir/ab/abcdef....jpg`` (their SHA-256), written
atomically and durably *before* the row that names them commits, so a committed
case never points at a missing or half file, and a file under its final name is
always complete. A batch is group-committed (Linux): every new image goes to a
temp file without fsync, one ``syncfs`` makes all their bytes durable, they are
renamed into place, a second ``syncfs`` makes the renames durable, then the rows
commit (one WAL fsync). Elsewhere each file is fsynced before its rename and
each folder after. Storing is idempotent by case UUID: the same case again is reported as
``"duplicate"`` and changes nothing; an image shared by two cases is stored once.

Quarantined payloads are kept as ``quarantine_dir/<sha256>.bin``: file names
are hashes, never anything a patient could be recognised by.
"""

from __future__ import annotations

import ctypes
import itertools
import json
import os
import sqlite3
import sys
import time
import uuid
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import sqlite_utils

from wire.codec import sha256_hex
from wire.durable import fsync_dir, write_new
from wire.messages import TIERS, CaseHeader, Classification, ImageMeta, Quality, Status

from . import directio

SCHEMA = """
CREATE TABLE IF NOT EXISTS cases (
    case_id TEXT PRIMARY KEY,
    device TEXT NOT NULL,
    site TEXT NOT NULL,
    seq INTEGER NOT NULL,
    referral_ref TEXT NOT NULL,
    lesion_id TEXT NOT NULL,
    body_site TEXT NOT NULL,
    created_at TEXT NOT NULL,
    received_at TEXT NOT NULL,
    software_version TEXT NOT NULL,
    model_version TEXT NOT NULL,
    risk TEXT,
    probabilities TEXT,
    classification_model TEXT,
    note TEXT NOT NULL DEFAULT '',
    image_count INTEGER NOT NULL,
    header TEXT NOT NULL,
    header_sha256 TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'new'
);
CREATE INDEX IF NOT EXISTS cases_received ON cases (received_at DESC);
CREATE TABLE IF NOT EXISTS images (
    sha256 TEXT PRIMARY KEY,
    size INTEGER NOT NULL,
    width INTEGER NOT NULL,
    height INTEGER NOT NULL,
    stored_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS case_images (
    case_id TEXT NOT NULL REFERENCES cases(case_id),
    position INTEGER NOT NULL,
    sha256 TEXT NOT NULL REFERENCES images(sha256),
    view TEXT NOT NULL,
    captured_at TEXT NOT NULL,
    quality TEXT,
    classification TEXT,
    PRIMARY KEY (case_id, position)
);
CREATE INDEX IF NOT EXISTS case_images_sha ON case_images (sha256);
CREATE TABLE IF NOT EXISTS quarantine (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    received_at TEXT NOT NULL,
    topic TEXT NOT NULL,
    device TEXT,
    site TEXT,
    case_id TEXT,
    reason TEXT NOT NULL,
    payload_size INTEGER NOT NULL,
    payload_sha256 TEXT NOT NULL,
    payload_file TEXT
);
CREATE TABLE IF NOT EXISTS devices (
    device TEXT PRIMARY KEY,
    site TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'unknown',
    last_seen TEXT NOT NULL,
    state_at TEXT,
    software_version TEXT NOT NULL DEFAULT '',
    model_version TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS decisions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    case_id TEXT NOT NULL REFERENCES cases(case_id),
    decided_at TEXT NOT NULL,
    reviewer TEXT NOT NULL,
    outcome TEXT NOT NULL,
    note TEXT NOT NULL DEFAULT ''
);
"""

TMP_PREFIX = ".tmp-"

_CASE_COLUMNS = ("case_id", "device", "site", "seq", "referral_ref", "lesion_id", "body_site", "created_at",
                 "received_at", "software_version", "model_version", "risk", "probabilities",
                 "classification_model", "note", "image_count", "header", "header_sha256", "status")
_INSERT_CASE_HEAD = f"INSERT INTO cases ({', '.join(_CASE_COLUMNS)})"
_TOUCH_DEVICE_HEAD = "INSERT INTO devices (device, site, last_seen)"
_TOUCH_DEVICE_TAIL = ("ON CONFLICT(device) DO UPDATE SET site=excluded.site, "
                      "last_seen=max(last_seen, excluded.last_seen)")
_TOUCH_DEVICE = f"{_TOUCH_DEVICE_HEAD} VALUES (?,?,?) {_TOUCH_DEVICE_TAIL}"
#: Most bound values in one statement (SQLite's limit before 3.32; later versions allow more).
MAX_SQL_VARIABLES = 999


def _insert_rows(conn: sqlite3.Connection, head: str, rows: list[tuple], tail: str = "") -> None:
    """Run ``head VALUES (?,..),(?,..),... tail`` for all ``rows``, in as few statements as the variable limit allows.

    One statement for many rows instead of ``executemany``: Python's sqlite3 releases and retakes the
    GIL around every row's step, and in the ingest each retake waits for a decoder thread to let it go
    (the worker spent most of its insert time waiting so). Rows must all have the same length.
    """
    if not rows:
        return
    width = len(rows[0])
    per = max(1, MAX_SQL_VARIABLES // width)
    marks = "(" + ",".join("?" * width) + ")"
    for start in range(0, len(rows), per):
        chunk = rows[start:start + per]
        conn.execute(f"{head} VALUES {','.join([marks] * len(chunk))} {tail}",
                     [value for row in chunk for value in row])


def utcnow() -> datetime:
    """The centre's clock, tz-aware UTC (the kiosk's clock is kept but never used for ordering)."""
    return datetime.now(timezone.utc)


def _iso(dt: datetime) -> str:
    return dt.isoformat()


def case_risk(header: CaseHeader) -> tuple[str | None, dict[str, float] | None, str | None]:
    """The case's risk tier, probabilities and model: the case-level result, else its most severe image."""
    if header.classification is not None:
        c = header.classification
        return c.risk, dict(c.probabilities), c.model
    results = [im.classification for im in header.images if im.classification is not None]
    if not results:
        return None, None, None
    worst = min(results, key=lambda c: TIERS.index(c.risk))
    return worst.risk, dict(worst.probabilities), worst.model


@dataclass(frozen=True)
class SaveResult:
    """What :meth:`Store.save_case` did: ``status`` is ``"stored"``, ``"duplicate"`` or ``"conflict"``."""

    status: str
    case_id: str
    received_at: datetime


class Store:
    """One handle on the centre database and its image folder (not shared between threads)."""

    def __init__(self, database: Path | str, images_dir: Path | str, quarantine_dir: Path | str | None = None):
        """Open (creating if needed) the database in WAL mode and make sure the schema exists."""
        self.database = Path(database)
        self.images_dir = Path(images_dir)
        self.quarantine_dir = Path(quarantine_dir) if quarantine_dir else self.images_dir.parent / "quarantine"
        self.database.parent.mkdir(parents=True, exist_ok=True)
        self.images_dir.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.database, timeout=30, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute("PRAGMA busy_timeout=30000")
        self.db = sqlite_utils.Database(conn)
        self.conn = conn
        self._pool: ThreadPoolExecutor | None = None
        # Opened once: syncfs reports a writeback error (EIO) that happened anywhere on the file system
        # since this descriptor was opened, including in the background before the sync call.
        self.fs_sync = FsSync(self.images_dir)
        conn.executescript(SCHEMA)

    def close(self) -> None:
        """Close the database connection (and the image-writing threads)."""
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None
        self.fs_sync.close()
        self.conn.close()

    # -- images -----------------------------------------------------------------

    def image_path(self, sha256: str) -> Path:
        """Where the image with this SHA-256 lives (whether or not it exists yet)."""
        return image_path(self.images_dir, sha256)

    def write_image(self, data: bytes, sha256: str | None = None) -> Path:
        """Write image bytes to the content-addressed store atomically; a no-op if already there."""
        sha256 = sha256 or sha256_hex(data)
        self.write_images({sha256: data})
        return self.image_path(sha256)

    def write_images(self, files: dict[str, bytes], staged: dict[str, str] | None = None) -> None:
        """Write images (SHA-256 -> bytes) durably; files already present are skipped.

        With syncfs (Linux) the whole set is group-committed (:func:`commit_image_files`), using
        the temp files in ``staged`` (SHA-256 -> temp path, see :func:`stage_image_files`) where
        given; otherwise each file is fsynced before its rename, in parallel threads, then each
        folder. Returns only when all are durable and raises the first error (OSError) otherwise.
        Every temp file in ``staged`` is renamed into place or removed, and ``staged`` emptied.
        """
        if self.fs_sync.available:
            commit_image_files(self.images_dir, files, staged or {}, self.fs_sync)
            return
        discard_staged(staged or {})
        write_image_files(self.images_dir, files, self._io_pool() if len(files) > 1 else None)

    def _io_pool(self) -> ThreadPoolExecutor:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="store-io")
        return self._pool

    def read_image(self, sha256: str) -> bytes:
        """The bytes of a stored image (raises FileNotFoundError if absent)."""
        return self.image_path(sha256).read_bytes()

    # -- cases ------------------------------------------------------------------

    def has_case(self, case_id: uuid.UUID | str) -> bool:
        """Whether a case with this UUID is committed."""
        row = self.conn.execute("SELECT 1 FROM cases WHERE case_id = ?", (str(case_id),)).fetchone()
        return row is not None

    def save_case(self, header: CaseHeader, images: list[bytes], received_at: datetime | None = None) -> SaveResult:
        """Store one verified case and its images, idempotently by case UUID (see :meth:`save_cases`)."""
        return self.save_cases([(header, images, received_at or utcnow())])[0]

    def save_cases(self, batch: list[tuple[CaseHeader, list[bytes], datetime]],
                   staged: dict[str, str] | None = None) -> list[SaveResult]:
        """Store verified cases ``(header, images, received_at)`` in one go, idempotently by case UUID.

        All new image files are made durable first, group-committed (see
        :meth:`write_images`; ``staged`` are temp files already written for
        them, which this call always consumes), then every new case, its image
        rows and its device's last-seen time commit in one transaction. Per case the result is ``stored`` (new),
        ``duplicate`` (that UUID is stored with the same header) or ``conflict``
        (that UUID is stored with a different header). Raises OSError /
        sqlite3.Error when storage fails; nothing is then half-stored.
        """
        heads = [h.model_dump_json() for h, _, _ in batch]
        shas = [sha256_hex(j.encode()) for j in heads]
        ids = [str(h.case_id) for h, _, _ in batch]
        results: list[SaveResult | None] = [None] * len(batch)
        known = self._stored_headers(sorted(set(ids)))
        new: dict[str, int] = {}
        for i, case_id in enumerate(ids):
            if case_id in known:
                sha, at = known[case_id]
                results[i] = SaveResult("duplicate" if sha == shas[i] else "conflict", case_id, at)
            elif case_id in new:
                first = new[case_id]
                results[i] = SaveResult("duplicate" if shas[first] == shas[i] else "conflict", case_id,
                                        batch[first][2])
            else:
                new[case_id] = i
        if not new:
            discard_staged(staged or {})
            return results  # type: ignore[return-value]
        files: dict[str, bytes] = {}
        for i in new.values():
            header, images, _ = batch[i]
            for meta, data in zip(header.images, images, strict=True):
                files.setdefault(meta.sha256, data)
        self.write_images(files, staged)
        with _transaction(self.conn):
            # Re-check inside the write lock: another ingest process may have won the race.
            again = self._stored_headers(list(new))
            rows = []
            for case_id, i in new.items():
                if case_id in again:
                    sha, at = again[case_id]
                    results[i] = SaveResult("duplicate" if sha == shas[i] else "conflict", case_id, at)
                    continue
                header, _, received_at = batch[i]
                rows.append((header, heads[i], shas[i], _iso(received_at)))
                results[i] = SaveResult("stored", case_id, received_at)
            self._insert_cases(rows)
        return results  # type: ignore[return-value]

    def _stored_headers(self, case_ids: list[str]) -> dict[str, tuple[str, datetime]]:
        found = {}
        for chunk in range(0, len(case_ids), 500):
            part = case_ids[chunk : chunk + 500]
            marks = ",".join("?" * len(part))
            for cid, sha, at in self.conn.execute(
                    f"SELECT case_id, header_sha256, received_at FROM cases WHERE case_id IN ({marks})", part):
                found[cid] = (sha, datetime.fromisoformat(at))
        return found

    def _insert_cases(self, rows: list[tuple[CaseHeader, str, str, str]]) -> None:
        """Insert new cases ``(header, header JSON, its SHA-256, received_at ISO)``, their image rows and their
        devices' last-seen times, inside the caller's transaction.

        Plain SQL, multi-row ``INSERT ... VALUES (...), (...)`` per table for the whole batch (see
        :func:`_insert_rows`), not sqlite-utils' insert (which rebuilds the statement per row).
        """
        cases, images, case_images, devices = [], [], [], {}
        for header, head_json, head_sha, now in rows:
            case_id = str(header.case_id)
            risk, probs, model = case_risk(header)
            cases.append((
                case_id, header.device_id, header.site, header.seq, header.referral_ref, header.lesion_id,
                header.body_site.value, _iso(header.created_at), now, header.software_version,
                header.model_version, risk, json.dumps(probs) if probs is not None else None, model, header.note,
                len(header.images), head_json, head_sha, "new"))
            images += [(meta.sha256, meta.length, meta.width, meta.height, now) for meta in header.images]
            case_images += [(case_id, pos, meta.sha256, meta.view, _iso(meta.captured_at),
                             meta.quality.model_dump_json() if meta.quality else None,
                             meta.classification.model_dump_json() if meta.classification else None)
                            for pos, meta in enumerate(header.images)]
            devices[header.device_id] = (header.device_id, header.site, max(now, devices.get(header.device_id,
                                                                                             ("", "", ""))[2]))
        _insert_rows(self.conn, _INSERT_CASE_HEAD, cases)
        _insert_rows(self.conn, "INSERT OR IGNORE INTO images (sha256, size, width, height, stored_at)", images)
        _insert_rows(self.conn, "INSERT INTO case_images "
                                "(case_id, position, sha256, view, captured_at, quality, classification)", case_images)
        _insert_rows(self.conn, _TOUCH_DEVICE_HEAD, list(devices.values()), _TOUCH_DEVICE_TAIL)

    def load_case(self, case_id: uuid.UUID | str) -> tuple[CaseHeader, list[bytes]] | None:
        """Rebuild a stored case's header (from its columns and image rows) and image bytes; None if absent."""
        case = self.get_case(case_id)
        if case is None:
            return None
        c = case["classification"]
        header = CaseHeader(
            case_id=uuid.UUID(case["case_id"]), referral_ref=case["referral_ref"], lesion_id=case["lesion_id"],
            body_site=case["body_site"], site=case["site"], device_id=case["device"],
            created_at=datetime.fromisoformat(case["created_at"]), seq=case["seq"],
            software_version=case["software_version"], model_version=case["model_version"],
            classification=c, note=case["note"],
            images=[ImageMeta(view=im["view"], captured_at=datetime.fromisoformat(im["captured_at"]),
                              sha256=im["sha256"], length=im["size"], width=im["width"], height=im["height"],
                              quality=im["quality"], classification=im["classification"])
                    for im in case["images"]],
        )
        return header, [self.read_image(im["sha256"]) for im in case["images"]]

    def get_case(self, case_id: uuid.UUID | str) -> dict | None:
        """One case as a dict with its parsed results and its ``images`` list, or None."""
        try:
            case_id = str(uuid.UUID(str(case_id)))
        except ValueError:
            return None
        rows = list(self.db.query("SELECT * FROM cases WHERE case_id = ?", [case_id]))
        if not rows:
            return None
        case = rows[0]
        case["probabilities"] = json.loads(case["probabilities"]) if case["probabilities"] else None
        header = json.loads(case["header"])
        case["classification"] = (Classification.model_validate(header["classification"])
                                  if header.get("classification") else None)
        case["images"] = []
        for im in self.db.query(
                "SELECT ci.*, i.size, i.width, i.height FROM case_images ci JOIN images i USING (sha256) "
                "WHERE ci.case_id = ? ORDER BY ci.position", [case_id]):
            im["quality"] = Quality.model_validate_json(im["quality"]) if im["quality"] else None
            im["classification"] = (Classification.model_validate_json(im["classification"])
                                    if im["classification"] else None)
            case["images"].append(im)
        return case

    def list_cases(self, limit: int = 100, offset: int = 0) -> list[dict]:
        """Cases newest first by the centre's receive time (the kiosk clock may be wrong)."""
        rows = self.db.query(
            "SELECT case_id, device, site, seq, referral_ref, lesion_id, body_site, created_at, received_at, "
            "model_version, risk, image_count, status FROM cases "
            "ORDER BY received_at DESC, rowid DESC LIMIT ? OFFSET ?", [limit, offset])
        return list(rows)

    def count_cases(self) -> int:
        """How many cases are stored."""
        return self.conn.execute("SELECT count(*) FROM cases").fetchone()[0]

    def image_known(self, sha256: str) -> bool:
        """Whether an image with this hash belongs to a committed case."""
        return self.conn.execute("SELECT 1 FROM images WHERE sha256 = ?", (sha256,)).fetchone() is not None

    # -- quarantine ---------------------------------------------------------------

    def quarantine(self, topic: str, reason: str, payload: bytes, *, device: str | None = None,
                   site: str | None = None, case_id: str | None = None,
                   received_at: datetime | None = None) -> int:
        """Keep a refused payload (file named by its SHA-256) and a row with the reason; return the row id.

        If the payload cannot be written (disk full) the row is still recorded without a file.
        """
        received_at = received_at or utcnow()
        digest = sha256_hex(payload)
        payload_file = None
        try:
            path = self.quarantine_dir / f"{digest}.bin"
            if not path.exists():
                _atomic_write(path, payload)
            payload_file = path.name
        except OSError:
            payload_file = None
        with _transaction(self.conn):
            cur = self.conn.execute(
                "INSERT INTO quarantine (received_at, topic, device, site, case_id, reason, payload_size, "
                "payload_sha256, payload_file) VALUES (?,?,?,?,?,?,?,?,?)",
                (_iso(received_at), topic, device, site, case_id, reason[:500], len(payload), digest,
                 payload_file))
            return cur.lastrowid

    def list_quarantine(self, limit: int = 100) -> list[dict]:
        """Quarantined messages, newest first."""
        return list(self.db.query("SELECT * FROM quarantine ORDER BY id DESC LIMIT ?", [limit]))

    # -- devices ------------------------------------------------------------------

    def _touch_device(self, device: str, site: str, now: str) -> None:
        self.conn.execute(_TOUCH_DEVICE, (device, site, now))

    def record_status(self, site: str, status: Status, received_at: datetime | None = None) -> None:
        """Update a kiosk's presence (online/offline) and versions from its status message."""
        now = _iso(received_at or utcnow())
        with _transaction(self.conn):
            self._touch_device(status.device_id, site, now)
            self.conn.execute(
                "UPDATE devices SET state=?, state_at=?, "
                "software_version=CASE WHEN ?='' THEN software_version ELSE ? END, "
                "model_version=CASE WHEN ?='' THEN model_version ELSE ? END WHERE device=?",
                (status.state, now, status.software_version, status.software_version,
                 status.model_version, status.model_version, status.device_id))

    def list_devices(self) -> list[dict]:
        """Known kiosks with their last-seen time, state and versions."""
        return list(self.db.query("SELECT * FROM devices ORDER BY site, device"))

    # -- housekeeping --------------------------------------------------------------

    def sweep_temp_files(self, older_than_s: float) -> int:
        """Remove leftovers of interrupted image writes older than ``older_than_s``; return how many."""
        cutoff = time.time() - older_than_s
        removed = 0
        for folder in (self.images_dir, self.quarantine_dir):
            if not folder.exists():
                continue
            for path in folder.rglob(f"{TMP_PREFIX}*"):
                try:
                    if path.stat().st_mtime < cutoff:
                        path.unlink()
                        removed += 1
                except OSError:
                    pass
        return removed


class _transaction:
    """``BEGIN IMMEDIATE`` ... ``COMMIT`` (or ``ROLLBACK`` on error) on an autocommit connection."""

    def __init__(self, conn: sqlite3.Connection):
        self.conn = conn

    def __enter__(self) -> sqlite3.Connection:
        self.conn.execute("BEGIN IMMEDIATE")
        return self.conn

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.conn.execute("COMMIT")
        else:
            try:
                self.conn.execute("ROLLBACK")
            except sqlite3.Error:
                pass


def image_path(images_dir: Path, sha256: str) -> Path:
    """Content-addressed location of an image: ``images_dir/ab/abcdef....jpg``."""
    return Path(_image_file(images_dir, sha256))


def _image_file(images_dir: Path | str, sha256: str) -> str:
    """:func:`image_path` as a string: the ingest's hot path (pathlib's objects cost more than the syscalls)."""
    return f"{os.fspath(images_dir)}/{sha256[:2]}/{sha256}.jpg"


class FsSync:
    """``syncfs(2)`` of the file system holding a folder: everything written there is durable on return.

    ``available`` is False where it cannot be trusted: no syncfs in the C library (not Linux), or a
    kernel older than 5.8, whose syncfs does not report writeback errors; callers then fsync file by
    file. Raises OSError (EIO after a failed writeback anywhere on that file system, ...) like fsync.
    """

    _syncfs = getattr(ctypes.CDLL(None, use_errno=True), "syncfs", None) if sys.platform == "linux" else None

    def __init__(self, folder: Path):
        """Open ``folder`` (which must exist) for syncing its file system."""
        self.fd = os.open(folder, os.O_RDONLY) if GROUP_COMMIT else -1
        self.available = self.fd >= 0

    def __call__(self) -> None:
        """Flush every dirty file, the journal and the device cache of that file system."""
        if self._syncfs(self.fd) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"syncfs: {os.strerror(err)}")

    def close(self) -> None:
        """Close the folder descriptor."""
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def _syncfs_reports_errors() -> bool:
    """Linux >= 5.8: syncfs returns writeback errors (earlier kernels always return 0)."""
    try:
        major, minor = (int(x) for x in os.uname().release.split(".")[:2])
    except ValueError:
        return False
    return (major, minor) >= (5, 8)


#: Whether image writes are group-committed with syncfs here (else fsynced file by file).
GROUP_COMMIT = FsSync._syncfs is not None and _syncfs_reports_errors()


def _missing(images_dir: Path, files: dict[str, bytes]) -> dict[str, tuple[str, bytes]]:
    """The images not yet under their final name (SHA-256 -> (final path, bytes))."""
    todo = {}
    for sha, data in files.items():
        path = _image_file(images_dir, sha)
        try:
            if os.stat(path).st_size == len(data):
                continue  # a file under its final name is complete: it was durable before its rename
        except (FileNotFoundError, NotADirectoryError):
            pass
        todo[sha] = (path, data)
    return todo


def stage_image_files(images_dir: Path, files: dict[str, bytes]) -> dict[str, str]:
    """Write each image not yet stored to a fresh temp file beside its final name, *without* fsync.

    Returns SHA-256 -> temp path, for :func:`commit_image_files` (the ingest's
    decoder threads do this while the worker commits earlier cases). On error
    the temp files written so far are removed and the OSError raised.
    """
    staged: dict[str, str] = {}
    try:
        for sha, (path, data) in _missing(images_dir, files).items():
            staged[sha] = _write_temp(path, data)
    except BaseException:
        discard_staged(staged)
        raise
    return staged


def commit_image_files(images_dir: Path, files: dict[str, bytes], staged: dict[str, str], sync: FsSync) -> None:
    """Make images (SHA-256 -> bytes) durable under their final names, as one group commit.

    Durability argument: every new image is in a temp file (``staged`` ones
    reused, the others written now); ``sync()`` #1 makes all their bytes and
    inodes durable; only then is each renamed to its final name, so a final
    name never points at bytes that are not on disk, after any crash; ``sync()``
    #2 makes the renames durable, and also the names of files found already in
    place (left by an attempt or a process that died before its sync #2). The
    caller commits the rows naming them after this returns, and the ingest acks
    only after that commit. Two journal commits per batch instead of two
    fsyncs per file and one per folder. ``staged`` is always consumed: its temp
    files are renamed or removed (on error too), so a retry starts again from
    the bytes.
    """
    try:
        for sha in [s for s in staged if s not in files]:  # not needed (a duplicate case)
            _unlink(staged.pop(sha))
        # Staged files were missing when staged; should one have appeared since (another ingest
        # process), the rename replaces it with the same bytes.
        todo = _missing(images_dir, {sha: data for sha, data in files.items() if sha not in staged})
        for sha, (path, data) in todo.items():
            if sha not in staged:
                staged[sha] = _write_temp(path, data)
        if staged:
            sync()
            for sha in list(staged):
                os.replace(staged[sha], _image_file(images_dir, sha))
                del staged[sha]
        if files:
            sync()
    finally:
        discard_staged(staged)


def discard_staged(staged: dict[str, str]) -> None:
    """Remove staged temp files (never renamed) and empty ``staged``."""
    while staged:
        _unlink(staged.popitem()[1])


def _unlink(path: Path) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass  # the temp-file sweep removes what is left


def write_image_files(images_dir: Path, files: dict[str, bytes], pool: Executor | None = None) -> None:
    """Write images (SHA-256 -> bytes) into the content-addressed folder durably; skip those present.

    Without syncfs (or for a single caller without a :class:`Store`): file by file.

    With a ``pool`` the files are written and fsynced in parallel, then each
    folder is fsynced once; raises the first OSError.
    """
    missing = _missing(images_dir, files)
    todo = [(Path(p), d) for p, d in missing.values()]
    # Folders of files already in place are fsynced too: a process that died between its rename and
    # its folder fsync left a name that is visible but not yet durable.
    present = [image_path(images_dir, sha).parent for sha in files if sha not in missing]
    # Every file is fsynced and renamed first, then each folder is fsynced once: the first folder
    # fsync commits the journal with all the renames, the others then cost little. Same guarantee
    # as temp/fsync/rename/folder fsync per file, with 4 journal commits for 3 images instead of 6.
    folders = list(dict.fromkeys([*(p.parent for p, _ in todo), *present]))
    if pool is None or len(todo) < 2:
        for p, d in todo:
            _write_file(p, d)
        for folder in folders:
            fsync_dir(folder)
        return
    list(pool.map(lambda pd: _write_file(*pd), todo))
    list(pool.map(fsync_dir, folders))


def _atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` durably: temp file, fsync, rename, fsync of the folder."""
    _write_file(path, data)
    fsync_dir(path.parent)


_TEMP_TOKEN = os.urandom(4).hex()  # with the pid: no other process's temp names, even across restarts
_temp_count = itertools.count()


def _temp_name(name: str) -> str:
    """A fresh temp file name beside ``name`` (a counter, not a UUID: no random bytes from the kernel per file)."""
    return f"{TMP_PREFIX}{name}-{os.getpid()}-{_TEMP_TOKEN}-{next(_temp_count)}"


def _write_temp(path: Path | str, data: bytes) -> str:
    """Write ``data`` to a fresh temp file beside ``path`` without fsync (see :func:`commit_image_files`);
    return the temp file's path."""
    folder, name = os.path.split(os.fspath(path))
    tmp = f"{folder}/{_temp_name(name)}"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileNotFoundError:  # first file in this folder
        os.makedirs(folder, exist_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        directio.write_all(fd, data)  # whole blocks straight to the disk, not through the page cache
    except BaseException:
        os.close(fd)
        _unlink(tmp)
        raise
    os.close(fd)
    return tmp


def _write_file(path: Path, data: bytes) -> Path:
    """Write ``data`` to a temp file beside ``path``, fsync it and rename it into place (folder not synced)."""
    tmp = path.parent / _temp_name(path.name)
    try:
        write_new(tmp, data)
    except FileNotFoundError:  # first file in this folder (two syscalls fewer per file otherwise)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_new(tmp, data)
    try:
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path
