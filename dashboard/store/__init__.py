"""The centre's case store: SQLite (sqlite-utils, WAL, ``synchronous=FULL``) plus a content-addressed image folder.

Seams, one module each: :mod:`.files` (image files, written durably and
group-committed before the rows naming them), :mod:`.schema` (tables and their
migrations), :mod:`.cases` (cases of either schema version, stored in batches,
idempotently by case UUID: the same case again is ``"duplicate"`` and changes
nothing; an image shared by two cases is stored once), :mod:`.referrals`
(schema version 2: referral -> lesions -> images) and :mod:`.devices` (kiosks,
quarantine, the sweep of interrupted writes). :class:`Store` joins them on one
connection; the names below were this module's before the split and still are.

Quarantined payloads are kept as ``quarantine_dir/<sha256>.bin``: file names
are hashes, never anything a patient could be recognised by.
"""

from __future__ import annotations

import sqlite3
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import sqlite_utils

from wire.codec import sha256_hex

from . import schema
from .cases import CaseStore, SaveResult, case_risk
from .devices import DeviceStore
from .files import (GROUP_COMMIT, TMP_PREFIX, FsSync, _atomic_write, _write_file, _write_temp,  # noqa: F401
                    commit_image_files, discard_staged, image_path, stage_image_files, write_image_files)
from .schema import MAX_SQL_VARIABLES, SCHEMA, utcnow  # noqa: F401

__all__ = ["Store", "SaveResult", "case_risk", "utcnow", "image_path", "FsSync", "GROUP_COMMIT", "TMP_PREFIX",
           "stage_image_files", "commit_image_files", "discard_staged", "write_image_files", "SCHEMA",
           "MAX_SQL_VARIABLES"]


class Store(CaseStore, DeviceStore):
    """One handle on the centre database and its image folder (not shared between threads)."""

    def __init__(self, database: Path | str, images_dir: Path | str, quarantine_dir: Path | str | None = None):
        """Open (creating if needed) the database in WAL mode and make sure the schema exists (migrating an
        older database: :func:`dashboard.store.schema.ensure`)."""
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
        schema.ensure(conn)

    def close(self) -> None:
        """Close the database connection (and the image-writing threads)."""
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None
        self.fs_sync.close()
        self.conn.close()

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
