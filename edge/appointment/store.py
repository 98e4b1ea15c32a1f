"""The open appointment on disk, sealed (edge.atrest), so that a kiosk restart loses nothing.

``<data_dir>/appointment/<referral_id>/`` holds ``state`` (the appointment's JSON) and
``shot-<n>`` (each photograph's JPEG), every file sealed with the kiosk's at-rest key
(AES-256-GCM) and bound to its place by the associated data. Names are the kiosk's own
UUID and a counter, never a patient identifier. Each file is written to a temp name,
fsynced and renamed, and the folder fsynced (:mod:`wire.durable`).
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
import secrets
import uuid
from pathlib import Path

from pydantic import ValidationError

from wire.durable import fsync_dir, write_new

from ..atrest import SealedDataError, Sealer
from ..outbox import DiskFullError
from .draft import Appointment, dump, load

log = logging.getLogger("edge.appointment")

STATE = "state"

DISK_FULL = ("Storage is full: the last step was not saved (everything before it is kept). Cases waiting "
             "to be sent free space when the centre receives them; if this persists, call IT.")


def disk_full(exc: BaseException) -> bool:
    """True when ``exc`` means the disk (or the quota) is full."""
    return isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)


class AppointmentStore:
    """Sealed files of the open appointment under ``<data_dir>/appointment/``."""

    def __init__(self, data_dir: Path | str, sealer: Sealer, min_free_bytes: int = 0):
        """Keep appointments in ``<data_dir>/appointment`` sealed with ``sealer``."""
        self.root = Path(data_dir) / "appointment"
        self.root.mkdir(parents=True, exist_ok=True)
        self.sealer = sealer
        self.min_free_bytes = int(min_free_bytes)

    def folder(self, referral_id: uuid.UUID) -> Path:
        """The folder of one appointment (named by the kiosk's UUID)."""
        return self.root / str(uuid.UUID(str(referral_id)))

    def check_space(self, needed: int) -> None:
        """DiskFullError when writing ``needed`` bytes would leave less than the configured reserve."""
        free = shutil.disk_usage(self.root).free
        if free - needed - (1 << 20) < self.min_free_bytes:
            raise DiskFullError(DISK_FULL)

    def _write(self, folder: Path, name: str, data: bytes, aad: bytes) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f".{name}.{secrets.token_hex(4)}.tmp"
        try:
            write_new(tmp, self.sealer.seal(data, aad), 0o600)
            os.replace(tmp, folder / name)
            fsync_dir(folder)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            if disk_full(exc):
                raise DiskFullError(DISK_FULL) from None
            raise

    def save(self, appt: Appointment) -> None:
        """Write the appointment's state (sealed, atomically). DiskFullError when there is no room."""
        folder = self.folder(appt.referral_id)
        self._write(folder, STATE, dump(appt), b"appointment:" + str(appt.referral_id).encode())

    def put_shot(self, appt: Appointment, jpeg: bytes) -> str:
        """Write a photograph's JPEG (sealed) under the next counter name; returns that name."""
        self.check_space(len(jpeg) + 4096)
        name = f"shot-{appt.next_file:04d}"
        self._write(self.folder(appt.referral_id), name, jpeg, self._shot_aad(appt.referral_id, name))
        appt.next_file += 1
        return name

    def read_shot(self, referral_id: uuid.UUID, name: str) -> bytes:
        """The JPEG of a stored shot; SealedDataError/OSError when it is missing or altered."""
        if not name.startswith("shot-") or "/" in name:
            raise FileNotFoundError(name)
        blob = (self.folder(referral_id) / name).read_bytes()
        return self.sealer.open(blob, self._shot_aad(referral_id, name))

    def drop_shot(self, referral_id: uuid.UUID, name: str) -> None:
        """Delete one shot file (a shot that was not kept)."""
        if name.startswith("shot-"):
            (self.folder(referral_id) / name).unlink(missing_ok=True)

    @staticmethod
    def _shot_aad(referral_id: uuid.UUID, name: str) -> bytes:
        return f"appointment-shot:{referral_id}:{name}".encode()

    def remove(self, referral_id: uuid.UUID) -> None:
        """Delete an appointment's folder (after submit or discard)."""
        shutil.rmtree(self.folder(referral_id), ignore_errors=True)
        try:
            fsync_dir(self.root)
        except OSError:
            pass

    def restore(self) -> Appointment | None:
        """The appointment left open by the last run (newest if several), or None.

        A folder that does not open (another key, altered) is renamed ``*.unreadable`` and logged.
        """
        found: list[tuple[float, Appointment]] = []
        for folder in self.root.iterdir():
            if not folder.is_dir() or folder.name.endswith(".unreadable"):
                continue
            for tmp in folder.glob(".*.tmp"):              # a write cut short by a crash
                tmp.unlink(missing_ok=True)
            state = folder / STATE
            try:
                rid = uuid.UUID(folder.name)
                appt = load(self.sealer.open(state.read_bytes(), b"appointment:" + str(rid).encode()))
                if appt.referral_id != rid:
                    raise ValueError("state of another appointment")
            except FileNotFoundError:
                shutil.rmtree(folder, ignore_errors=True)      # opened, nothing saved yet
                continue
            except (ValueError, OSError, SealedDataError, ValidationError) as exc:
                log.error("an open appointment could not be restored (%s): kept aside as %s.unreadable",
                          type(exc).__name__, folder.name)
                folder.rename(folder.with_name(folder.name + ".unreadable"))
                continue
            found.append((state.stat().st_mtime, appt))
        if not found:
            return None
        found.sort(key=lambda t: t[0])
        for _, older in found[:-1]:
            log.warning("appointment %s left over beside a newer one: kept on disk, not reopened",
                        older.referral_id)
        return found[-1][1]
