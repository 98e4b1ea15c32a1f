"""The outcome of a read referral reaches the kiosk that sent it, also when that kiosk was offline.

Real Mosquitto with the repository's TLS config and access rules, real certificates; the real kiosk
service (outbox, link, desk, the shipped model, replay camera) and the centre's real outcome queue
(SQLite) published as the dashboard's kiosk publisher (``updates``). The kiosk sends a referral, goes
offline, the centre publishes the re-image outcome, the kiosk comes back and shows the task with the
reader's reason. An outcome for a kiosk the broker holds no session for stays queued and goes once the
kiosk is there. A kiosk may neither forge its own outcome nor read another kiosk's.
"""

from __future__ import annotations

import logging
import time
import uuid
from datetime import datetime, timezone

import pytest

from dashboard.config import BrokerConfig
from dashboard.outcomes import flush
from dashboard.store import Store
from dashboard.store import handover as table
from edge.service import KioskService
from tests.appointment_kit import PHOTOGRAPHER, PIN, appointment_config, fill_details, photograph, synthetic_nhs_number
from tests.test_broker_subscribe import reason_codes
from tests.test_kiosk_service import MODEL_DIR
from tests.tls_kit import Client, clients, kiosk  # noqa: F401  (clients: fixture)
from wire import topics
from wire.outcome import Outcome

pytestmark = pytest.mark.skipif(not (MODEL_DIR / "manifest.json").exists(), reason="no model in models/lesion yet")
SITE = "hub-t"
REASON = "Dermoscopic view out of focus: retake with contact gel"


def kiosk_config(tmp_path, tls_broker, test_pki, device: str):
    return appointment_config(tmp_path / device, device_id=device, site=SITE,
                              broker=test_pki.kiosk_broker(tls_broker, device, reconnect_min_s=0.2),
                              camera={"replay": {"width": 640, "height": 480, "seed": 21}})


