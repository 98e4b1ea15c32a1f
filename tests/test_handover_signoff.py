"""Sign-off hands the referral over: the letters are made and stored with it, and the outcome is queued and
published to the kiosk that sent it. Through the real app (reading pages, claims, the sign-off hook) on a
real SQLite file, and a real Mosquitto holding the kiosk's session.

A letter for an unsigned referral is refused with a message (409) and nothing is made; the outcome carries
the referral and case UUIDs and the reader's reason, never the NHS number or the referral reference.
"""

from __future__ import annotations

import io
import queue
import re
import uuid

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from pypdf import PdfReader

from dashboard import create_app, sample
from dashboard.config import BrokerConfig, UpdatesConfig
from dashboard.readingconfig import ReadingConfig
from dashboard.serviceconfig import ServiceConfig
from dashboard.store import Store
from dashboard.store import handover as table
from tests.dashauth import csrf_token, logged_in
from tests.polling import wait_for
from tests.test_reading_reports import BENIGN_NAEVUS, save, sign, with_risk
from wire import topics
from wire.outcome import parse_outcome
from wire.referral import format_nhs_number

EARLY = "Dermoscopy reviewed with a colleague: agree, regular network."
ADDENDUM = "Histology from the GP's excision: compound naevus, completely excised."
REASON = "Regional view missing the lesion's border: retake the close-up with a ruler"
SERVICE = ServiceConfig(name="Northtown Teledermatology", phone="01632 960555", email="derm@example.nhs.uk")


def pdf_text(data: bytes) -> str:
    return " ".join(" ".join(p.extract_text().split()) for p in PdfReader(io.BytesIO(data)).pages)


def kiosk_session(broker, site: str, device: str) -> tuple[mqtt.Client, queue.Queue]:
    """The kiosk's persistent session subscribed to its outcome topic (as the kiosk's link makes it)."""
    got: queue.Queue = queue.Queue()
    subscribed = queue.Queue()
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=device, protocol=mqtt.MQTTv5)
    c.on_message = lambda cl, u, m: got.put((m.topic, bytes(m.payload)))
    c.on_subscribe = lambda *a: subscribed.put(1)
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = 3600
    c.connect(broker.host, broker.port, clean_start=False, properties=props)
    c.loop_start()
    c.subscribe(topics.topic(site, device, topics.OUTCOME), qos=1)
    subscribed.get(timeout=5)
    return c, got


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path / "c.db", tmp_path / "images")
    yield s
    s.close()


