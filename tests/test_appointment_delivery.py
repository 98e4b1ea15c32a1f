"""A referral submitted at the kiosk reaches the centre over the real broker: both lesion cases, grouped.

Real Mosquitto, the real ingest and store, the kiosk service with its link. A client subscribed
to every topic records what crossed the broker: no topic holds a patient identifier, and the
kiosk's log holds none either.
"""

from __future__ import annotations

import logging
import time

import pytest

from dashboard.ingest import Ingest
from dashboard.store import Store
from edge.service import KioskService
from tests.sniff import sniff
from tests.appointment_kit import PHOTOGRAPHER, PIN, appointment_config, fill_details, photograph, synthetic_nhs_number
from tests.centre import centre_config
from tests.test_kiosk_service import MODEL_DIR
from wire.codec import sha256_hex

pytestmark = pytest.mark.skipif(not (MODEL_DIR / "manifest.json").exists(), reason="no model in models/lesion yet")


def test_a_two_lesion_referral_reaches_the_centre_grouped(broker, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    nhs, ref = synthetic_nhs_number(9), "RB-77/2026"
    sniffer, topics = sniff(broker)
    centre = centre_config(tmp_path / "centre", broker, "appt-ingest")
    ingest = Ingest(centre).start()
    cfg = appointment_config(tmp_path, broker={"url": broker.url, "reconnect_min_s": 0.2},
                             camera={"replay": {"width": 640, "height": 480, "seed": 12}})
    try:
        assert ingest.wait_ready(15)
        with KioskService(cfg) as svc:
            desk = svc.desk
            desk.sign_in(PHOTOGRAPHER, PIN)
            appt = fill_details(desk, nhs=nhs, reference=ref)
            desk.add_lesion(PHOTOGRAPHER, site="anterior torso", laterality="left")
            desk.add_lesion(PHOTOGRAPHER, site="lower extremity", laterality="right")
            sent = {i: photograph(desk, i) for i in (1, 2)}
            stored = desk.submit(PHOTOGRAPHER)
            deadline = time.monotonic() + 60
            while svc.outbox.queue_depth() and time.monotonic() < deadline:
                time.sleep(0.1)
            assert svc.outbox.queue_depth() == 0, svc.outbox.counts()
    finally:
        ingest.stop()
        sniffer.loop_stop()
        sniffer.disconnect()
    store = Store(centre.storage.database, centre.storage.images_dir)
    try:
        rows = store.referral_cases(str(appt.referral_id))
        assert sorted(str(r["case_id"]) for r in rows) == sorted(str(h.case_id) for h in stored)
        for h in stored:
            header, images = store.load_case(str(h.case_id))
            assert header.photographer == PHOTOGRAPHER and header.patient.nhs_number == nhs
            assert header.referral.reference == "RB-77/2026" and header.referral.lesion_count == 2
            assert [sha256_hex(b) for b in images] == [s.sha256 for s in sent[h.lesion.index]]
    finally:
        store.close()
    assert any(t.endswith("/case") for t in topics)
    for needle in (nhs, ref, "1950"):
        assert not [t for t in topics if needle in t]
        assert needle not in caplog.text
