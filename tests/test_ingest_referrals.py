"""Ingest over a real Mosquitto during a rollout: schema version 2 referrals and version 1 cases side by side;
no patient identifier of a stored v2 case in the ingest's log or in any file name of the store."""

from __future__ import annotations

import logging

import pytest

from dashboard import sample
from dashboard.ingest import Ingest
from tests.test_ingest import Kiosk, centre_config, open_store
from wire import codec
from wire.referral import CaseHeaderV2, format_nhs_number


@pytest.fixture
def centre(broker, tmp_path):
    ing = Ingest(centre_config(broker, tmp_path)).start()
    assert ing.wait_ready(10), "ingest did not subscribe"
    yield ing
    ing.stop()


@pytest.fixture
def kiosk(broker, tmp_path):
    k = Kiosk(broker, db_path=tmp_path / "centre.db")
    yield k
    k.close()


def test_v2_referral_and_v1_cases_are_both_stored_then_acknowledged(centre, kiosk, tmp_path):
    old_kiosk_case, old_images = sample.make_case(31)
    referral = sample.make_referral(32, lesions=2, fitzpatrick="VI", override=True)
    frames = [codec.encode_case(old_kiosk_case, old_images)] + [codec.encode_case(h, ims) for h, ims in referral]
    for frame in frames:
        kiosk.publish(frame)
    acks = {str(a.case_id): a.status for a in (kiosk.ack() for _ in frames)}
    assert acks == {str(h.case_id): "stored" for h in [old_kiosk_case] + [h for h, _ in referral]}
    assert all(kiosk.seen_in_db_at_ack.values()), "acked before commit"
    store = open_store(tmp_path)
    try:
        back, images = store.load_case(old_kiosk_case.case_id)
        assert back == old_kiosk_case and images == old_images
        for h, ims in referral:
            back, images = store.load_case(h.case_id)
            assert isinstance(back, CaseHeaderV2) and back == h and images == ims
        rid = str(referral[0][0].referral.referral_id)
        assert [c["lesion_id"] for c in store.referral_cases(rid)] == ["L1", "L2"]
        assert all(c["full_review"] == 1 for c in store.referral_cases(rid))  # Fitzpatrick VI
        assert store.get_referral(rid)["lesion_count"] == 2
    finally:
        store.close()
    kiosk.publish(frames[1])  # the same lesion again: stored once
    assert kiosk.ack().status == "duplicate"


def test_no_nhs_number_of_a_stored_v2_case_in_the_log_or_any_file_name(centre, kiosk, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    header, images = sample.make_case_v2(33, reference="HUBREF-7731")
    nhs = header.patient.nhs_number
    dob = header.patient.date_of_birth
    frame = codec.encode_case(header, images)
    kiosk.publish(frame)
    kiosk.publish(frame)
    # the same case with a broken NHS number: refused (quarantined) with a reason that names no digits
    broken = frame.replace(nhs.encode(), (nhs[:-1] + str((int(nhs[-1]) + 1) % 10)).encode(), 1)
    kiosk.publish(broken)
    assert [kiosk.ack().status for _ in range(3)] == ["stored", "duplicate", "rejected"]
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert str(header.case_id) in text  # the log names the case by its UUID...
    secrets = [nhs, format_nhs_number(nhs), nhs[:3] + "-" + nhs[3:6], dob.isoformat(), dob.strftime("%d/%m/%Y"),
               header.referral.reference, "HUBREF"]
    for secret in secrets:  # ... and by nothing a patient could be recognised by
        assert secret not in text, secret
    store = open_store(tmp_path)
    try:
        assert store.get_referral(str(header.referral.referral_id))["nhs_number"] == nhs  # it was stored
        (q,) = store.list_quarantine()
        assert "check digit" in q["reason"] and nhs[:6] not in q["reason"]
    finally:
        store.close()
    names = [p.name for p in tmp_path.rglob("*")]
    assert len(names) > 5
    for secret in (nhs, nhs[:6], dob.isoformat(), header.referral.reference, "HUBREF"):
        assert not [n for n in names if secret in n], secret
