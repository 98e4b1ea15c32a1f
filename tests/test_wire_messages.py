"""wire.messages.from_device: a kiosk's JSON message on its own topic, or a ValueError with the reason."""

import pytest

from wire import topics
from wire.messages import Health, Status, UpdateResult, from_device

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
