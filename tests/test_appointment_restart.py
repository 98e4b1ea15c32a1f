"""A kiosk restart mid-appointment loses nothing: the open appointment is sealed on disk and restored.

Real restarts of KioskService (stop, then a new service on the same data folder), the real
at-rest key, the replay camera.
"""

from __future__ import annotations

import dataclasses
import os

import pytest

from edge.atrest import MAGIC
from edge.service import KioskService
from tests.appointment_kit import PHOTOGRAPHER, PIN, appointment_config, fill_details, photograph, synthetic_nhs_number
from tests.test_kiosk_service import MODEL_DIR

pytestmark = pytest.mark.skipif(not (MODEL_DIR / "manifest.json").exists(), reason="no model in models/lesion yet")


def test_an_open_appointment_survives_a_restart_sealed(tmp_path, caplog):
    nhs = synthetic_nhs_number(7)
    cfg = appointment_config(tmp_path)
    with KioskService(cfg, with_link=False) as svc:
        svc.desk.sign_in(PHOTOGRAPHER, PIN)
        fill_details(svc.desk, nhs=nhs, reference="RB-2026/118")
        svc.desk.add_lesion(PHOTOGRAPHER, site="anterior torso", laterality="left", size_mm=5)
        svc.desk.add_lesion(PHOTOGRAPHER, site="upper extremity", laterality="right")
        shots = photograph(svc.desk, 1)
        svc.desk.capture(PHOTOGRAPHER, 2, "dermoscopic")
        before = svc.desk.current()
        jpegs = {s.view: svc.desk.shot_jpeg(1, s.view, s.shot_no) for s in shots}
        folder = svc.desk.store.folder(before.referral_id)
    # on disk: named by the kiosk's UUID and counters only, every file sealed
    assert sorted(os.listdir(folder)) == ["shot-0001", "shot-0002", "shot-0003", "shot-0004", "state"]
    for name in os.listdir(folder):
        blob = (folder / name).read_bytes()
        assert blob.startswith(MAGIC) and nhs.encode() not in blob and b"RB-2026/118" not in blob
        assert b"\xff\xd8\xff" not in blob[:64]                           # no plaintext JPEG
    with KioskService(cfg, with_link=False) as svc:                        # the restart
        after = svc.desk.current()
        assert after == before
        assert {v: svc.desk.shot_jpeg(1, v, 1) for v in jpegs} == jpegs
        assert svc.desk.audit.entries()[-1].action == "restored"
        svc.desk.sign_in(PHOTOGRAPHER, PIN)                                # sign in again, carry on
        photograph(svc.desk, 2, views=("close-up", "regional"))
        stored = svc.desk.submit(PHOTOGRAPHER)
        assert [h.referral.referral_id for h in stored] == [before.referral_id] * 2
        assert stored[0].images[0].sha256 == shots[0].sha256
        assert not folder.exists()
    with KioskService(cfg, with_link=False) as svc:                        # nothing left to restore
        assert svc.desk.current() is None
    assert nhs not in caplog.text and "RB-2026/118" not in caplog.text


def test_an_appointment_sealed_with_another_key_is_set_aside_not_opened(tmp_path, caplog):
    cfg = appointment_config(tmp_path)
    with KioskService(cfg, with_link=False) as svc:
        svc.desk.sign_in(PHOTOGRAPHER, PIN)
        appt = fill_details(svc.desk)
        folder = svc.desk.store.folder(appt.referral_id)
    key = tmp_path / "kiosk.key"
    assert key.exists()
    key.write_bytes(os.urandom(32))                                         # another key
    with KioskService(cfg, with_link=False) as svc:
        assert svc.desk.current() is None
    assert not folder.exists() and folder.with_name(folder.name + ".unreadable").exists()
    assert "could not be restored" in caplog.text


def test_an_appointment_submitted_just_before_a_crash_is_not_reopened(tmp_path):
    cfg = appointment_config(tmp_path, {"required_views": ["dermoscopic"]})
    with KioskService(cfg, with_link=False) as svc:
        desk = svc.desk
        desk.sign_in(PHOTOGRAPHER, PIN)
        fill_details(desk)
        desk.add_lesion(PHOTOGRAPHER, site="head/neck", laterality="left")
        photograph(desk, 1, views=("dermoscopic",))
        before = desk.current()
        jpeg = desk.shot_jpeg(1, "dermoscopic", 1)
        [case] = desk.submit(PHOTOGRAPHER)
        # a crash after the outbox committed the referral but before its folder was removed
        desk.store.save(before)
        desk.store.put_shot(dataclasses.replace(before, next_file=1), jpeg)
        assert desk.store.folder(before.referral_id).exists()
    with KioskService(cfg, with_link=False) as svc:
        assert svc.desk.current() is None and not svc.desk.store.folder(before.referral_id).exists()
        assert svc.outbox.get(str(case.case_id)).state == "queued"
