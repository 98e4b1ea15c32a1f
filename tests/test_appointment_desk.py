"""The kiosk appointment with real parts: replay camera, quality gate, the shipped model, sealed outbox.

A two-lesion referral from sign-in to submit: one CaseHeaderV2 per lesion in the outbox as one
group, the photographer on every case and in the audit log, no patient identifier in any log
line or file name. Then each kind of bad input gets its own message and changes nothing.
"""

from __future__ import annotations

import logging
import os
from datetime import date, timedelta

import cv2
import pytest

from edge.appointment import AppointmentError, NotSignedIn, SignInError
from edge.camera.synth import degrade_blur, encode_jpeg, lesion_image
from edge.service import KioskService
from tests.appointment_kit import (PHOTOGRAPHER, PIN, STAFF, appointment_config, fill_details, photograph,
                                   synthetic_nhs_number)
from tests.test_kiosk_service import MODEL_DIR
from wire.codec import decode_case
from wire.referral import CaseHeaderV2, format_nhs_number

pytestmark = pytest.mark.skipif(not (MODEL_DIR / "manifest.json").exists(), reason="no model in models/lesion yet")

UBRN = "123456789012"


def identifiers_in_names(root, *needles: str) -> list[str]:
    """Paths under ``root`` whose name contains one of ``needles``."""
    hits = []
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            if any(n in name for n in needles):
                hits.append(os.path.join(dirpath, name))
    return hits


