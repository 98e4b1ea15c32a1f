"""wire.messages: from_device (a kiosk's JSON message on its own topic, or a ValueError with the reason) and
parse_acks (the centre's acks, batched or single)."""

import uuid
from datetime import datetime, timezone

import pytest
from pydantic import ValidationError

from wire import topics
from wire.messages import MAX_ACKS, Ack, Acks, CentreStatus, Health, Status, UpdateResult, from_device, parse_acks

FLEET = {topics.HEALTH: Health, topics.UPDATE_RESULT: UpdateResult}


def status(device="kiosk-1", **extra) -> str:
    return Status(device_id=device, state="online", **extra).model_dump_json()


def test_a_status_on_its_own_topic():
    site, device, kind, msg = from_device(topics.topic("site-a", "kiosk-1", topics.STATUS), status(),
                                          {topics.STATUS: Status})
    assert (site, device, kind) == ("site-a", "kiosk-1", topics.STATUS)
    assert isinstance(msg, Status) and msg.state == "online"


@pytest.mark.parametrize("topic, payload, models, reason", [
    (topics.topic("site-a", "kiosk-2", topics.STATUS), status("kiosk-1"), {topics.STATUS: Status},
     "device in topic and payload differ"),
    (topics.topic("site-a", "kiosk-1", topics.STATUS), status(), FLEET, "not a health/update-result topic: status"),
    (topics.topic("site-a", "kiosk-1", topics.STATUS), b'{"device_id": "kiosk-1"}', {topics.STATUS: Status},
     "Field required"),
    (topics.topic("site-a", "kiosk-1", topics.STATUS), b"\xff not json", {topics.STATUS: Status}, "Invalid JSON"),
    ("somebody/else/site-a/kiosk-1/status", status(), {topics.STATUS: Status}, "not a DermKiosk v1 topic"),
])
def test_what_is_refused_says_why(topic, payload, models, reason):
    with pytest.raises(ValueError, match=reason):
        from_device(topic, payload, models)


def ack(status="stored", **kw) -> Ack:
    return Ack(case_id=uuid.uuid4(), status=status, received_at=datetime.now(timezone.utc), **kw)


def test_an_acks_batch_round_trips_in_order():
    batch = [ack(), ack("duplicate"), ack("rejected", reason="image 0 sha256 mismatch")]
    assert parse_acks(Acks(acks=batch).model_dump_json()) == batch


def test_a_single_ack_from_an_older_centre_still_reads():
    one = ack()
    assert parse_acks(one.model_dump_json().encode()) == [one]


@pytest.mark.parametrize("payload", [
    b'{"acks": []}',                                             # an empty batch says nothing
    b'{"schema_version": 2, "acks": []}',
    b'{"acks": [{"case_id": "not-a-uuid", "status": "stored", "received_at": "2026-11-28T10:00:00Z"}]}',
    b'{"case_id": "3b1f0d8e-6c2a-4f43-9a57-1d1c1f1e2a3b", "status": "lost", "received_at": "2026-11-28T10:00:00Z"}',
    b"\xff not json",
])
def test_what_is_not_an_ack_is_refused(payload):
    with pytest.raises(ValidationError):
        parse_acks(payload)


def test_a_batch_is_bounded():
    with pytest.raises(ValidationError):
        Acks(acks=[ack()] * (MAX_ACKS + 1))


def test_the_centre_presence_topic_and_message():
    """Four levels, so no <site>/<device>/<kind> subscription (the ingest's own included) matches it."""
    topic = topics.centre("ingest-1")
    assert topic == "dermkiosk/v1/centre/ingest-1" and topics.parse_centre(topic) == "ingest-1"
    assert topics.parse_centre(topics.topic("centre", "ingest-1", topics.STATUS)) is None
    assert topics.parse_centre("dermkiosk/v1/centre/a/b") is None
    with pytest.raises(ValueError):
        topics.parse(topic)
    for bad in ("", "a/b", "+", "#", "x" * 65, "ingest 1"):
        with pytest.raises(ValueError, match="client id"):
            topics.centre(bad)
    status = CentreStatus(client_id="ingest-1", state="offline")
    assert CentreStatus.model_validate_json(status.model_dump_json()) == status
    with pytest.raises(ValidationError, match="state"):
        CentreStatus.model_validate_json('{"client_id": "ingest-1", "state": "gone"}')
