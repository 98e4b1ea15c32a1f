"""Signed update bundles: read a bundle tar, verify its Ed25519 signature, target and every SHA-256.

A bundle (built by ``python -m dashboard update sign-model|sign-config``) is a tar archive of
``bundle.json`` (:class:`wire.messages.UpdateManifest`), ``bundle.sig`` (Ed25519 signature of
``bundle.json``) and the files it lists. :mod:`edge.update` applies what passes.
"""

from __future__ import annotations

import hashlib
import io
import tarfile
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from pydantic import ValidationError

from wire.messages import UpdateManifest

MANIFEST_NAME = "bundle.json"
SIGNATURE_NAME = "bundle.sig"


class UpdateError(Exception):
    """A bundle was refused; ``str()`` is the reason reported to the centre."""


def load_public_key(path: Path) -> Ed25519PublicKey:
    """Read an Ed25519 public key (PEM SubjectPublicKeyInfo)."""
    key = serialization.load_pem_public_key(Path(path).read_bytes())
    if not isinstance(key, Ed25519PublicKey):
        raise UpdateError(f"{path} is not an Ed25519 public key")
    return key


def read_bundle(data: bytes, max_bytes: int) -> dict[str, bytes]:
    """The regular files of a bundle tar by name; UpdateError if it is not a plain, flat tar."""
    if len(data) > max_bytes:
        raise UpdateError(f"bundle of {len(data)} bytes is over the {max_bytes} byte limit")
    files: dict[str, bytes] = {}
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as tar:
            total = 0
            for member in tar:
                if not member.isfile() or "/" in member.name or member.name.startswith("."):
                    raise UpdateError(f"bundle holds an unexpected entry {member.name!r}")
                total += member.size
                if total > max_bytes * 4 or member.name in files:
                    raise UpdateError("bundle is too large or repeats a file")
                files[member.name] = tar.extractfile(member).read()
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise UpdateError(f"not a bundle (unreadable tar: {exc})") from None
    return files


def verify_bundle(data: bytes, public_key: Ed25519PublicKey, device_id: str,
                  max_bytes: int = 64 << 20) -> tuple[UpdateManifest, dict[str, bytes]]:
    """Check signature, target device and every SHA-256; return the manifest and its files."""
    files = read_bundle(data, max_bytes)
    if MANIFEST_NAME not in files:
        raise UpdateError("not a bundle: bundle.json is missing")
    if SIGNATURE_NAME not in files:
        raise UpdateError("unsigned bundle: bundle.sig is missing")
    try:
        public_key.verify(files[SIGNATURE_NAME], files[MANIFEST_NAME])
    except InvalidSignature:
        raise UpdateError("bad signature: bundle.sig does not verify with the kiosk's update key") from None
    try:
        manifest = UpdateManifest.model_validate_json(files[MANIFEST_NAME])
    except ValidationError as exc:
        raise UpdateError(f"bundle.json is invalid: {exc.errors()[0]['msg']}") from None
    if manifest.devices and device_id not in manifest.devices:
        raise UpdateError(f"bundle is for {', '.join(manifest.devices)}, not for {device_id}")
    payload = {k: v for k, v in files.items() if k not in (MANIFEST_NAME, SIGNATURE_NAME)}
    if set(payload) != set(manifest.files):
        raise UpdateError(f"bundle files {sorted(payload)} differ from the signed list {sorted(manifest.files)}")
    for name, blob in payload.items():
        if hashlib.sha256(blob).hexdigest() != manifest.files[name]:
            raise UpdateError(f"SHA-256 of {name} does not match the signed manifest")
    return manifest, payload


def peek_manifest(payload: bytes) -> UpdateManifest | None:
    """The bundle's manifest read without any check (for reporting a refusal only), or None."""
    try:
        with tarfile.open(fileobj=io.BytesIO(payload), mode="r:") as tar:
            member = tar.getmember(MANIFEST_NAME)
            if not member.isfile() or member.size > 1 << 20:
                return None
            return UpdateManifest.model_validate_json(tar.extractfile(member).read())
    except Exception:
        return None
