"""Signed update bundles: make the key, sign a model or a kiosk config, publish to one kiosk.

    python -m dashboard update make-key --out /etc/dermkiosk/update-key
    python -m dashboard update sign-model models/lesion --key K.pem --out model.bundle [--device D ...]
    python -m dashboard update sign-config kiosk.toml --key K.pem --out cfg.bundle --device D [--label L]
    python -m dashboard update publish cfg.bundle --config centre.toml --device D [--site S]

A bundle is a tar of ``bundle.json`` (:class:`wire.messages.UpdateManifest`:
kind, version, target devices, SHA-256 of each file), ``bundle.sig`` (the
Ed25519 signature of ``bundle.json``) and the files. The private key stays at
the centre (mode 0600); each kiosk holds the public key (``updates.public_key_file``).
The kiosk's answer comes back on its ``update-result`` topic and is recorded by
the ingest (``updates`` table, shown on the fleet page).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from wire import topics
from wire.messages import UpdateManifest

MODEL_FILES = ("manifest.json", "model.tflite")
CONFIG_FILE = "kiosk.toml"


class BundleError(ValueError):
    """The input cannot be signed (e.g. a model whose manifest SHA-256 is not its file's)."""


def make_key(out_dir: Path | str) -> tuple[Path, Path]:
    """Create ``update-signing.key`` (PKCS#8 PEM, mode 0600) and ``update-signing.pub`` in ``out_dir``.

    Refuses to overwrite an existing key.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    priv_path, pub_path = out / "update-signing.key", out / "update-signing.pub"
    if priv_path.exists():
        raise BundleError(f"{priv_path} exists; not overwriting a signing key")
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    fd = os.open(priv_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)
    pub_path.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                       serialization.PublicFormat.SubjectPublicKeyInfo))
    return priv_path, pub_path


def load_private_key(path: Path | str) -> Ed25519PrivateKey:
    """Read the Ed25519 signing key (PEM)."""
    key = serialization.load_pem_private_key(Path(path).read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise BundleError(f"{path} is not an Ed25519 private key")
    return key


def build_bundle(kind: str, version: str, files: dict[str, bytes], key: Ed25519PrivateKey,
                 devices: list[str] | None = None) -> bytes:
    """Sign ``files`` into a bundle (tar bytes)."""
    manifest = UpdateManifest(bundle_id=uuid.uuid4(), kind=kind, version=version,
                              created_at=datetime.now(timezone.utc),
                              devices=[topics.check_id(d, "device") for d in devices or []],
                              files={n: hashlib.sha256(b).hexdigest() for n, b in files.items()})
    body = manifest.model_dump_json().encode()
    entries = {"bundle.json": body, "bundle.sig": key.sign(body), **files}
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, blob in entries.items():
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(blob), int(time.time()), 0o644
            tar.addfile(info, io.BytesIO(blob))
    return buf.getvalue()


def bundle_manifest(bundle: bytes) -> UpdateManifest:
    """The (unverified) manifest of a bundle, for display and records."""
    with tarfile.open(fileobj=io.BytesIO(bundle), mode="r:*") as tar:
        return UpdateManifest.model_validate_json(tar.extractfile("bundle.json").read())


def sign_model(model_dir: Path | str, key: Ed25519PrivateKey, devices: list[str] | None = None) -> bytes:
    """A model bundle from ``model_dir`` (manifest.json + model.tflite); the manifest must match the file."""
    model_dir = Path(model_dir)
    files = {n: (model_dir / n).read_bytes() for n in MODEL_FILES}
    manifest = json.loads(files["manifest.json"])
    digest = hashlib.sha256(files["model.tflite"]).hexdigest()
    if manifest.get("sha256") != digest:
        raise BundleError(f"{model_dir}/manifest.json sha256 is not model.tflite's ({digest[:12]}…): not signing")
    if not manifest.get("version"):
        raise BundleError(f"{model_dir}/manifest.json has no version")
    return build_bundle("model", manifest["version"], files, key, devices)


def sign_config(path: Path | str, key: Ed25519PrivateKey, devices: list[str], label: str | None = None) -> bytes:
    """A config bundle of one kiosk TOML file (validated here first)."""
    from wire.kioskconfig import load

    cfg = load(path, check_files=False)          # ConfigError names the field
    if cfg.device_id not in devices:
        raise BundleError(f"{path} is for device {cfg.device_id}, not for {', '.join(devices)}")
    return build_bundle("config", label or f"config-{datetime.now(timezone.utc):%Y%m%dT%H%M%SZ}",
                        {CONFIG_FILE: Path(path).read_bytes()}, key, devices)


def broker_client(broker, prefix: str):
    """An unconnected paho MQTT 5 client for the centre's publisher identity ``broker`` (a
    :class:`dashboard.config.BrokerConfig`: user name and password file, TLS files), with a fresh client id."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"{prefix}-{uuid.uuid4().hex[:8]}",
                         protocol=mqtt.MQTTv5)
    if broker.username:
        client.username_pw_set(broker.username,
                               broker.password_file.read_text().strip() if broker.password_file else None)
    if broker.tls:
        client.tls_set(ca_certs=str(broker.ca_file) if broker.ca_file else None,
                       certfile=str(broker.cert_file) if broker.cert_file else None,
                       keyfile=str(broker.key_file) if broker.key_file else None)
    return client


