"""Signed referrals handed to a real Orthanc (Debian's orthanc + orthanc-dicomweb) as the hospital's PACS.

Read back over Orthanc's REST API: one study per referral with a series per lesion and view, every instance,
the pixel data byte-identical to the kiosk's JPEG; a second export adds nothing; a stopped Orthanc leaves the
referral queued with the reason and it is delivered once Orthanc is back; an Orthanc refusing the objects
gives a failed state with its reason and a retry after recovery completes; C-STORE works as STOW-RS does; a
referral without NHS number gets a clear state and is never sent; every try is audited.
"""

from __future__ import annotations

import time

import pydicom
import pytest

from dashboard import audit, create_app, pacs
from dashboard.dicom import uids
from dashboard.readingconfig import ReadingConfig
from dashboard.store import exports as table
from tests.dashauth import logged_in
from tests.hospital_kit import add_addendum, open_store, signed_referral
from tests.orthanc import Orthanc
from tests.test_reading_reports import sign, with_risk
from tests.test_dicom_objects import unpadded

REFUSE_ALL = "function ReceivedInstanceFilter(dicom, origin, info)\n  return false\nend\n"


@pytest.fixture
def orthanc(tmp_path):
    o = Orthanc(tmp_path / "orthanc").start()
    yield o
    o.stop()


@pytest.fixture
def store(tmp_path):
    s = open_store(tmp_path)
    yield s
    s.close()


def study_of(orthanc, key):
    studies = [orthanc.get(f"/studies/{sid}") for sid in orthanc.get("/studies")]
    return [s for s in studies if s["MainDicomTags"]["StudyInstanceUID"] == uids.study_uid(key)]


def assert_in_orthanc(orthanc, key, cases):
    [study] = study_of(orthanc, key)
    assert study["MainDicomTags"]["AccessionNumber"] == cases[0][0].referral.reference
    assert study["PatientMainDicomTags"]["PatientID"] == cases[0][0].patient.nhs_number
    views = sum(len({m.view for m in h.images}) for h, _ in cases)
    assert len(study["Series"]) == views
    originals = {m.sha256: data for h, ims in cases for m, data in zip(h.images, ims)}
    instances = [i for sid in study["Series"] for i in orthanc.get(f"/series/{sid}")["Instances"]]
    assert len(instances) == len(originals)
    import hashlib
    got = set()
    for iid in instances:
        raw = unpadded(orthanc.get(f"/instances/{iid}/frames/0/raw", raw=True))
        got.add(hashlib.sha256(raw).hexdigest())
        assert raw == originals[hashlib.sha256(raw).hexdigest()]
    assert got == set(originals)
    return study


def test_signoff_sends_the_study_to_orthanc_and_a_second_export_adds_nothing(tmp_path, store, orthanc):
    cfg = orthanc.pacs_config(password_file=orthanc.password_file())
    app = create_app({"DATABASE": str(tmp_path / "c.db"), "IMAGES_DIR": str(tmp_path / "images"), "TESTING": True,
                      "READING": ReadingConfig(audit_share=0.0), "PACS": cfg, "HAND_OVER_TICK_S": 0.3})
    from dashboard import sample
    cases = [(with_risk(h, "benign"), ims) for h, ims in sample.make_referral(51, lesions=2)]
    for h, ims in cases:
        store.save_case(h, ims)
    key = str(cases[0][0].referral.referral_id)
    derm = logged_in(app, "dr.pacs", "dermatologist")
    for h, _ in cases:  # signed on the referral page, as a dermatologist does
        assert sign(derm, key, str(h.case_id)).status_code == 302
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and (table.get(store.conn, key, "pacs") or {}).get("state") != "sent":
        time.sleep(0.2)
    row = table.get(store.conn, key, "pacs")
    assert row["state"] == "sent", row
    assert row["detail"] == "6 of 6 objects stored (stow-rs)"
    assert_in_orthanc(orthanc, key, cases)
    page = derm.get(f"/referrals/{key}").get_data(as_text=True)
    assert 'id="hand-over-pacs" data-state="sent"' in page
    pacs.sender_of(app).stop()
    # a second export (a person asks to send again): the same UIDs, Orthanc keeps one copy
    before = orthanc.get("/statistics")
    assert pacs.queue_referral(store.conn, key, cfg, None, force=True) == ["pacs"]
    assert pacs.flush(store.conn, store.images_dir, cfg, None) == {(key, "pacs"): "sent"}
    after = orthanc.get("/statistics")
    assert (after["CountStudies"], after["CountSeries"], after["CountInstances"]) == \
           (before["CountStudies"], before["CountSeries"], before["CountInstances"]) == (1, 6, 6)
    actions = [e["action"] for e in audit.entries(store.conn, action="export.pacs")]
    assert len(actions) == 2


