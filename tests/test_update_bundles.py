"""Signed updates end to end: centre signs and publishes over a real Mosquitto, the kiosk verifies,
swaps, self-tests, reports (recorded by the real ingest), refuses what is not right and rolls back."""

from __future__ import annotations

import functools
import io
import json
import shutil
import tarfile
import time
from pathlib import Path

import pytest

from dashboard import fleet, updates
from dashboard.ingest import Ingest
from dashboard.store import Store
from edge.camera.synth import encode_jpeg, lesion_image
from edge.config import KioskConfig
from edge.service import KioskService
from edge.update import config_override_path, effective_config_path
from tests import polling
from tests.centre import centre_config

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "models" / "lesion"
SITE, DEVICE = "hub-u", "kiosk-u1"
pytestmark = pytest.mark.skipif(not (SHIPPED / "manifest.json").exists(), reason="no shipped model")


wait_for = functools.partial(polling.wait_for, timeout=20.0, step=0.05)


def new_model(tmp_path: Path, version: str, **output) -> Path:
    """A copy of the shipped model with another version (and optionally output spec) in its manifest."""
    d = tmp_path / f"model-{version}"
    d.mkdir()
    shutil.copy(SHIPPED / "model.tflite", d / "model.tflite")
    m = json.loads((SHIPPED / "manifest.json").read_text())
    m["version"] = version
    m["output"].update(output)
    (d / "manifest.json").write_text(json.dumps(m, indent=2))
    return d


def kiosk_config(tmp_path: Path, broker, pub: Path) -> dict:
    return {
        "device_id": DEVICE, "site": SITE, "data_dir": str(tmp_path / "kiosk"),
        "model_dir": str(tmp_path / "kiosk" / "models" / "lesion"), "model_seed_dir": str(SHIPPED),
        "classifier_threads": 1, "broker": {"url": broker.url, "keepalive": 10},
        "camera": {"source": "replay", "replay": {"width": 640, "height": 480, "seed": 1}},
        "retention": {"min_free_mb": 0}, "health": {"interval_s": 60},
        "updates": {"public_key_file": str(pub)},
    }


@pytest.fixture
def rig(broker, tmp_path):
    """Keys, a running ingest and a running kiosk service whose model folder is managed (seeded)."""
    priv, pub = updates.make_key(tmp_path / "keys")
    centre = centre_config(tmp_path, broker)
    ingest = Ingest(centre).start()
    assert ingest.wait_ready(10)
    cfg = KioskConfig.model_validate(kiosk_config(tmp_path, broker, pub))
    service = KioskService(cfg).start()
    wait_for(lambda: service.link.connected)
    time.sleep(0.3)   # the update subscription is in place once connected; give SUBACK a moment
    yield service, centre, updates.load_private_key(priv), tmp_path
    service.stop()
    ingest.stop()


def send(service, centre, bundle: bytes):
    """Publish through the centre's CLI code path and wait for the kiosk's answer."""
    before = len(service.updater.results)
    updates.publish(centre.broker, SITE, DEVICE, bundle)
    try:
        m = updates.bundle_manifest(bundle)
    except Exception:
        m = None            # garbage: nothing to record
    if m is not None:
        store = Store(centre.storage.database, centre.storage.images_dir)
        try:
            fleet.record_update_sent(store, m, SITE, DEVICE)
        finally:
            store.close()
    wait_for(lambda: len(service.updater.results) > before)
    return service.updater.results[-1]


def centre_row(centre, bundle_id) -> dict:
    store = Store(centre.storage.database, centre.storage.images_dir)
    try:
        rows = {r["bundle_id"]: r for r in fleet.recent_updates(store, 50)}
        return rows.get(str(bundle_id), {})
    finally:
        store.close()


def classifies(service) -> str:
    return service.classify(encode_jpeg(lesion_image(480, 360, seed=5))).model


