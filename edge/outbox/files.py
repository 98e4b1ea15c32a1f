"""The outbox's image files: one sealed file per JPEG, named by the SHA-256 of the plaintext.

A file is written atomically (temp file, fsync, rename, fsync of the folder) and sealed with
the kiosk's at-rest key (:mod:`edge.atrest`), bound to its name by the associated data. The
name is a hash, never a patient identifier. Which files a case still needs is the database's
business (:mod:`edge.outbox.store`); this module only writes, reads and deletes files.
"""

from __future__ import annotations

import os
import secrets
import time
from pathlib import Path

from wire.codec import sha256_hex
from wire.durable import fsync_dir, write_new

from ..atrest import SealedDataError, Sealer, is_sealed
from .errors import CaseDataError


class ImageFiles:
    """The sealed image folder (``<data_dir>/images``)."""

    def __init__(self, folder: Path, sealer: Sealer):
        """Use ``folder`` (created if missing) and seal with ``sealer``."""
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.sealer = sealer

    def path(self, sha256: str) -> Path:
        """Where the image with this SHA-256 is stored."""
        return self.folder / f"{sha256}.jpg"

    def read(self, sha: str) -> bytes:
        """The plaintext JPEG stored under ``sha``; CaseDataError if missing, altered or not ours."""
        try:
            blob = self.path(sha).read_bytes()
        except FileNotFoundError:
            raise CaseDataError(f"image file {sha[:12]} is missing") from None
        try:
            return self.sealer.open(blob, b"image:" + sha.encode())
        except SealedDataError:
            raise CaseDataError(f"image file {sha[:12]} does not match its hash (cannot be opened)") from None

    def write(self, sha: str, data: bytes) -> bool:
        """Write one image (sealed) atomically unless a good copy exists; True if a new file was created."""
        if self.path(sha).exists():
            try:
                self.read(sha)
                return False
            except (CaseDataError, OSError):
                pass
        self.put(sha, data)
        return True

    def put(self, sha: str, data: bytes, sync_folder: bool = True) -> None:
        """Seal ``data`` and write it under its hash: temp file, fsync, rename (and fsync of the folder)."""
        sealed = self.sealer.seal(data, b"image:" + sha.encode())
        tmp = self.folder / f".{sha[:16]}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
        write_new(tmp, sealed, 0o600)
        os.replace(tmp, self.path(sha))
        if sync_folder:
            fsync_dir(self.folder)

    def delete(self, sha: str) -> None:
        """Delete one image file (no error if it is gone)."""
        self.path(sha).unlink(missing_ok=True)

    def seal_plaintext(self) -> int:
        """Seal image files an older kiosk version stored in plaintext; returns how many."""
        sealed = 0
        for path in self.folder.iterdir():
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
                self.put(path.stem, data)
                sealed += 1
        return sealed

    def remove_orphans(self, needed: set[str], grace_s: float) -> int:
        """Delete temp files and image files not in ``needed`` older than ``grace_s``; returns how many."""
        removed = 0
        cutoff = time.time() - grace_s
        for path in self.folder.iterdir():
            try:
                if path.stat().st_mtime > cutoff:
                    continue
            except FileNotFoundError:
                continue
            if path.suffix == ".tmp" or path.stem not in needed:
                path.unlink(missing_ok=True)
                removed += 1
        return removed
