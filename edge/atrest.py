"""Encryption at rest for the kiosk's outbox: AES-256-GCM with one key per kiosk.

What the outbox keeps on disk until the centre acknowledges a case — the case header
(referral reference, lesion id, body site) in SQLite and the JPEG files — is sealed with
:class:`Sealer`. A sealed blob is ``MAGIC | 12-byte random nonce | ciphertext+tag``; the
associated data binds it to its place (``header:<case id>``, ``image:<sha256>``), so a
blob moved to another row or file name does not open.

The key (32 random bytes) comes from, in order (:func:`key_path`):

1. the systemd credential ``kiosk-key`` (``$CREDENTIALS_DIRECTORY/kiosk-key``), when the unit
   provides one (``LoadCredential=kiosk-key:/etc/dermkiosk/kiosk-data.key``, or
   ``LoadCredentialEncrypted=`` with a key sealed by ``systemd-creds``),
2. the configured file (KioskConfig ``data_key_file``),
3. ``kiosk.key`` beside the data folder (``<data_dir>/../kiosk.key``).

A key file that does not exist is created with mode 0600 (never in the credentials
folder, which systemd owns). A key file that group or others can read is refused.
Losing the key loses the cases not yet delivered; nothing else.
"""

from __future__ import annotations

import os
import secrets
import stat
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

MAGIC = b"DKE1"
NONCE_BYTES = 12
KEY_BYTES = 32
CREDENTIAL_NAME = "kiosk-key"


class AtRestError(Exception):
    """The at-rest key cannot be used (unreadable, wrong size, too open); ``str()`` says what to do."""


class SealedDataError(Exception):
    """A sealed blob does not open: altered, truncated, moved, or sealed with another key."""


def key_path(data_dir: Path | str, configured: Path | str | None = None) -> Path:
    """Where the key is: the systemd credential ``kiosk-key`` if the service has one, else the
    ``configured`` file, else ``kiosk.key`` in the folder above the data folder."""
    creds = os.environ.get("CREDENTIALS_DIRECTORY")
    if creds and (Path(creds) / CREDENTIAL_NAME).is_file():
        return Path(creds) / CREDENTIAL_NAME
    if configured is not None:
        return Path(configured)
    return Path(data_dir).resolve().parent / "kiosk.key"


def _parse(raw: bytes, path: Path) -> bytes:
    if len(raw) == KEY_BYTES:
        return raw
    text = raw.strip()
    if len(text) == 2 * KEY_BYTES:
        try:
            return bytes.fromhex(text.decode("ascii"))
        except (UnicodeDecodeError, ValueError):
            pass
    raise AtRestError(f"key file {path}: expected {KEY_BYTES} bytes (or {2 * KEY_BYTES} hex digits), "
                      f"found {len(raw)} bytes")


def load_key(path: Path | str, create: bool = True) -> bytes:
    """Read the 256-bit key from ``path``; create it (random, mode 0600) when missing and ``create``.

    Raises AtRestError when the file cannot be read, has the wrong size, or is readable by group
    or others (outside a systemd credentials folder, whose modes systemd sets).
    """
    path = Path(path)
    creds = os.environ.get("CREDENTIALS_DIRECTORY")
    in_creds = bool(creds) and path.parent == Path(creds)
    if not path.exists() and create and not in_creds:
        _create(path)
    try:
        st = path.stat()
        raw = path.read_bytes()
    except FileNotFoundError:
        raise AtRestError(f"key file {path} does not exist") from None
    except OSError as exc:
        raise AtRestError(f"key file {path} cannot be read: {exc.strerror}") from None
    if not in_creds and st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise AtRestError(f"key file {path} is accessible to group or others (mode "
                          f"{stat.S_IMODE(st.st_mode):04o}): chmod 600 it, owned by the kiosk's service user")
    return _parse(raw, path)


def _create(path: Path) -> None:
    """Write a new random key to ``path`` (0600) atomically; a key another process made first wins."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as exc:
        raise AtRestError(f"cannot create the key file {path}: {exc.strerror}; set data_key_file to a "
                          f"writable place or give the service the systemd credential {CREDENTIAL_NAME}") from None
    try:
        os.write(fd, secrets.token_bytes(KEY_BYTES))
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.link(tmp, path)          # fails if another process created the key meanwhile
    except FileExistsError:
        pass
    finally:
        tmp.unlink(missing_ok=True)


class Sealer:
    """Seals and opens blobs with AES-256-GCM; the associated data names what the blob is."""

    def __init__(self, key: bytes):
        """Use the 32-byte ``key``."""
        if len(key) != KEY_BYTES:
            raise AtRestError(f"the at-rest key must be {KEY_BYTES} bytes")
        self._aead = AESGCM(key)

    @classmethod
    def from_file(cls, path: Path | str, create: bool = True) -> "Sealer":
        """A sealer with the key in ``path`` (see :func:`load_key`)."""
        return cls(load_key(path, create))

    def seal(self, data: bytes, aad: bytes) -> bytes:
        """``MAGIC | nonce | AES-GCM(data)`` with a fresh random nonce."""
        nonce = secrets.token_bytes(NONCE_BYTES)
        return MAGIC + nonce + self._aead.encrypt(nonce, data, aad)

    def open(self, blob: bytes, aad: bytes) -> bytes:
        """The plaintext of a sealed blob; SealedDataError if it is not one of ours or was altered."""
        blob = bytes(blob)
        if not is_sealed(blob) or len(blob) < len(MAGIC) + NONCE_BYTES + 16:
            raise SealedDataError("not a sealed blob")
        nonce = blob[len(MAGIC):len(MAGIC) + NONCE_BYTES]
        try:
            return self._aead.decrypt(nonce, blob[len(MAGIC) + NONCE_BYTES:], aad)
        except InvalidTag:
            raise SealedDataError("the blob was altered or sealed with another key") from None


def is_sealed(blob: bytes) -> bool:
    """Whether ``blob`` starts like a sealed blob (plaintext JPEG or JSON does not)."""
    return bytes(blob[:len(MAGIC)]) == MAGIC