def retar(bundle: bytes, change) -> bytes:
    """Rebuild a bundle tar with ``change(files)`` applied to its {name: bytes}."""
    with tarfile.open(fileobj=io.BytesIO(bundle)) as tar:
        files = {m.name: tar.extractfile(m).read() for m in tar}
    change(files)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, blob in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
    return buf.getvalue()


def resign(bundle: bytes, manifest: dict, key) -> bytes:
    """The bundle with ``manifest`` as its bundle.json, signed again with ``key``."""
    body = json.dumps(manifest).encode()
    return retar(bundle, lambda f: f.update({"bundle.json": body, "bundle.sig": key.sign(body)}))


def test_bad_bundles_are_refused_and_the_old_model_keeps_serving(rig):
    service, centre, key, tmp = rig
    old = service.model_version
    target = Path(service.cfg.model_dir).resolve()
    good = updates.sign_model(new_model(tmp, "lesion-r2"), key, [DEVICE])

    def flip_byte(files):
        blob = bytearray(files["model.tflite"])
        blob[len(blob) // 2] ^= 0xFF
        files["model.tflite"] = bytes(blob)

    other_key = updates.load_private_key(updates.make_key(tmp / "other-keys")[0])
    cases = [
        (retar(good, flip_byte), "SHA-256 of model.tflite does not match"),
        (retar(good, lambda f: f.pop("bundle.sig")), "unsigned bundle"),
        (updates.sign_model(new_model(tmp, "lesion-evil"), other_key), "bad signature"),
        (updates.sign_model(new_model(tmp, "lesion-r3"), key, ["kiosk-other"]), "not for kiosk-u1"),
        (b"not a tar at all" * 10, "not a bundle"),
    ]
    for bundle, reason in cases:
        result = send(service, centre, bundle)
        assert result.status == "refused" and reason in result.reason, result
        assert service.model_version == old and result.serving == old
        assert Path(service.cfg.model_dir).resolve() == target
        assert classifies(service) == old
    # the centre recorded the refusal with its reason
    bid = updates.bundle_manifest(cases[2][0]).bundle_id
    row = wait_for(lambda: centre_row(centre, bid).get("status") == "refused" and centre_row(centre, bid))
    assert "bad signature" in row["reason"]


def test_good_model_bundle_is_applied_self_tested_and_reported(rig):
    service, centre, key, tmp = rig
    old_target = Path(service.cfg.model_dir).resolve()
    bundle = updates.sign_model(new_model(tmp, "lesion-r2"), key, [DEVICE])
    t0 = time.monotonic()
    result = send(service, centre, bundle)
    print(f"\nmodel bundle of {len(bundle) / 1e6:.1f} MB published -> applied and self-tested in "
          f"{time.monotonic() - t0:.2f} s")
    assert result.status == "applied" and result.reason == "self-test passed", result
    assert result.serving == "lesion-r2" == service.model_version
    assert classifies(service) == "lesion-r2"
    assert Path(service.cfg.model_dir).is_symlink() and Path(service.cfg.model_dir).resolve() != old_target
    assert old_target.exists()                                 # kept for a manual rollback
    m = updates.bundle_manifest(bundle)
    row = wait_for(lambda: centre_row(centre, m.bundle_id).get("status") == "applied" and centre_row(centre, m.bundle_id))
    assert row["serving"] == "lesion-r2" and row["sent_at"]
    # the retained status carries the new model to the centre's device table
    store = Store(centre.storage.database, centre.storage.images_dir)
    try:
        wait_for(lambda: [d for d in store.list_devices() if d["model_version"] == "lesion-r2"])
    finally:
        store.close()
    # the same bundle again is a replay; an older signed bundle is a downgrade
    again = send(service, centre, bundle)
    assert again.status == "refused" and "already applied" in again.reason
    older = updates.sign_model(new_model(tmp, "lesion-r1"), key, [DEVICE])
    with tarfile.open(fileobj=io.BytesIO(older)) as tar:
        files = {m.name: tar.extractfile(m).read() for m in tar}
    backdated = updates.build_bundle("model", "lesion-r1", {k: v for k, v in files.items()
                                                             if not k.startswith("bundle.")}, key, [DEVICE])
    body = json.loads(updates.bundle_manifest(backdated).model_dump_json())
    body["created_at"] = "2020-01-01T00:00:00Z"
    assert send(service, centre, resign(backdated, body, key)).reason.endswith("(downgrade refused)")
    assert service.model_version == "lesion-r2"


def test_model_failing_its_self_test_is_rolled_back(rig):
    service, centre, key, tmp = rig
    old, old_target = service.model_version, Path(service.cfg.model_dir).resolve()
    # logits declared as probabilities: it loads, but its outputs do not sum to 1
    bundle = updates.sign_model(new_model(tmp, "lesion-broken", kind="probabilities"), key, [DEVICE])
    result = send(service, centre, bundle)
    assert result.status == "rolled-back" and "sum" in result.reason, result
    assert service.model_version == old and Path(service.cfg.model_dir).resolve() == old_target
    assert classifies(service) == old
    assert len(list((old_target.parent).iterdir())) == 1       # the failed version was removed


def test_config_bundle_is_validated_stored_and_used_at_the_next_start(rig, broker):
    service, centre, key, tmp = rig
    new = kiosk_config(tmp, broker, tmp / "keys" / "update-signing.pub")
    new["log_level"] = "DEBUG"
    text = "\n".join(f"{k} = {json.dumps(v)}" for k, v in new.items() if not isinstance(v, dict))
    text += "\n" + "\n".join(f"[{k}]\n" + "\n".join(f"{kk} = {json.dumps(vv)}" for kk, vv in v.items()
                                                      if not isinstance(vv, dict))
                             for k, v in new.items() if isinstance(v, dict) and k != "camera")
    text += '\n[camera]\nsource = "replay"\n'
    cfg_file = tmp / "new-kiosk.toml"
    cfg_file.write_text(text)
    result = send(service, centre, updates.sign_config(cfg_file, key, [DEVICE], "cfg-debug"))
    assert result.status == "applied" and result.version == "cfg-debug", result
    assert service.updater.restart_needed.is_set()
    override = config_override_path(service.cfg.data_dir)
    assert override.read_text() == text
    base = tmp / "base.toml"
    base.write_text(text.replace('"DEBUG"', '"INFO"'))
    assert effective_config_path(base) == override
    # a config for another kiosk is refused by the kiosk even when correctly signed
    wrong = text.replace(f'"{DEVICE}"', '"kiosk-zz"')
    bundle = updates.build_bundle("config", "cfg-wrong", {"kiosk.toml": wrong.encode()}, key, [DEVICE])
    result = send(service, centre, bundle)
    assert result.status == "refused" and "kiosk-zz" in result.reason
    assert override.read_text() == text
    # and an invalid one names the field
    bad = text.replace('log_level = "DEBUG"', 'log_level = "LOUD"')
    result = send(service, centre, updates.build_bundle("config", "cfg-bad", {"kiosk.toml": bad.encode()}, key))
    assert result.status == "refused" and "log_level" in result.reason


def test_signing_refuses_a_model_whose_manifest_does_not_match(tmp_path):
    priv, _ = updates.make_key(tmp_path / "k")
    d = new_model(tmp_path, "x")
    m = json.loads((d / "manifest.json").read_text())
    m["sha256"] = "0" * 64
    (d / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(updates.BundleError, match="not signing"):
        updates.sign_model(d, updates.load_private_key(priv))
    with pytest.raises(updates.BundleError, match="not overwriting"):
        updates.make_key(tmp_path / "k")
    assert oct((tmp_path / "k" / "update-signing.key").stat().st_mode & 0o777) == "0o600"