def test_a_stopped_orthanc_queues_and_then_delivers(store, orthanc):
    cfg = orthanc.pacs_config(password_file=orthanc.password_file())
    key, cases = signed_referral(store, seed=52, lesions=1)
    orthanc.stop()
    pacs.queue_referral(store.conn, key, cfg, None)
    result = pacs.flush(store.conn, store.images_dir, cfg, None)
    row = table.get(store.conn, key, "pacs")
    assert row["state"] == "failed" and "cannot be reached" in row["reason"] and row["next_try_at"]
    assert result[(key, "pacs")] == row["reason"]
    assert cases[0][0].patient.nhs_number not in row["reason"]
    orthanc.start()
    deadline = time.monotonic() + 10
    while table.get(store.conn, key, "pacs")["state"] != "sent" and time.monotonic() < deadline:
        pacs.flush(store.conn, store.images_dir, cfg, None)
        time.sleep(0.2)
    assert table.get(store.conn, key, "pacs")["state"] == "sent"
    assert table.get(store.conn, key, "pacs")["attempts"] >= 2
    assert_in_orthanc(orthanc, key, cases)
    assert [e["action"] for e in audit.entries(store.conn, action="export.pacs.failed")]


def test_orthanc_refusing_objects_fails_with_its_reason_then_a_retry_after_recovery_completes(tmp_path, store):
    orthanc = Orthanc(tmp_path / "refusing", lua=REFUSE_ALL).start()
    try:
        cfg = orthanc.pacs_config(password_file=orthanc.password_file())
        key, cases = signed_referral(store, seed=53, lesions=1)
        pacs.queue_referral(store.conn, key, cfg, None)
        pacs.flush(store.conn, store.images_dir, cfg, None)
        row = table.get(store.conn, key, "pacs")
        assert row["state"] == "failed" and "refused" in row["reason"], row
        assert orthanc.get("/statistics")["CountInstances"] == 0
        orthanc.stop()
        orthanc.lua = None  # the hospital fixes its PACS
        orthanc.start()
        time.sleep(1.1)  # the next try is due (retry_s 0.2, doubling, at most 1 s)
        pacs.flush(store.conn, store.images_dir, cfg, None)
        assert table.get(store.conn, key, "pacs")["state"] == "sent"
        assert_in_orthanc(orthanc, key, cases)
    finally:
        orthanc.stop()


def test_cstore_delivers_like_stow_rs(store, orthanc):
    cfg = orthanc.pacs_config("c-store", password_file=orthanc.password_file())
    key, cases = signed_referral(store, seed=54, lesions=1)
    pacs.queue_referral(store.conn, key, cfg, None)
    assert pacs.flush(store.conn, store.images_dir, cfg, None) == {(key, "pacs"): "sent"}
    assert table.get(store.conn, key, "pacs")["detail"] == "3 of 3 objects stored (c-store)"
    study = assert_in_orthanc(orthanc, key, cases)
    iid = orthanc.get(f"/series/{study['Series'][0]}")["Instances"][0]
    ds = pydicom.dcmread(__import__("io").BytesIO(orthanc.get(f"/instances/{iid}/file", raw=True)))
    assert ds.Manufacturer == "DermKiosk"


def test_addendum_resends_the_same_uids_and_orthanc_keeps_one_copy(store, orthanc):
    cfg = orthanc.pacs_config(password_file=orthanc.password_file())
    key, cases = signed_referral(store, seed=55, lesions=1)
    pacs.queue_referral(store.conn, key, cfg, None)
    pacs.flush(store.conn, store.images_dir, cfg, None)
    add_addendum(store, key, str(cases[0][0].case_id), "dr.sign", "Histology confirmed a compound naevus.")
    assert pacs.flush(store.conn, store.images_dir, cfg, None) == {(key, "pacs"): "sent"}  # re-queued by itself
    assert table.get(store.conn, key, "pacs")["addenda"] == 1
    assert orthanc.get("/statistics")["CountInstances"] == 3
    assert pacs.flush(store.conn, store.images_dir, cfg, None) == {}  # nothing new: nothing sent


def test_a_referral_without_nhs_number_gets_a_clear_state_and_is_not_sent(store, orthanc):
    from dashboard import sample, samplesigned
    header, images = sample.make_case(56)
    store.save_case(header, images)
    key = str(header.case_id)
    samplesigned.sign_referral(store.conn, key, "dr.sign")
    cfg = orthanc.pacs_config(password_file=orthanc.password_file())
    pacs.queue_referral(store.conn, key, cfg, None)
    pacs.flush(store.conn, store.images_dir, cfg, None)
    row = table.get(store.conn, key, "pacs")
    assert row["state"] == "failed" and "no NHS number" in row["reason"] and row["next_try_at"] is None
    assert orthanc.get("/statistics")["CountInstances"] == 0
    assert pacs.flush(store.conn, store.images_dir, cfg, None) == {}  # not retried by itself
