"""Staff rosters arrive in signed config bundles (staff.json) and take effect without a restart."""

from __future__ import annotations

import json

import pytest

from dashboard import updates
from edge.appointment import SignInError
from edge.service import KioskService
from edge.update import Updater, staff_override_path
from tests.appointment_kit import PHOTOGRAPHER, PIN, appointment_config, roster
from tests.test_kiosk_service import MODEL_DIR

pytestmark = pytest.mark.skipif(not (MODEL_DIR / "manifest.json").exists(), reason="no model in models/lesion yet")

NEW_STAFF = [("ph-kim", "Kim Lee", "9753")]


@pytest.fixture
def kiosk(tmp_path):
    """A kiosk (no link) with an update key, its Updater, and the signing key."""
    priv, pub = updates.make_key(tmp_path / "keys")
    cfg = appointment_config(tmp_path, updates={"public_key_file": str(pub)})
    with KioskService(cfg, with_link=False) as svc:
        yield svc, Updater(svc, cfg.updates), updates.load_private_key(priv)


def test_a_staff_only_bundle_replaces_the_roster_at_once(kiosk):
    svc, updater, key = kiosk
    svc.desk.sign_in(PHOTOGRAPHER, PIN)
    blob = roster(NEW_STAFF, version="r2").model_dump_json().encode()
    result = updater.apply(updates.build_bundle("config", "staff-r2", {"staff.json": blob}, key, [svc.cfg.device_id]))
    assert result.status == "applied" and "staff roster r2 (1 staff) in use" in result.reason, result
    assert not updater.restart_needed.is_set()                       # no restart for a roster
    assert staff_override_path(svc.cfg.data_dir).read_bytes() == blob
    assert [m.staff_id for m in svc.desk.roster()] == ["ph-kim"]
    assert svc.desk.signed_in(PHOTOGRAPHER) is None                  # who left the roster is signed out
    with pytest.raises(SignInError, match="not on this kiosk's list"):
        svc.desk.sign_in(PHOTOGRAPHER, PIN)
    assert svc.desk.sign_in("ph-kim", "9753").name == "Kim Lee"


def test_a_bad_roster_is_refused_and_the_old_one_stays(kiosk):
    svc, updater, key = kiosk
    good = json.loads(roster(NEW_STAFF).model_dump_json())
    clear_pin = {**good, "staff": [{**good["staff"][0], "pin_hash": "9753" * 6}]}
    twice = {**good, "staff": good["staff"] * 2}
    for bad, words in ((clear_pin, "never a PIN"), (twice, "listed twice"), ({"version": "x"}, "issued_at")):
        bundle = updates.build_bundle("config", "bad", {"staff.json": json.dumps(bad).encode()}, key)
        result = updater.apply(bundle)
        assert result.status == "refused" and "staff.json refused" in result.reason and words in result.reason, result
    result = updater.apply(updates.build_bundle("config", "odd", {"notes.txt": b"hi"}, key))
    assert result.status == "refused" and "kiosk.toml and/or staff.json" in result.reason
    assert not staff_override_path(svc.cfg.data_dir).exists()
    assert svc.desk.sign_in(PHOTOGRAPHER, PIN).staff_id == PHOTOGRAPHER   # the seed roster still in force


def test_a_bundle_with_both_files_stores_both(kiosk, tmp_path):
    svc, updater, key = kiosk
    toml = (f'device_id = "{svc.cfg.device_id}"\nsite = "{svc.cfg.site}"\nlog_level = "DEBUG"\n'
            f'data_dir = "{svc.cfg.data_dir}"\n[appointment]\nmax_lesions = 3\n')
    blob = roster(NEW_STAFF, version="r3").model_dump_json().encode()
    result = updater.apply(updates.build_bundle("config", "both", {"kiosk.toml": toml.encode(), "staff.json": blob},
                                                key))
    assert result.status == "applied" and "r3" in result.reason and "restarts" in result.reason
    assert updater.restart_needed.is_set() and [m.staff_id for m in svc.desk.roster()] == ["ph-kim"]
    # a bundle whose kiosk.toml is wrong stores neither file
    bad = toml.replace("max_lesions = 3", "max_lesions = 99")
    other = roster([("ph-zed", "Zed Ahmed", "1111")], version="r4").model_dump_json().encode()
    result = updater.apply(updates.build_bundle("config", "bad", {"kiosk.toml": bad.encode(), "staff.json": other},
                                                key))
    assert result.status == "refused" and "appointment.max_lesions" in result.reason
    assert [m.staff_id for m in svc.desk.roster()] == ["ph-kim"]
