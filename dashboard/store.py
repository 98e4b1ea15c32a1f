"""The centre's case store: SQLite (sqlite-utils, WAL, ``synchronous=FULL``) plus a content-addressed image folder.

Images are kept as ``images_dir/ab/abcdef....jpg`` (their SHA-256), written
atomically (temp file, fsync, rename, fsync of the folder) *before* the row
that names them commits, so a committed case never points at a missing or half
file. Storing is idempotent by case UUID: the same case again is reported as
``"duplicate"`` and changes nothing; an image shared by two cases is stored once.

Quarantined payloads are kept as ``quarantine_dir/<sha256>.bin``: file names
are hashes, never anything a patient could be recognised by.
"""

from __future__ import annotations

import json
import os
import sqlite3
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
        conn.executescript(SCHEMA)

    def close(self) -> None:
        """Close the database connection (and the image-writing threads)."""
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None
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

    def write_images(self, files: dict[str, bytes]) -> None:
        """Write images (SHA-256 -> bytes) durably: temp file, fsync, rename, then fsync of each folder.

        Files already present are skipped. Several files are written in
        parallel threads; the call returns only when all are durable, and
        raises the first error (OSError) otherwise.
        """
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

    def save_cases(self, batch: list[tuple[CaseHeader, list[bytes], datetime]]) -> list[SaveResult]:
        """Store verified cases ``(header, images, received_at)`` in one go, idempotently by case UUID.

        All new image files are written and fsynced first (in parallel: the
        file system merges concurrent fsyncs into one journal commit), then
        every new case, its image rows and its device's last-seen time commit
        in one transaction. Per case the result is ``stored`` (new),
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
            return results  # type: ignore[return-value]
        files: dict[str, bytes] = {}
        for i in new.values():
            header, images, _ = batch[i]
            for meta, data in zip(header.images, images, strict=True):
                files.setdefault(meta.sha256, data)
        self.write_images(files)
        with _transaction(self.conn):
            # Re-check inside the write lock: another ingest process may have won the race.
            again = self._stored_headers(list(new))
            for case_id, i in new.items():
                if case_id in again:
                    sha, at = again[case_id]
                    results[i] = SaveResult("duplicate" if sha == shas[i] else "conflict", case_id, at)
                    continue
                header, _, received_at = batch[i]
                self._insert_case(header, heads[i], shas[i], _iso(received_at))
                results[i] = SaveResult("stored", case_id, received_at)
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

    def _insert_case(self, header: CaseHeader, head_json: str, head_sha: str, now: str) -> None:
        case_id = str(header.case_id)
        risk, probs, model = case_risk(header)
        self.db["cases"].insert({
            "case_id": case_id, "device": header.device_id, "site": header.site, "seq": header.seq,
            "referral_ref": header.referral_ref, "lesion_id": header.lesion_id,
            "body_site": header.body_site.value, "created_at": _iso(header.created_at),
            "received_at": now, "software_version": header.software_version,
            "model_version": header.model_version, "risk": risk,
            "probabilities": json.dumps(probs) if probs is not None else None,
            "classification_model": model, "note": header.note,
            "image_count": len(header.images), "header": head_json, "header_sha256": head_sha,
            "status": "new",
        })
        for pos, meta in enumerate(header.images):
            self.conn.execute(
                "INSERT OR IGNORE INTO images (sha256, size, width, height, stored_at) VALUES (?,?,?,?,?)",
                (meta.sha256, meta.length, meta.width, meta.height, now))
            self.conn.execute(
                "INSERT INTO case_images (case_id, position, sha256, view, captured_at, quality, classification) "
                "VALUES (?,?,?,?,?,?,?)",
                (case_id, pos, meta.sha256, meta.view, _iso(meta.captured_at),
                 meta.quality.model_dump_json() if meta.quality else None,
                 meta.classification.model_dump_json() if meta.classification else None))
        self._touch_device(header.device_id, header.site, now)

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
        self.conn.execute(
            "INSERT INTO devices (device, site, last_seen) VALUES (?,?,?) "
            "ON CONFLICT(device) DO UPDATE SET site=excluded.site, last_seen=max(last_seen, excluded.last_seen)",
            (device, site, now))

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
    return Path(images_dir) / sha256[:2] / f"{sha256}.jpg"


def write_image_files(images_dir: Path, files: dict[str, bytes], pool: Executor | None = None) -> None:
    """Write images (SHA-256 -> bytes) into the content-addressed folder durably; skip those present.

    With a ``pool`` the files are written and fsynced in parallel, then each
    folder is fsynced once; raises the first OSError.
    """
    todo = []
    for sha, data in files.items():
        path = image_path(images_dir, sha)
        try:
            if os.stat(path).st_size == len(data):
                continue
        except (FileNotFoundError, NotADirectoryError):
            pass
        todo.append((path, data))
    # Every file is fsynced and renamed first, then each folder is fsynced once: the first folder
    # fsync commits the journal with all the renames, the others then cost little. Same guarantee
    # as temp/fsync/rename/folder fsync per file, with 4 journal commits for 3 images instead of 6.
    folders = list(dict.fromkeys(p.parent for p, _ in todo))
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


def _write_file(path: Path, data: bytes) -> Path:
    """Write ``data`` to a temp file beside ``path``, fsync it and rename it into place (folder not synced)."""
    tmp = path.parent / f"{TMP_PREFIX}{path.name}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
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
