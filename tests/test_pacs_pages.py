"""The hand-over on the dashboard, through the real app on a real SQLite file: the IT page shows each referral's
sending state and reason by referral key (never an image or a patient identifier); IT may send again; the
referral page shows the state; the FHIR Bundle download is for dermatologists, refused with a reason for an
unsigned referral, and audited like every export."""

from __future__ import annotations

import re

from fhir.resources.R4B.bundle import Bundle

from dashboard import audit, create_app, pacs, sample
from dashboard.hospitalconfig import FhirConfig
from dashboard.readingconfig import ReadingConfig
from dashboard.store import exports as table
from tests.dashauth import csrf_token, logged_in
from tests.hospital_kit import open_store, signed_referral


def make_app(tmp_path, **extra):
    return create_app({"DATABASE": str(tmp_path / "c.db"), "IMAGES_DIR": str(tmp_path / "images"), "TESTING": True,
                       "READING": ReadingConfig(audit_share=0.0)} | extra)


def test_it_page_shows_states_without_images_or_patient(tmp_path):
    fhir_cfg = FhirConfig(enabled=True, url="http://127.0.0.1:9/fhir", retry_s=30, timeout_s=2)
    app = make_app(tmp_path, FHIR=fhir_cfg, HAND_OVER_TICK_S=3600)
    store = open_store(tmp_path)
    try:
        key, cases = signed_referral(store, seed=71, lesions=1)
        pacs.queue_referral(store.conn, key, None, fhir_cfg)
        pacs.flush(store.conn, store.images_dir, None, fhir_cfg)  # the server is down: failed, with the reason
        it = logged_in(app, "it.ops", "it")
        page = it.get("/hand-over").get_data(as_text=True)
        assert f'data-key="{key}" data-target="fhir" data-state="failed"' in page
        assert "cannot be reached" in page and "Record system (FHIR report)" in page
        h = cases[0][0]
        assert "<img" not in page and h.patient.nhs_number not in page and h.referral.reference not in page
        assert it.get(f"/referrals/{key}").status_code == 403  # IT never sees the referral (images)
        assert it.get(f"/referrals/{key}/fhir.json").status_code == 403
        before = table.get(store.conn, key, "fhir")
        r = it.post(f"/referrals/{key}/hand-over", data={"csrf_token": csrf_token(page), "back": "it"})
        assert r.status_code == 302 and r.headers["Location"].endswith("/hand-over")
        assert table.get(store.conn, key, "fhir")["queued_at"] > before["queued_at"]  # queued again (and tried)
        assert [e["actor"] for e in audit.entries(store.conn, action="export.requeue")] == ["it.ops"]
        derm = logged_in(app, "dr.read", "dermatologist")
        assert derm.get("/hand-over").status_code == 403
        ref_page = derm.get(f"/referrals/{key}").get_data(as_text=True)
        assert re.search(r'id="hand-over-fhir" data-state="(queued|failed)"', ref_page)
        assert 'id="hand-over-pacs" data-state="off"' in ref_page and "not configured at this centre" in ref_page
        assert 'id="hand-over-send"' in ref_page                          # one destination is configured
    finally:
        pacs.sender_of(app).stop()
        store.close()


def test_fhir_download_for_dermatologists_refused_while_unsigned_and_audited(tmp_path):
    app = make_app(tmp_path)
    store = open_store(tmp_path)
    try:
        key, _ = signed_referral(store, seed=72, lesions=2)
        [(h, ims)] = sample.make_referral(73, lesions=1)
        store.save_case(h, ims)
        unsigned = str(h.referral.referral_id)
        derm = logged_in(app, "dr.read", "dermatologist")
        r = derm.get(f"/referrals/{key}/fhir.json")
        assert r.status_code == 200 and r.mimetype == "application/fhir+json"
        assert re.fullmatch(r'attachment; filename="referral-[0-9a-f]{8}-fhir.json"', r.headers["Content-Disposition"])
        Bundle.model_validate_json(r.get_data())
        r = derm.get(f"/referrals/{unsigned}/fhir.json")
        assert r.status_code == 409 and "not signed off yet" in r.get_data(as_text=True)
        assert derm.get("/referrals/not-a-key/fhir.json").status_code == 404
        actions = [(e["action"], e["target"]) for e in audit.entries(store.conn) if e["action"].startswith("export.")]
        assert ("export.fhir.download", key) in actions and ("export.fhir.refused", unsigned) in actions
    finally:
        store.close()