def publish(broker, site: str, device: str, bundle: bytes, timeout: float = 30.0) -> None:
    """Publish a bundle (QoS 1, not retained) on the device's ``update`` topic.

    The kiosk's persistent session holds it while the kiosk is offline.
    ``broker`` is a :class:`dashboard.config.BrokerConfig`.
    """
    client = broker_client(broker, "dermkiosk-update")
    client.connect(broker.host, broker.port, keepalive=30)
    client.loop_start()
    try:
        info = client.publish(topics.topic(site, device, topics.UPDATE), bundle, qos=1)
        info.wait_for_publish(timeout)
        if not info.is_published():
            raise TimeoutError(f"the broker did not take the bundle within {timeout} s")
    finally:
        client.disconnect()
        client.loop_stop()


def cli(args, config_loader) -> int:
    """``python -m dashboard update ...``; ``config_loader(path)`` loads a centre config."""
    import sys

    from wire.tomlconfig import ConfigError

    try:
        if args.update_cmd == "make-key":
            priv, pub = make_key(args.out)
            print(f"signing key: {priv} (keep it at the centre, mode 0600)\n"
                  f"public key:  {pub} (install on each kiosk as updates.public_key_file)")
            return 0
        if args.update_cmd == "sign-model":
            bundle = sign_model(args.model_dir, load_private_key(args.key), args.device)
        elif args.update_cmd == "sign-config":
            if not args.device:
                raise BundleError("give --device for a configuration bundle")
            bundle = sign_config(args.file, load_private_key(args.key), args.device, args.label)
        else:  # publish
            config = config_loader(args.config)
            bundle = Path(args.bundle).read_bytes()
            m = bundle_manifest(bundle)
            site = args.site or _site_of(config, args.device)
            publish(config.broker, site, args.device, bundle)
            _record(config, m, site, args.device)
            print(f"published {m.kind} {m.version} (bundle {m.bundle_id}) to {site}/{args.device}")
            return 0
        Path(args.out).write_bytes(bundle)
        m = bundle_manifest(bundle)
        print(f"{args.out}: {m.kind} {m.version}, bundle {m.bundle_id}, {len(bundle)} bytes")
        return 0
    except (BundleError, ConfigError, OSError, ValueError, TimeoutError) as exc:
        print(f"update: {exc}", file=sys.stderr)
        return 2


def _site_of(config, device: str) -> str:
    from .store import Store

    s = config.storage
    store = Store(s.database, s.images_dir, s.quarantine_dir)
    try:
        for d in store.list_devices():
            if d["device"] == device:
                return d["site"]
    finally:
        store.close()
    raise BundleError(f"device {device} is unknown at the centre; give --site")


def _record(config, manifest: UpdateManifest, site: str, device: str) -> None:
    from .store import Store

    s = config.storage
    store = Store(s.database, s.images_dir, s.quarantine_dir)
    try:
        from .fleet import record_update_sent

        record_update_sent(store, manifest, site, device)
    finally:
        store.close()


def main(argv: list[str], config_loader) -> int:
    """``python -m dashboard update ...`` (``config_loader(path)`` loads a centre config for publish)."""
    import argparse

    ap = argparse.ArgumentParser(prog="python -m dashboard update", description="signed update bundles")
    us = ap.add_subparsers(dest="update_cmd", required=True)
    q = us.add_parser("make-key", help="create the Ed25519 signing key pair")
    q.add_argument("--out", required=True, help="folder for update-signing.key/.pub")
    q = us.add_parser("sign-model", help="sign a model folder (manifest.json + model.tflite)")
    q.add_argument("model_dir")
    q.add_argument("--key", required=True)
    q.add_argument("--out", required=True)
    q.add_argument("--device", action="append", default=[], help="target device (repeat; none: any)")
    q = us.add_parser("sign-config", help="sign a kiosk TOML config")
    q.add_argument("file")
    q.add_argument("--key", required=True)
    q.add_argument("--out", required=True)
    q.add_argument("--device", action="append", default=[])
    q.add_argument("--label", help="version label shown at the centre")
    q = us.add_parser("publish", help="send a bundle to one kiosk over MQTT")
    q.add_argument("bundle")
    q.add_argument("--config", required=True, help="centre TOML file (broker, database)")
    q.add_argument("--device", required=True)
    q.add_argument("--site", help="the device's site (default: from the fleet table)")
    return cli(ap.parse_args(argv), config_loader)
