"""Link against a real Mosquitto: the centre's presence, the kiosk's status and last will, its session."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from datetime import datetime, timezone

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from edge.link import Link
from tests.link_kit import (DEVICE, SITE, FakeCentre, announce, outbox, retained_status,  # noqa: F401
                            settings, submit)
from tests.polling import wait_for
from wire import topics
from wire.messages import Ack


def test_centre_offline_holds_cases_in_the_outbox_and_its_return_sends_them(broker, outbox):
    """While the centre says it is offline nothing is published or resent (the broker would pile up
    copies for it); when it is back, the held cases go out and every one is delivered."""
    centre = FakeCentre(broker, ack=False)
    announce(broker, "online")
    link = Link(settings(broker, ack_timeout_s=1, max_inflight=3), SITE, DEVICE, outbox).start()
    try:
        wait_for(lambda: link.connected and link.stats.centre == "online", what="centre online")
        first = submit(outbox, 2)
        link.wake()
        wait_for(lambda: set(centre.ids()) == set(first), what="two cases published, not acked")
        announce(broker, "offline")
        wait_for(lambda: link.holding, what="the link sees the centre offline")
        seen = len(centre.ids())
        held = submit(outbox, 4, start=10)
        link.wake()
        time.sleep(3.5)                   # 1 + 2 s of ack timeouts: a link that ignored presence resends
        assert len(centre.ids()) == seen, "published while the centre was offline"
        c = outbox.counts()
        assert c["queued"] == 4 and c["sent"] == 2 and c["purged"] == 0
        centre.ack = True
        announce(broker, "online")
        wait_for(lambda: outbox.counts()["purged"] == 6, what="everything delivered once the centre is back")
        assert set(centre.ids()) == set(first + held)
        assert [cid for cid in centre.ids() if cid in held] == held      # in order
        assert link.stats.centre == "online"
    finally:
        link.stop()
        centre.close()
        announce(broker, None)


def test_a_kiosk_that_starts_while_the_centre_is_offline_publishes_nothing(broker, outbox):
    """The retained presence follows the SUBACK: the link waits for it before its first publish."""
    centre = FakeCentre(broker)
    announce(broker, "offline")
    ids = submit(outbox, 3)
    link = Link(settings(broker), SITE, DEVICE, outbox).start()
    try:
        wait_for(lambda: link.holding, what="the retained offline presence")
        time.sleep(0.5)
        assert centre.ids() == [] and link.stats.published == 0 and outbox.counts()["queued"] == 3
        announce(broker, "online")
        wait_for(lambda: outbox.counts()["purged"] == 3, what="sent once the centre is back")
        assert centre.ids() == ids
    finally:
        link.stop()
        centre.close()
        announce(broker, None)


def test_centre_presence_of_several_ingests_and_bad_messages(broker, outbox):
    """Online if any ingest is online; unknown once every announcement is cleared; junk is ignored."""
    link = Link(settings(broker), SITE, DEVICE, outbox).start()
    try:
        wait_for(lambda: link.connected, what="connect")
        assert link.stats.centre == "unknown" and not link.holding
        announce(broker, "online", "ingest-a")
        announce(broker, "offline", "ingest-b")
        wait_for(lambda: link.stats.centre == "online", what="one of two ingests online")
        announce(broker, "offline", "ingest-a")
        wait_for(lambda: link.stats.centre == "offline", what="both offline")
        c = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        c.connect(broker.host, broker.port)
        c.loop_start()
        c.publish(topics.centre("ingest-c"), b"{not json", qos=1).wait_for_publish(5)
        c.disconnect()
        c.loop_stop()
        time.sleep(0.3)
        assert link.stats.centre == "offline" and link.connected
        announce(broker, None, "ingest-a")
        announce(broker, None, "ingest-b")
        wait_for(lambda: link.stats.centre == "unknown", what="no ingest announced any more")
    finally:
        link.stop()
        for cid in ("ingest-a", "ingest-b"):
            announce(broker, None, cid)


def test_status_online_retained_and_offline_on_stop(broker, outbox):
    link = Link(settings(broker), SITE, DEVICE, outbox, software_version="sw", model_version="m1").start()
    wait_for(lambda: link.connected, what="connect")
    time.sleep(0.2)
    st = retained_status(broker)
    assert st.state == "online" and st.device_id == DEVICE and st.model_version == "m1"
    link.stop()
    assert retained_status(broker).state == "offline"


_KIOSK_SCRIPT = """
import sys, time
from edge.link import BrokerSettings, Link
from edge.outbox import Outbox
link = Link(BrokerSettings(url=sys.argv[1]), "site-a", "kiosk-1", Outbox(sys.argv[2])).start()
while not link.connected:
    time.sleep(0.02)
print("up", flush=True)
time.sleep(60)
"""


def test_last_will_offline_when_the_kiosk_dies(broker, tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", _KIOSK_SCRIPT, broker.url, str(tmp_path / "k")],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "up"
        time.sleep(0.2)
        assert retained_status(broker).state == "online"
        proc.kill()
        proc.wait()
        wait_for(lambda: retained_status(broker).state == "offline", timeout=10, what="last will")
    finally:
        if proc.poll() is None:
            proc.kill()


def test_session_persists_so_acks_sent_while_away_are_received(broker, outbox):
    """clean_start=False + session expiry + fixed client id: the broker queues our acks while we are away."""
    [cid] = submit(outbox, 1)
    link = Link(settings(broker, session_expiry=600), SITE, DEVICE, outbox).start()
    wait_for(lambda: outbox.get(cid).state == "sent", what="published")
    link.stop()
    assert link._new_client()._client_id == DEVICE.encode()
    # the centre acks while the kiosk is offline
    c = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id="acker", protocol=mqtt.MQTTv5)
    c.connect(broker.host, broker.port)
    c.loop_start()
    ack = Ack(case_id=uuid.UUID(cid), status="stored", received_at=datetime.now(timezone.utc))
    c.publish(topics.topic(SITE, DEVICE, "ack"), ack.model_dump_json(), qos=1).wait_for_publish(5)
    c.disconnect()
    c.loop_stop()
    assert outbox.get(cid).state == "sent"
    link = Link(settings(broker, session_expiry=600), SITE, DEVICE, outbox).start()
    try:
        wait_for(lambda: outbox.get(cid).state == "purged", timeout=5, what="queued ack delivered on resume")
    finally:
        link.stop()