def test_signoff_makes_the_letters_and_sends_the_outcome_to_the_kiosk(tmp_path, store, broker):
    app = create_app({"DATABASE": str(tmp_path / "c.db"), "IMAGES_DIR": str(tmp_path / "images"), "TESTING": True,
                      "READING": ReadingConfig(audit_share=0.0), "SERVICE": SERVICE, "OUTCOME_RETRY_S": 0.5,
                      "UPDATES": UpdatesConfig(broker=BrokerConfig(url=broker.url, client_id="updates-test"))})
    cases = sample.make_referral(71, lesions=2, site="hub-n", device="kiosk-n")
    cases = [(with_risk(h, "benign"), ims) for h, ims in cases]
    key = save(store, cases)
    (h1, _), (h2, _) = cases
    nhs, ref = h1.patient.nhs_number, h1.referral.reference
    kiosk, got = kiosk_session(broker, "hub-n", "kiosk-n")
    try:
        derm = logged_in(app, "dr.hand", "dermatologist")
        # Not signed yet: no letter, a message instead, nothing made.
        r = derm.get(f"/referrals/{key}/letters/gp.pdf")
        assert r.status_code == 409 and "not signed off yet" in r.get_data(as_text=True)
        assert table.letter_list(store.conn, key) == []
        assert "No letters yet" in derm.get(f"/referrals/{key}").get_data(as_text=True)
        assert sign(derm, key, str(h1.case_id), BENIGN_NAEVUS, "discharge", "Regular network.").status_code == 302
        assert derm.get(f"/referrals/{key}/letters/patient.pdf").status_code == 409      # one lesion still open
        page = derm.get(f"/referrals/{key}").get_data(as_text=True)                   # an addendum before sign-off
        version = re.search(r'name="version" value="(\d+)"', page).group(1)
        assert derm.post(f"/referrals/{key}/lesions/{h1.case_id}/addendum", data={
            "csrf_token": csrf_token(page), "version": version, "addendum": EARLY}).status_code == 302
        assert table.letter_list(store.conn, key) == []                               # no letter made for it
        assert sign(derm, key, str(h2.case_id), BENIGN_NAEVUS, "re-image", REASON).status_code == 302

        # The letters: stored with the referral, on the page, downloadable.
        assert {(x["kind"], x["revision"]) for x in table.letter_list(store.conn, key)} == {("gp", 1), ("patient", 1)}
        page = derm.get(f"/referrals/{key}").get_data(as_text=True)
        assert f"/referrals/{key}/letters/gp.pdf" in page and f"/referrals/{key}/letters/patient.pdf" in page
        gp = derm.get(f"/referrals/{key}/letters/gp.pdf")
        assert gp.status_code == 200 and gp.mimetype == "application/pdf"
        assert nhs not in gp.headers["Content-Disposition"] and ref not in gp.headers["Content-Disposition"]
        gp_text = pdf_text(gp.data)
        for words in ("Northtown Teledermatology", "01632 960555", f"NHS number: {format_nhs_number(nhs)}",
                      f"Referral: {ref}", "Lesion L1", "Discharged to your care", "Safety-netting given",
                      f"Reader's reason for new photographs: {REASON}", "Signed by dr.hand"):
            assert words in gp_text, words
        patient_text = pdf_text(derm.get(f"/referrals/{key}/letters/patient.pdf").data)
        assert "Please contact your GP practice if this mark changes" in patient_text
        assert "The hub will contact you to take new photographs" in patient_text
        assert "%" not in patient_text and "AI" not in patient_text and "derm@example.nhs.uk" in patient_text

        # The outcome: queued at sign-off, taken by the broker for the kiosk's session, delivered.
        topic, payload = got.get(timeout=10)
        assert topic == topics.topic("hub-n", "kiosk-n", topics.OUTCOME)
        outcome = parse_outcome(payload)
        assert str(outcome.referral_id) == key and outcome.signed_by == "dr.hand"
        assert [(les.label, les.management, les.reason) for les in outcome.lesions] == \
            [("L1", "discharge", ""), ("L2", "re-image", REASON)]
        assert nhs.encode() not in payload and ref.encode() not in payload
        # the queue marks it published once the broker has acknowledged it, which may come after the kiosk has it
        wait_for(lambda: table.pending_outcomes(store.conn) == [], timeout=10, what="the outcome marked published")
        assert table.outcome_state(store.conn, key)["published_at"]
        page = derm.get(f"/referrals/{key}").get_data(as_text=True)
        assert "Outcome to the hub" in page
        assert "not configured at this centre" in page and 'id="hand-over-send"' not in page  # nothing to send to
        assert "AMENDED" not in gp_text and EARLY in gp_text         # the letters made at sign-off hold it

        # An addendum after sign-off: the GP letter is made again (revision 2, marked amended, with the
        # addendum); the patient letter and the outcome the hub holds stand.
        page = derm.get(f"/referrals/{key}").get_data(as_text=True)
        version = re.search(r'name="version" value="(\d+)"', page).group(1)
        r = derm.post(f"/referrals/{key}/lesions/{h1.case_id}/addendum", follow_redirects=True,
                      data={"csrf_token": csrf_token(page), "version": version, "addendum": ADDENDUM})
        assert r.status_code == 200 and "GP letter was made again" in r.get_data(as_text=True)
        assert {(x["kind"], x["revision"]) for x in table.letter_list(store.conn, key)} == \
            {("gp", 1), ("gp", 2), ("patient", 1)}
        amended = pdf_text(derm.get(f"/referrals/{key}/letters/gp.pdf").data)
        assert "AMENDED LETTER" in amended and "addendum to the report on lesion L1 " in amended
        links = derm.get(f"/referrals/{key}").get_data(as_text=True)
        assert "GP letter (PDF, revision 2, amended after sign-off" in links and "Patient letter (PDF, revision 1," in links
        assert ADDENDUM in amended and "Signed by dr.hand" in amended and f"Referral: {ref}" in amended
        assert ADDENDUM not in pdf_text(derm.get(f"/referrals/{key}/letters/patient.pdf").data)
        assert table.pending_outcomes(store.conn) == []                      # nothing new queued for the hub
        assert got.empty()
        actions = [row[0] for row in store.conn.execute("SELECT action FROM audit_log WHERE target = ?", (key,))]
        assert "addendum.add" in actions and "letters.amended" in actions
    finally:
        kiosk.disconnect()
        kiosk.loop_stop()
        sender = app.extensions.get("dermkiosk.outcome_sender")
        if sender:
            sender.stop()


def test_a_letter_of_an_unknown_or_malformed_referral_is_not_found(tmp_path):
    app = create_app({"DATABASE": str(tmp_path / "c.db"), "IMAGES_DIR": str(tmp_path / "images"), "TESTING": True})
    derm = logged_in(app, "dr.none", "dermatologist")
    assert derm.get("/referrals/not-a-uuid/letters/gp.pdf").status_code == 404
    assert derm.get(f"/referrals/{uuid.uuid4()}/letters/gp.pdf").status_code == 409
    assert derm.get(f"/referrals/{uuid.uuid4()}/letters/other.pdf").status_code == 404
