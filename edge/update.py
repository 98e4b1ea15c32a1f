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
A config bundle may also (or only) hold ``staff.json`` (:class:`wire.staff.StaffRoster`):
validated, written atomically to ``<data_dir>/config/staff.json`` and used at once (the
kiosk's appointment desk reads it again; no restart). Every file is checked before any is written.

Modules: :mod:`edge.bundle` (reading and verifying a bundle), :mod:`edge.modelstore` (the
model folder and a new model's self-test); this one applies bundles and reports.
"""

from __future__ import annotations

import logging
import os
import queue
import shutil
import threading
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from pydantic import ValidationError

from wire import topics
from wire.durable import fsync_dir, write_new
from wire.messages import UpdateManifest, UpdateResult
from wire.kioskconfig.kiosk import UpdateSettings
from wire.staff import STAFF_FILE, StaffRoster

from .bundle import UpdateError, load_public_key, peek_manifest, read_bundle, verify_bundle
from .config import CONFIG_FILE, ConfigError, config_override_path, effective_config_path, load
from .modelstore import MODEL_FILES, ModelStore, self_test

__all__ = ["UpdateSettings", "config_override_path", "effective_config_path", "Updater", "UpdateError",
           "ModelStore", "verify_bundle", "read_bundle", "load_public_key", "self_test", "link_reporter",
           "staff_override_path"]

log = logging.getLogger("edge.update")



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
            manifest = manifest or peek_manifest(payload)
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


def _now() -> datetime:
    return datetime.now(timezone.utc)


def link_reporter(link) -> Callable[[UpdateResult], None]:
    """Report update results on the device's ``update-result`` topic through the link."""
    return lambda result: link.publish(topics.UPDATE_RESULT, result.model_dump_json())