def wait(predicate, timeout: float = 15.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def outcome_for(device: str, referral_id, case_id, label: str = "L1") -> Outcome:
    return Outcome(outcome_id=uuid.uuid4(), referral_id=referral_id, site=SITE, device_id=device,
                   signed_at=datetime.now(timezone.utc), signed_by="dr.reader",
                   lesions=[{"case_id": case_id, "label": label, "management": "re-image", "reason": REASON}])


def test_an_outcome_for_an_offline_kiosk_is_delivered_when_it_is_back(tmp_path, tls_broker, test_pki, caplog):
    caplog.set_level(logging.DEBUG)
    nhs, ref = synthetic_nhs_number(31), "HO-31/2026"
    cfg = kiosk_config(tmp_path, tls_broker, test_pki, "kiosk-a")
    with KioskService(cfg) as svc:
        wait(lambda: svc.link.connected, what="the kiosk's link")
        desk = svc.desk
        desk.sign_in(PHOTOGRAPHER, PIN)
        fill_details(desk, nhs=nhs, reference=ref)
        desk.add_lesion(PHOTOGRAPHER, site="upper extremity", laterality="left")
        photograph(desk, 1)
        stored = desk.submit(PHOTOGRAPHER)
        assert svc.outcomes.tasks() == []
        [state] = svc.outcomes.referrals(lambda cid: svc.outbox.get(cid).state)
        assert state.status in ("sending", "at-centre") and state.sent.nhs_number == nhs
    # The kiosk is offline now. The centre signs off and publishes.
    centre = Store(tmp_path / "centre" / "centre.db", tmp_path / "centre" / "images")
    try:
        table.ensure_schema(centre.conn)
        header = stored[0]
        table.queue_outcome(centre.conn, outcome_for("kiosk-a", header.referral.referral_id, header.case_id))
        publisher = BrokerConfig(**test_pki.ingest_broker(tls_broker, identity="updates"))
        assert list(flush(centre.conn, publisher).values()) == ["published"]
        assert table.pending_outcomes(centre.conn) == []
    finally:
        centre.close()
    # Back online: the broker hands the outcome over; the task shows who and why.
    with KioskService(cfg) as svc:
        [task] = wait(svc.outcomes.tasks, what="the re-image task")
        assert (task.label, task.reason, task.signed_by) == ("L1", REASON, "dr.reader")
        assert task.sent.nhs_number == nhs and task.sent.reference == ref and task.where == "left arm"
        [state] = svc.outcomes.referrals(lambda cid: svc.outbox.get(cid).state)
        assert state.status == "reimage" and state.open_tasks == 1
        # The photographer photographs the lesion again: the same referral may be sent once more, which
        # closes the task; a further appointment for it is refused again.
        desk = svc.desk
        desk.sign_in(PHOTOGRAPHER, PIN)
        fill_details(desk, nhs=nhs, reference=ref)
        desk.add_lesion(PHOTOGRAPHER, site="upper extremity", laterality="left")
        photograph(desk, 1)
        again = desk.submit(PHOTOGRAPHER)
        assert again[0].referral.referral_id != header.referral.referral_id
        assert svc.outcomes.tasks() == []
        assert [e.detail for e in desk.audit.entries() if e.action == "task-done"] == ["re-image L1: sent again"]
        with pytest.raises(ValueError, match="not open"):
            desk.complete_task(PHOTOGRAPHER, task.referral_id, "L1")
        desk.open(PHOTOGRAPHER)
        desk.set_patient(PHOTOGRAPHER, nhs, "01/02/1950", "female")
        with pytest.raises(ValueError, match="already sent from this kiosk"):
            desk.set_referral(PHOTOGRAPHER, ref, "20/11/2026", "A81001", "gp-referral")
    # Sealed files named by UUIDs only; no identifier in a file name or a log line.
    names = [p.name for p in (cfg.data_dir / "outcomes").iterdir()]
    assert any(n.startswith("outcome-") for n in names) and any(n.startswith("sent-") for n in names)
    for p in (cfg.data_dir / "outcomes").iterdir():
        blob = p.read_bytes()
        assert blob.startswith(b"DKE1") and nhs.encode() not in blob and ref.encode() not in blob
        assert nhs not in p.name and ref not in p.name
    logged = caplog.text
    assert nhs not in logged and ref not in logged and "outcome" in logged


def test_an_outcome_for_a_kiosk_without_a_session_stays_queued_until_it_subscribes(tmp_path, tls_broker, test_pki):
    centre = Store(tmp_path / "centre" / "centre.db", tmp_path / "centre" / "images")
    publisher = BrokerConfig(**test_pki.ingest_broker(tls_broker, identity="updates"))
    cfg = kiosk_config(tmp_path, tls_broker, test_pki, "kiosk-b")
    try:
        table.ensure_schema(centre.conn)
        rid, cid = uuid.uuid4(), uuid.uuid4()
        table.queue_outcome(centre.conn, outcome_for("kiosk-b", rid, cid))
        [result] = flush(centre.conn, publisher).values()
        assert "no session at the broker" in result
        [pending] = table.pending_outcomes(centre.conn)
        assert pending["attempts"] == 1 and "no session" in pending["last_error"]
        with KioskService(cfg) as svc:
            wait(lambda: svc.link.connected, what="the kiosk's link")
            time.sleep(0.5)                                   # its SUBSCRIBE is in the session now
            assert list(flush(centre.conn, publisher).values()) == ["published"]
            [task] = wait(svc.outcomes.tasks, what="the task")
            assert task.referral_id == str(rid) and task.sent is None and task.reason == REASON
        assert table.pending_outcomes(centre.conn) == []
        assert table.outcome_state(centre.conn, str(rid))["published_at"]
    finally:
        centre.close()


def test_a_kiosk_can_neither_forge_its_outcome_nor_read_another_kiosks(tls_broker, test_pki, clients):
    rogue = kiosk(tls_broker, test_pki, clients, "kiosk-b")
    assert rogue.wait_connected()
    own, other = (topics.topic(SITE, d, topics.OUTCOME) for d in ("kiosk-b", "kiosk-a"))
    assert reason_codes(rogue, other, topics.subscription(topics.OUTCOME)) == [0x87, 0x87]
    assert reason_codes(rogue, own) == [1]
    assert rogue.publish(own, b"{}") == "Not authorized"
