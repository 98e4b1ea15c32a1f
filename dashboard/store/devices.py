"""Kiosks' presence and versions, refused payloads (quarantine), and the sweep of interrupted writes."""

from __future__ import annotations

import time
from datetime import datetime

from wire.codec import sha256_hex
from wire.messages import Status

from .cases import TOUCH_DEVICE_HEAD, TOUCH_DEVICE_TAIL
from .files import TMP_PREFIX, _atomic_write
from .schema import iso, transaction, utcnow

_TOUCH_DEVICE = f"{TOUCH_DEVICE_HEAD} VALUES (?,?,?) {TOUCH_DEVICE_TAIL}"


class DeviceStore:
    """The quarantine, device and housekeeping methods of :class:`dashboard.store.Store`."""

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
        with transaction(self.conn):
            cur = self.conn.execute(
                "INSERT INTO quarantine (received_at, topic, device, site, case_id, reason, payload_size, "
                "payload_sha256, payload_file) VALUES (?,?,?,?,?,?,?,?,?)",
                (iso(received_at), topic, device, site, case_id, reason[:500], len(payload), digest,
                 payload_file))
            return cur.lastrowid

    def list_quarantine(self, limit: int = 100) -> list[dict]:
        """Quarantined messages, newest first."""
        return list(self.db.query("SELECT * FROM quarantine ORDER BY id DESC LIMIT ?", [limit]))

    def get_quarantine(self, qid: int) -> dict | None:
        """One quarantined message's row, or None."""
        return next(iter(self.db.query("SELECT * FROM quarantine WHERE id = ?", [qid])), None)

    def quarantine_payload_path(self, row: dict):
        """Where a quarantined row's payload is kept, or None when it was not kept (disk full) or is gone."""
        name = row.get("payload_file")
        if not name or "/" in name or name.startswith("."):
            return None
        path = self.quarantine_dir / name
        return path if path.is_file() else None

    def _touch_device(self, device: str, site: str, now: str) -> None:
        self.conn.execute(_TOUCH_DEVICE, (device, site, now))

    def record_status(self, site: str, status: Status, received_at: datetime | None = None) -> None:
        """Update a kiosk's presence (online/offline) and versions from its status message."""
        now = iso(received_at or utcnow())
        with transaction(self.conn):
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