def test_two_lesion_referral_from_sign_in_to_submit(tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    nhs = synthetic_nhs_number(3)
    with KioskService(appointment_config(tmp_path), with_link=False) as svc:
        desk = svc.desk
        assert [m.staff_id for m in desk.roster()] == [s[0] for s in STAFF]
        assert desk.sign_in(PHOTOGRAPHER, PIN).name == "Alex Carter"
        appt = fill_details(desk, nhs=format_nhs_number(nhs), reference="1234 5678 9012")
        assert appt.details_done and appt.ai_allowed and appt.nhs_number == nhs
        assert appt.referral["reference"] == UBRN and appt.referral["reference_kind"] == "ubrn"
        desk.add_lesion(PHOTOGRAPHER, site="anterior torso", laterality="left", detail="below left nipple",
                        map_side="front", map_x=0.42, map_y=0.38, size_mm="6,5",
                        history={"changed": True, "duration": "3-12-months",
                                 "checklist": {"change_in_size": True, "irregular_colour": True}})
        desk.add_lesion(PHOTOGRAPHER, site="head/neck", laterality="right")
        assert desk.missing() == [f"L{i}: take the {v} photograph." for i in (1, 2)
                                  for v in ("dermoscopic", "close-up", "regional")]
        shots = {i: photograph(desk, i) for i in (1, 2)}
        assert desk.missing() == []
        retake = desk.capture(PHOTOGRAPHER, 2, "close-up")          # a retake: shot 2 of the view
        assert retake.shot_no == 2
        desk.select(PHOTOGRAPHER, 2, "close-up", 1)                 # ... but the first one is sent
        stored = desk.submit(PHOTOGRAPHER)
        assert desk.current() is None
        assert [h.lesion.label for h in stored] == ["L1", "L2"] and stored[0].seq + 1 == stored[1].seq
        assert svc.outbox.counts()["queued"] == 2
        cases = {h.lesion.index: decode_case(svc.outbox.payload(str(h.case_id))) for h in stored}
        entries = desk.audit.entries(referral_id=appt.referral_id)
        names = os.listdir(svc.cfg.data_dir) + os.listdir(svc.cfg.data_dir / "images")
    for index, (header, images) in cases.items():
        assert isinstance(header, CaseHeaderV2)
        assert header.photographer == PHOTOGRAPHER and header.referral.referral_id == appt.referral_id
        assert header.referral.lesion_count == 2 and header.referral.reference == UBRN
        assert header.patient.nhs_number == nhs and header.patient.date_of_birth == date(1950, 2, 1)
        assert header.patient.fitzpatrick == "III" and not header.full_review_required
        assert header.consents.photography.given and header.consents.photography.by == PHOTOGRAPHER
        assert not header.consents.teaching.given
        assert [m.view for m in header.images] == ["dermoscopic", "close-up", "regional"]
        assert [m.sha256 for m in header.images] == [s.sha256 for s in shots[index]]
        assert header.ai == "done" and header.classification == shots[index][0].classification is not None
        assert [len(b) for b in images] == [m.length for m in header.images]
    lesion1 = cases[1][0].lesion
    assert lesion1.location.site.value == "anterior torso" and lesion1.location.laterality == "left"
    assert lesion1.location.detail == "below left nipple" and lesion1.size_mm == 6.5
    assert lesion1.history.seven_point_score == 4 and lesion1.on_referral
    # the audit log: every step with the photographer's id; the retake is a retake
    actions = [(e.action, e.lesion, e.view, e.shot) for e in entries]
    assert ("retake", 2, "close-up", 2) in actions and ("select", 2, "close-up", 1) in actions
    assert sum(a[0] == "capture" for a in actions) == 6 and sum(a[0] == "submit" for a in actions) == 2
    assert {e.staff_id for e in entries} == {PHOTOGRAPHER}
    assert [a[0] for a in actions[:5]] == ["open", "patient", "skin-type", "referral", "consent"]
    # no patient identifier in a log line or a file name
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert str(appt.referral_id) in text
    for needle in (nhs, format_nhs_number(nhs), UBRN, "01/02/1950", "1950-02-01"):
        assert needle not in text
        assert needle not in " ".join(e.detail for e in entries)
    assert not identifiers_in_names(tmp_path, nhs, UBRN)
    assert "audit.db" in names


def test_nhs_number_and_dates_each_get_their_own_message(tmp_path):
    valid = synthetic_nhs_number(1)
    wrong_check = valid[:9] + str((int(valid[9]) + 1) % 10)
    tomorrow = (date.today() + timedelta(days=1)).strftime("%d/%m/%Y")
    with KioskService(appointment_config(tmp_path), with_link=False) as svc:
        desk = svc.desk
        with pytest.raises(NotSignedIn, match="Sign in"):
            desk.open(PHOTOGRAPHER)
        desk.sign_in(PHOTOGRAPHER, PIN)
        desk.open(PHOTOGRAPHER)
        with pytest.raises(AppointmentError, match="already open"):
            desk.open(PHOTOGRAPHER)

        def refused(call, *args, field: str, match: str):
            with pytest.raises(AppointmentError, match=match) as exc:
                call(PHOTOGRAPHER, *args)
            assert exc.value.field == field
            return str(exc.value)

        short = refused(desk.set_patient, valid[:9], "01/02/1950", "male", field="nhs_number", match="10 digits")
        check = refused(desk.set_patient, wrong_check, "01/02/1950", "male", field="nhs_number", match="check digit")
        assert "has 9" in short and short != check
        refused(desk.set_patient, valid + "1", "01/02/1950", "male", field="nhs_number", match="has 11")
        refused(desk.set_patient, "94x4765919", "01/02/1950", "male", field="nhs_number", match="digits only")
        refused(desk.set_patient, valid, tomorrow, "male", field="date_of_birth", match="in the future")
        refused(desk.set_patient, valid, "31/02/1990", "male", field="date_of_birth", match="not a real date")
        refused(desk.set_patient, valid, "", "male", field="date_of_birth", match="Enter the date of birth")
        refused(desk.set_patient, valid, "1/2/50", "male", field="date_of_birth", match="DD/MM/YYYY")
        refused(desk.set_patient, valid, "01/02/1850", "male", field="date_of_birth", match="130 years")
        refused(desk.set_patient, valid, "01/02/1950", "robot", field="sex", match="sex")
        assert desk.current().nhs_number is None                       # nothing was kept
        spaced = f"{valid[:3]} {valid[3:6]} {valid[6:]}"
        assert desk.set_patient(PHOTOGRAPHER, spaced, "01021950", "not-known").nhs_number == valid
        refused(desk.set_skin_type, "VII", field="fitzpatrick", match="Fitzpatrick I to VI")
        assert desk.set_skin_type(PHOTOGRAPHER, "6").fitzpatrick == "VI"
        args = ["A81001", "gp-referral"]
        refused(desk.set_referral, UBRN, "", *args, field="referral_date", match="Enter the referral date")
        refused(desk.set_referral, UBRN, tomorrow, *args, field="referral_date", match="in the future")
        refused(desk.set_referral, UBRN, "01/01/1949", *args, field="referral_date", match="before the patient")
        refused(desk.set_referral, "12345678901", "01/12/2026", *args, field="reference", match="12 digits")
        refused(desk.set_referral, "", "01/12/2026", *args, field="reference", match="Enter the referral reference")
        refused(desk.set_referral, "9434765919 John SMITH", "01/12/2026", *args, field="reference",
                match="without spaces")
        refused(desk.set_referral, f"REF-{valid}", "01/12/2026", *args, field="reference", match="NHS number")
        refused(desk.set_referral, UBRN, "01/12/2026", "A8!", "gp-referral", field="practice_ods", match="ODS")
        refused(desk.set_referral, UBRN, "01/12/2026", "A81001", "walk-in", field="route", match="route")
        assert desk.current().referral is None
        appt = desk.set_referral(PHOTOGRAPHER, "hub/2026-77", "01/12/2026", "a81001", "direct-to-hub")
        assert appt.referral == {"reference": "HUB/2026-77", "reference_kind": "local", "referral_date": "2026-12-01",
                                 "practice_ods": "A81001", "route": "direct-to-hub"}
        with pytest.raises(AppointmentError, match="Finish the appointment's details first"):
            desk.capture(PHOTOGRAPHER, 1, "dermoscopic")


def test_lesions_limits_sites_and_a_lesion_added_after_photographing(tmp_path):
    with KioskService(appointment_config(tmp_path, {"max_lesions": 2}), with_link=False) as svc:
        desk = svc.desk
        desk.sign_in(PHOTOGRAPHER, PIN)
        fill_details(desk)
        with pytest.raises(AppointmentError, match="body map") as exc:
            desk.add_lesion(PHOTOGRAPHER, site="elbow-ish", laterality="left")
        assert exc.value.field == "site"
        with pytest.raises(AppointmentError, match="side"):
            desk.add_lesion(PHOTOGRAPHER, site="upper extremity", laterality="up")
        with pytest.raises(AppointmentError, match="millimetres"):
            desk.add_lesion(PHOTOGRAPHER, site="upper extremity", laterality="left", size_mm="0")
        with pytest.raises(AppointmentError, match="tap the map"):
            desk.add_lesion(PHOTOGRAPHER, site="upper extremity", laterality="left", map_side="front", map_x=1.7)
        with pytest.raises(AppointmentError, match="History"):
            desk.add_lesion(PHOTOGRAPHER, site="upper extremity", laterality="left", history={"checklist": {"x": 1}})
        assert desk.current().lesions == []
        first = desk.add_lesion(PHOTOGRAPHER, site="upper extremity", laterality="left")
        assert first.label == "L1" and first.on_referral
        desk.capture(PHOTOGRAPHER, 1, "dermoscopic")
        with pytest.raises(AppointmentError, match="give the reason"):
            desk.add_lesion(PHOTOGRAPHER, site="posterior torso", laterality="midline")
        added = desk.add_lesion(PHOTOGRAPHER, site="posterior torso", laterality="midline",
                                added_reason="patient pointed it out")
        assert added.label == "L2" and not added.on_referral and added.added_reason == "patient pointed it out"
        with pytest.raises(AppointmentError, match="the most this kiosk takes"):
            desk.add_lesion(PHOTOGRAPHER, site="lower extremity", laterality="right", added_reason="another")
        changed = desk.update_lesion(PHOTOGRAPHER, 1, laterality="right", size_mm=4)
        assert changed.location.laterality == "right" and changed.location.site.value == "upper extremity"
        assert changed.size_mm == 4.0
        desk.remove_lesion(PHOTOGRAPHER, 1)
        left = desk.current().lesions
        assert [(les.label, les.location.site.value) for les in left] == [("L1", "posterior torso")]
        assert os.listdir(desk.store.folder(desk.current().referral_id)) == ["state"]   # L1's shot file is gone
        assert [e.action for e in desk.audit.entries()][-1] == "lesion-remove"


def test_failed_shot_is_sent_only_with_a_reason_that_travels_with_it(tmp_path):
    folder = tmp_path / "replay"
    folder.mkdir()
    sharp = lesion_image(800, 600, seed=5)
    cv2.imwrite(str(folder / "a_blurred.jpg"), degrade_blur(sharp, 12))
    (folder / "b_sharp.jpg").write_bytes(encode_jpeg(sharp))
    cfg = appointment_config(tmp_path, {"required_views": ["dermoscopic"]},
                             camera={"replay": {"folder": str(folder)}})
    with KioskService(cfg, with_link=False) as svc:
        desk = svc.desk
        desk.sign_in(PHOTOGRAPHER, PIN)
        fill_details(desk)
        desk.add_lesion(PHOTOGRAPHER, site="lower extremity", laterality="left")
        bad = desk.capture(PHOTOGRAPHER, 1, "dermoscopic")
        assert not bad.passed and bad.selected and not bad.sendable
        assert desk.missing() == ["L1: the dermoscopic photograph failed the quality check: retake it, "
                                  "or choose a reason to send it as it is."]
        with pytest.raises(AppointmentError, match="Not ready to send: L1: the dermoscopic"):
            desk.submit(PHOTOGRAPHER)
        with pytest.raises(AppointmentError, match="Choose why") as exc:
            desk.override(PHOTOGRAPHER, 1, "dermoscopic", 1, "bad-luck")
        assert exc.value.field == "reason"
        with pytest.raises(AppointmentError, match="few words"):
            desk.override(PHOTOGRAPHER, 1, "dermoscopic", 1, "other")
        good = desk.capture(PHOTOGRAPHER, 1, "dermoscopic")        # the retake passes and is selected
        assert good.passed and good.selected and desk.current().lesions[0].chosen("dermoscopic") == [good]
        with pytest.raises(AppointmentError, match="needs no reason"):
            desk.override(PHOTOGRAPHER, 1, "dermoscopic", 2, "other", "x")
        over = desk.override(PHOTOGRAPHER, 1, "dermoscopic", 1, "other", "lesion under a dressing edge")
        assert over.selected and over.override.by == PHOTOGRAPHER     # the override also picks it to send
        [header] = desk.submit(PHOTOGRAPHER)
        [image] = header.images
        assert image.sha256 == bad.sha256 and not image.quality.ok and image.shot == 1
        assert image.override.reason == "other" and image.override.text == "lesion under a dressing edge"
        stored, _ = decode_case(svc.outbox.payload(str(header.case_id)))
        assert stored.images[0].override == image.override
        assert ("override", "dermoscopic", 1) in [(e.action, e.view, e.shot) for e in desk.audit.entries()]


def test_send_all_shots_and_ai_declined_runs_no_classifier(tmp_path):
    cfg = appointment_config(tmp_path, {"send_shots": "all", "required_views": ["dermoscopic", "close-up"]})
    with KioskService(cfg, with_link=False) as svc:
        desk = svc.desk
        desk.sign_in(PHOTOGRAPHER, PIN)
        appt = fill_details(desk, ai=False, fitzpatrick="V")
        assert not appt.ai_allowed and appt.consents.ai_analysis.by == PHOTOGRAPHER
        desk.add_lesion(PHOTOGRAPHER, site="palms/soles", laterality="left")
        latency = svc.classifier_latency_ms
        shots = [desk.capture(PHOTOGRAPHER, 1, "dermoscopic") for _ in range(2)]
        shots += photograph(desk, 1, views=("close-up",))
        assert all(s.classification is None for s in shots) and svc.classifier_latency_ms == latency
        assert all(s.selected for s in shots)
        with pytest.raises(AppointmentError, match="every photograph"):
            desk.select(PHOTOGRAPHER, 1, "dermoscopic", 1)
        [header] = desk.submit(PHOTOGRAPHER)
    assert header.ai == "declined" and header.classification is None
    assert [(m.view, m.shot) for m in header.images] == [("dermoscopic", 1), ("dermoscopic", 2), ("close-up", 1)]
    assert all(m.classification is None for m in header.images)
    assert header.patient.skin_type_unvalidated and header.full_review_required


def test_photography_refused_ends_the_appointment_and_keeps_nothing(tmp_path):
    with KioskService(appointment_config(tmp_path), with_link=False) as svc:
        desk = svc.desk
        desk.sign_in(PHOTOGRAPHER, PIN)
        appt = fill_details(desk)
        folder = desk.store.folder(appt.referral_id)
        assert folder.exists()
        with pytest.raises(AppointmentError, match="nothing was kept") as exc:
            desk.set_consents(PHOTOGRAPHER, photography=False, ai_analysis=True, teaching=True)
        assert "hub coordinator" in str(exc.value) and exc.value.field == "photography"
        assert desk.current() is None and not folder.exists()
        assert desk.audit.entries()[-1].action == "discard"
        # withdrawing AI consent later drops the results already computed
        appt = fill_details(desk)
        desk.add_lesion(PHOTOGRAPHER, site="head/neck", laterality="midline")
        assert desk.capture(PHOTOGRAPHER, 1, "dermoscopic").classification is not None
        appt = desk.set_consents(PHOTOGRAPHER, photography=True, ai_analysis=False, teaching=False)
        assert appt.lesions[0].shots["dermoscopic"][0].classification is None
        assert appt.consents.photography.at < appt.consents.ai_analysis.at    # only the changed answer is re-dated
        appt = desk.set_consents(PHOTOGRAPHER, photography=True, ai_analysis=True, teaching=False)
        assert appt.lesions[0].shots["dermoscopic"][0].classification is not None
        desk.discard(PHOTOGRAPHER, "patient-left")
        assert desk.current() is None


def test_a_referral_is_submitted_once(tmp_path):
    nhs, other = synthetic_nhs_number(4), synthetic_nhs_number(5)
    with KioskService(appointment_config(tmp_path, {"required_views": ["dermoscopic"]}), with_link=False) as svc:
        desk = svc.desk
        desk.sign_in(PHOTOGRAPHER, PIN)
        fill_details(desk, nhs=nhs)
        desk.add_lesion(PHOTOGRAPHER, site="anterior torso", laterality="left")
        photograph(desk, 1, views=("dermoscopic",))
        desk.submit(PHOTOGRAPHER)
        desk.open(PHOTOGRAPHER)
        desk.set_patient(PHOTOGRAPHER, nhs, "01/02/1950", "female")
        with pytest.raises(AppointmentError, match="already sent from this kiosk") as exc:
            desk.set_referral(PHOTOGRAPHER, UBRN, "20/11/2026", "A81001", "gp-referral")
        assert exc.value.field == "reference"
        desk.set_referral(PHOTOGRAPHER, "987654321098", "20/11/2026", "A81001", "gp-referral")
        with pytest.raises(AppointmentError, match="already sent"):      # the same pair reached the other way
            desk.set_referral(PHOTOGRAPHER, UBRN, "20/11/2026", "A81001", "gp-referral")
        desk.discard(PHOTOGRAPHER, "test")
        fill_details(desk, nhs=other)                 # the same reference for another patient is another referral
        assert svc.outbox.counts()["queued"] == 1
        db = (svc.cfg.data_dir / "outbox.sqlite3").read_bytes() + (svc.cfg.data_dir / "audit.db").read_bytes()
    assert nhs.encode() not in db and UBRN.encode() not in db          # only an HMAC of the pair is kept


def test_pin_lockout_survives_a_restart_and_is_audited(tmp_path):
    cfg = appointment_config(tmp_path)
    with KioskService(cfg, with_link=False) as svc:
        desk = svc.desk
        with pytest.raises(SignInError, match="not on this kiosk's list"):
            desk.sign_in("nobody", "1234")
        for left in (4, 3, 2, 1):
            with pytest.raises(SignInError, match=f"{left} more tr"):
                desk.sign_in(PHOTOGRAPHER, "0000")
        with pytest.raises(SignInError, match="locked for 5 minutes") as exc:
            desk.sign_in(PHOTOGRAPHER, "0000")
        assert exc.value.locked_until is not None and exc.value.field == "pin"
        desk.sign_in("ph-sam", "1357")                         # another photographer is not locked
    with KioskService(cfg, with_link=False) as svc:            # a restart does not lift the lock
        with pytest.raises(SignInError, match="locked for 5 more minute"):
            svc.desk.sign_in(PHOTOGRAPHER, PIN)
        assert svc.desk.signed_in("ph-sam") is None              # sign-ins do not survive a restart
        actions = [(e.staff_id, e.action) for e in svc.desk.audit.entries()]
    assert actions.count((PHOTOGRAPHER, "sign-in-refused")) == 5 and (PHOTOGRAPHER, "locked") in actions
    assert ("unknown", "sign-in-refused") in actions and ("ph-sam", "sign-in") in actions


def test_classifier_shown_only_when_configured_and_signed_in(tmp_path):
    with KioskService(appointment_config(tmp_path / "a"), with_link=False) as svc:
        svc.desk.sign_in(PHOTOGRAPHER, PIN)
        assert not svc.desk.can_show_classifier(PHOTOGRAPHER)
    with KioskService(appointment_config(tmp_path / "b", {"show_classifier": True}), with_link=False) as svc:
        assert not svc.desk.can_show_classifier(PHOTOGRAPHER)
        svc.desk.sign_in(PHOTOGRAPHER, PIN)
        assert svc.desk.can_show_classifier(PHOTOGRAPHER)
        svc.desk.sign_out(PHOTOGRAPHER, "idle")
        assert not svc.desk.can_show_classifier(PHOTOGRAPHER)
        assert svc.desk.audit.entries()[-1].detail == "idle"
