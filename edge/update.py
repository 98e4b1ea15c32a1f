"""Signed updates on the kiosk: verify, stage, swap atomically, self-test, report, roll back.

A bundle (built by ``python -m dashboard update sign-model|sign-config``) is a tar
archive of ``bundle.json`` (:class:`wire.messages.UpdateManifest`: kind, version,
target devices, the SHA-256 of every other file), ``bundle.sig`` (Ed25519
signature of ``bundle.json``) and the files. It arrives on the device's
``update`` topic. The kiosk accepts it only if the signature verifies against
``updates.public_key_file`` and every file matches its SHA-256; anything else
is refused with a clear reason on the ``update-result`` topic, and the model
in service keeps serving.

Models: ``model_dir`` is a symlink to one folder of ``<model_dir>.versions/``
(seeded from ``model_seed_dir`` on first start, e.g. /opt -> /var/lib). A new
model is written to a staging folder, renamed into place, the symlink is
swapped atomically (``rename`` of a new link over the old), and the model is
self-tested (loaded, run on a generated image, outputs sum to 1, SHA-256 as
signed). A failed self-test swaps the link back: ``rolled-back``.

Configuration: a signed ``kiosk.toml`` is validated (same device and site) and
written atomically to ``<data_dir>/config/kiosk.toml``; it takes effect at the
next start (:func:`effective_config_path`), the previous one kept as ``.prev``.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import queue
import re
import shutil
import tarfile
import tempfile
import threading
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from pydantic import ValidationError

from wire import topics
from wire.durable import fsync_dir, write_new
from wire.messages import UpdateManifest, UpdateResult
from wire.staff import STAFF_FILE, StaffRoster

from .config import CONFIG_FILE, ConfigError, UpdateSettings, config_override_path, effective_config_path, load

__all__ = ["UpdateSettings", "config_override_path", "effective_config_path", "Updater", "UpdateError",
           "ModelStore", "verify_bundle", "self_test", "link_reporter", "staff_override_path"]

log = logging.getLogger("edge.update")

MANIFEST_NAME = "bundle.json"
SIGNATURE_NAME = "bundle.sig"
MODEL_FILES = ("manifest.json", "model.tflite")
#: Model versions kept besides the serving one (for rollback by hand).
KEEP_VERSIONS = 3


class UpdateError(Exception):
    """A bundle was refused; ``str()`` is the reason reported to the centre."""


# ---------------------------------------------------------------- bundle verification
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


# ---------------------------------------------------------------- the model folder
class ModelStore:
    """``model_dir`` as a symlink into ``<model_dir>.versions/``: install, swap atomically, roll back."""

    def __init__(self, model_dir: Path | str):
        self.model_dir = Path(model_dir)
        self.versions = self.model_dir.parent / f"{self.model_dir.name}.versions"

    @property
    def managed(self) -> bool:
        """True when ``model_dir`` is a symlink this class can swap."""
        return self.model_dir.is_symlink()

    def current(self) -> Path | None:
        """The version folder being served (None when ``model_dir`` is not managed)."""
        return self.model_dir.resolve() if self.managed else None

    def seed(self, seed_dir: Path | str) -> bool:
        """First start: copy the shipped model (``seed_dir``) in and point ``model_dir`` at it.

        Does nothing (False) when ``model_dir`` already exists.
        """
        if self.model_dir.exists() or self.model_dir.is_symlink():
            return False
        files = {name: (Path(seed_dir) / name).read_bytes() for name in MODEL_FILES}
        target = self.install("seed", files)
        self.swap(target)
        log.info("model folder seeded from %s", seed_dir)
        return True

    def install(self, version: str, files: dict[str, bytes]) -> Path:
        """Write ``files`` to a staging folder (fsynced) and rename it to a new version folder."""
        self.versions.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=self.versions))
        for name, blob in files.items():
            write_new(staging / name, blob)
        fsync_dir(staging)
        safe = re.sub(r"[^A-Za-z0-9._-]", "_", version)[:60]
        target = self.versions / f"{safe}-{uuid.uuid4().hex[:8]}"
        os.rename(staging, target)
        fsync_dir(self.versions)
        return target

    def swap(self, target: Path) -> Path | None:
        """Point ``model_dir`` at ``target`` atomically; returns the previous target (None at seeding)."""
        previous = self.current()
        link_tmp = self.model_dir.parent / f".{self.model_dir.name}.swap-{uuid.uuid4().hex[:8]}"
        os.symlink(os.path.relpath(target, self.model_dir.parent), link_tmp)
        os.replace(link_tmp, self.model_dir)
        fsync_dir(self.model_dir.parent)
        return previous

    def prune(self, keep: int = KEEP_VERSIONS) -> None:
        """Remove old version folders and leftover staging folders, keeping the serving one and ``keep`` more."""
        if not self.versions.exists():
            return
        current = self.current()
        for p in self.versions.glob(".staging-*"):
            shutil.rmtree(p, ignore_errors=True)
        others = sorted((p for p in self.versions.iterdir() if p.is_dir() and p != current and not p.name.startswith(".")),
                        key=lambda p: p.stat().st_mtime, reverse=True)
        for p in others[keep:]:
            shutil.rmtree(p, ignore_errors=True)


def self_test(model_dir: Path, expected_sha256: str, threads: int = 1):
    """Load the model at ``model_dir`` and check it works; returns the Classifier. UpdateError if not.

    Checks: it loads (the Classifier verifies the manifest's SHA-256 of the file), the
    file is the one that was signed, a generated lesion image gives finite
    probabilities that sum to 1, and a classification comes out.
    """
    import numpy as np

    from .camera.synth import lesion_image
    from .classifier import Classifier

    try:
        clf = Classifier(model_dir, threads=threads)
    except Exception as exc:
        raise UpdateError(f"self-test: the new model does not load: {exc}") from None
    if clf.manifest.sha256 != expected_sha256:
        raise UpdateError("self-test: the model's manifest SHA-256 is not the signed file's")
    img = lesion_image(320, 240, seed=7)
    try:
        p = clf.probabilities(img)
    except Exception as exc:
        raise UpdateError(f"self-test: the new model failed on a test image: {type(exc).__name__}") from None
    if p.shape != (len(clf.manifest.labels),) or not np.all(np.isfinite(p)) or np.any(p < -1e-6) \
            or abs(float(p.sum()) - 1.0) > 1e-3:
        raise UpdateError(f"self-test: outputs are not a probability distribution (sum {float(p.sum()):.4f})")
    try:
        clf.classify(img)
    except Exception as exc:
        first = str(exc).splitlines()[0] if str(exc) else ""
        raise UpdateError(f"self-test: classification failed: {type(exc).__name__}: {first}") from None
    return clf


# ---------------------------------------------------------------- the updater
class Updater:
    """Applies bundles for a running :class:`edge.service.KioskService`; reports each result."""

    def __init__(self, service, settings: UpdateSettings, report: Callable[[UpdateResult], None] | None = None):
        self.service = service
        self.settings = settings
        self.report = report or (lambda result: None)
        self.results: list[UpdateResult] = []
        self.restart_needed = threading.Event()
        self._queue: queue.Queue[bytes | None] = queue.Queue(maxsize=4)
        self._thread: threading.Thread | None = None
        self._applied_file = Path(service.cfg.data_dir) / "updates" / "applied.txt"

    # -- threading: the link hands bundles over, one worker applies them in order
    def start(self) -> "Updater":
        """Start the worker thread."""
        self._thread = threading.Thread(target=self._run, name="edge-update", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 30.0) -> None:
        """Finish the bundle in hand and stop."""
        if self._thread:
            self._queue.put(None)
            self._thread.join(timeout)
            self._thread = None

    def submit(self, payload: bytes) -> None:
        """Queue a bundle (called on the link thread); a full queue refuses it at once."""
        try:
            self._queue.put_nowait(payload)
        except queue.Full:
            self._finish(UpdateResult(device_id=self.service.cfg.device_id, status="refused",
                                      reason="busy: too many updates waiting", at=_now()))

    def _run(self) -> None:
        while (payload := self._queue.get()) is not None:
            self.apply(payload)

    # -- the work
    def apply(self, payload: bytes) -> UpdateResult:
        """Verify and apply one bundle; report and return the result (never raises)."""
        cfg = self.service.cfg
        manifest = None
        try:
            if self.settings.public_key_file is None:
                raise UpdateError("updates are disabled: no update public key is configured")
            key = load_public_key(self.settings.public_key_file)
            manifest, files = verify_bundle(payload, key, cfg.device_id, self.settings.max_bundle_mb << 20)
            applied = self._applied()
            if str(manifest.bundle_id) in applied:
                raise UpdateError("bundle was already applied (replay refused)")
            newest = max((at for kind, at in applied.values() if kind == manifest.kind), default=None)
            if newest is not None and manifest.created_at <= newest:
                raise UpdateError(f"bundle was signed {manifest.created_at:%Y-%m-%d %H:%M:%S}Z, before the "
                                  f"{manifest.kind} update in service (downgrade refused)")
            if manifest.kind == "model":
                result = self._apply_model(manifest, files)
            else:
                result = self._apply_config(manifest, files)
        except UpdateError as exc:
            # Name the bundle as it claims to be (unverified) so that the centre can match its record.
            manifest = manifest or _peek_manifest(payload)
            result = UpdateResult(device_id=cfg.device_id, bundle_id=manifest.bundle_id if manifest else None,
                                  kind=manifest.kind if manifest else "unknown",
                                  version=manifest.version if manifest else "", status="refused",
                                  reason=str(exc), serving=self.service.model_version, at=_now())
        except Exception as exc:    # never let an update take the kiosk down
            log.exception("update failed unexpectedly")
            result = UpdateResult(device_id=cfg.device_id, status="refused",
                                  reason=f"internal error: {type(exc).__name__}: {exc}",
                                  serving=self.service.model_version, at=_now())
        self._finish(result)
        return result

    def _apply_model(self, manifest: UpdateManifest, files: dict[str, bytes]) -> UpdateResult:
        cfg = self.service.cfg
        if set(files) != set(MODEL_FILES):
            raise UpdateError(f"a model bundle holds {list(MODEL_FILES)}, this one {sorted(files)}")
        store = ModelStore(cfg.model_dir)
        if not store.managed:
            raise UpdateError(f"model_dir {cfg.model_dir} is not an updatable (symlinked) model folder; "
                              "set model_seed_dir so the kiosk manages it in its data folder")
        target = store.install(manifest.version, files)
        previous = store.swap(target)
        log.info("model %s swapped in; self-testing", manifest.version)
        try:
            clf = self_test(cfg.model_dir, manifest.files["model.tflite"], cfg.classifier_threads)
        except UpdateError as exc:
            store.swap(previous)
            shutil.rmtree(target, ignore_errors=True)
            log.error("model update %s rolled back: %s", manifest.version, exc)
            return UpdateResult(device_id=cfg.device_id, bundle_id=manifest.bundle_id, kind="model",
                                version=manifest.version, status="rolled-back", reason=str(exc),
                                serving=self.service.model_version, at=_now())
        self.service.replace_classifier(clf)
        self._mark_applied(manifest)
        store.prune()
        log.info("model update applied: now serving %s", clf.version)
        return UpdateResult(device_id=cfg.device_id, bundle_id=manifest.bundle_id, kind="model",
                            version=manifest.version, status="applied",
                            reason="self-test passed", serving=clf.version, at=_now())

    def _apply_config(self, manifest: UpdateManifest, files: dict[str, bytes]) -> UpdateResult:
        """Apply a config bundle: ``kiosk.toml`` (used at the next start) and/or ``staff.json`` (at once).

        Every file is validated before any is written; each is written atomically.
        """
        cfg = self.service.cfg
        if not files or not set(files) <= {CONFIG_FILE, STAFF_FILE}:
            raise UpdateError(f"a config bundle holds {CONFIG_FILE} and/or {STAFF_FILE}, this one {sorted(files)}")
        roster = _check_roster(files[STAFF_FILE]) if STAFF_FILE in files else None
        staged = self._stage_config(files[CONFIG_FILE]) if CONFIG_FILE in files else None
        said = []
        if roster is not None:
            target = staff_override_path(cfg.data_dir)
            _replace_atomically(target, files[STAFF_FILE])
            reload = getattr(self.service, "reload_staff", None)
            if reload is not None:
                reload()
            said.append(f"staff roster {roster.version} ({len(roster.staff)} staff) in use")
            log.info("staff roster %s applied (%d staff)", roster.version, len(roster.staff))
        if staged is not None:
            target = config_override_path(cfg.data_dir)
            if target.exists():
                shutil.copy2(target, target.with_suffix(".toml.prev"))
            os.replace(staged, target)
            fsync_dir(target.parent)
            said.append("configuration stored; the kiosk restarts to use it")
        self._mark_applied(manifest)
        if staged is not None:
            self.restart_needed.set()
        return UpdateResult(device_id=cfg.device_id, bundle_id=manifest.bundle_id, kind="config",
                            version=manifest.version, status="applied", reason="; ".join(said),
                            serving=self.service.model_version, at=_now())

    def _stage_config(self, blob: bytes) -> Path:
        """Write a bundle's ``kiosk.toml`` beside its target and validate it; return the staged file."""
        cfg = self.service.cfg
        target = config_override_path(cfg.data_dir)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.parent / f".{CONFIG_FILE}.{uuid.uuid4().hex[:8]}"
        write_new(tmp, blob)
        try:
            new = load(tmp, check_files=False)
            if (new.device_id, new.site) != (cfg.device_id, cfg.site):
                raise UpdateError(f"config is for {new.site}/{new.device_id}, not {cfg.site}/{cfg.device_id}")
        except ConfigError as exc:
            tmp.unlink(missing_ok=True)
            raise UpdateError(f"config refused: {str(exc).replace(str(tmp), CONFIG_FILE)}") from None
        except UpdateError:
            tmp.unlink(missing_ok=True)
            raise
        return tmp

    def _applied(self) -> dict[str, tuple[str, datetime]]:
        """Applied bundles: id -> (kind, signed at), from ``updates/applied.txt``."""
        out = {}
        try:
            lines = self._applied_file.read_text().splitlines()
        except FileNotFoundError:
            return out
        for line in lines:
            parts = line.split()
            if len(parts) == 3:
                try:
                    out[parts[0]] = (parts[1], datetime.fromisoformat(parts[2]))
                except ValueError:
                    continue
        return out

    def _mark_applied(self, manifest: UpdateManifest) -> None:
        self._applied_file.parent.mkdir(parents=True, exist_ok=True)
        with open(self._applied_file, "a") as fh:
            fh.write(f"{manifest.bundle_id} {manifest.kind} {manifest.created_at.isoformat()}\n")
            fh.flush()
            os.fsync(fh.fileno())

    def _finish(self, result: UpdateResult) -> None:
        (log.info if result.status == "applied" else log.warning)(
            "update %s %s: %s%s", result.kind, result.version or "?", result.status,
            f" ({result.reason})" if result.reason else "")
        self.results.append(result)
        try:
            self.report(result)
        except Exception:
            log.exception("reporting the update result failed")


def staff_override_path(data_dir: Path | str) -> Path:
    """Where a staff roster applied by a signed config bundle lives (``<data_dir>/config/staff.json``)."""
    return Path(data_dir) / "config" / STAFF_FILE


def _check_roster(blob: bytes) -> StaffRoster:
    """A bundle's ``staff.json`` validated as a :class:`wire.staff.StaffRoster`; UpdateError naming the problem."""
    try:
        return StaffRoster.model_validate_json(blob)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "(file)"
        raise UpdateError(f"{STAFF_FILE} refused: {where}: {err['msg']}") from None


def _replace_atomically(target: Path, blob: bytes) -> None:
    """Write ``blob`` to ``target`` through a fsynced temp file and a rename (the folder fsynced too)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f".{target.name}.{uuid.uuid4().hex[:8]}"
    write_new(tmp, blob)
    os.replace(tmp, target)
    fsync_dir(target.parent)


def _peek_manifest(payload: bytes) -> UpdateManifest | None:
    """The bundle's manifest read without any check (for reporting a refusal only), or None."""
    try:
        with tarfile.open(fileobj=io.BytesIO(payload), mode="r:") as tar:
            member = tar.getmember(MANIFEST_NAME)
            if not member.isfile() or member.size > 1 << 20:
                return None
            return UpdateManifest.model_validate_json(tar.extractfile(member).read())
    except Exception:
        return None


def _now() -> datetime:
    return datetime.now(timezone.utc)


def link_reporter(link) -> Callable[[UpdateResult], None]:
    """Report update results on the device's ``update-result`` topic through the link."""
    return lambda result: link.publish(topics.UPDATE_RESULT, result.model_dump_json())
