"""Ingest against a real Mosquitto: stored then acked, idempotent, quarantine, never crashes."""

from __future__ import annotations

import functools
import json
import logging
import os
import queue
import struct
import threading
import uuid
from datetime import datetime, timezone

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from dashboard import sample
from dashboard.config import CentreConfig
from dashboard.ingest import Ingest
from dashboard.store import Store
from wire import codec, topics
from tests.broker import Broker, retained
from wire.messages import Ack, Acks, CentreStatus, Status
from tests import polling
from tests.centre import centre_config as shared_centre_config


def centre_config(broker, tmp_path, **ingest) -> CentreConfig:
    """A centre config pointing at the test broker, with its data under tmp_path (storage retried quickly)."""
    return shared_centre_config(tmp_path, broker, **{"storage_retry_s": 0.2, **ingest})


class Kiosk:
    """A bare MQTT 5 publisher standing in for a kiosk: publishes frames, collects its acks."""

    def __init__(self, broker, site="site-1", device="kiosk-1", db_path=None):
        self.site, self.device = site, device
        self.acks: queue.Queue[Ack] = queue.Queue()
        self.db_path = db_path
        self.seen_in_db_at_ack: dict[str, bool] = {}
        self.messages = 0  # ack messages received (each an Acks batch)
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"test-{device}-{uuid.uuid4().hex[:6]}",
                                  protocol=mqtt.MQTTv5)
        subscribed = threading.Event()
        self.client.on_subscribe = lambda *a: subscribed.set()
        self.client.on_message = self._on_ack
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()
        self.client.subscribe(topics.topic(site, device, topics.ACK), qos=1)
        assert subscribed.wait(5)

    def _on_ack(self, client, userdata, msg) -> None:
        acks = Acks.model_validate_json(msg.payload).acks  # the ingest sends batches only
        self.messages += 1
        for ack in acks:
            if self.db_path is not None:
                # Checked the moment the ack arrives: the case must already be committed.
                s = Store(self.db_path, self.db_path.parent / "images")
                self.seen_in_db_at_ack[f"{ack.case_id}:{ack.status}"] = s.has_case(ack.case_id)
                s.close()
            self.acks.put(ack)

    def publish(self, payload: bytes, topic: str | None = None) -> None:
        info = self.client.publish(topic or topics.topic(self.site, self.device, topics.CASE), payload, qos=1)
        info.wait_for_publish(10)

    def ack(self, timeout: float = 10.0) -> Ack:
        return self.acks.get(timeout=timeout)

    def no_ack(self, within: float) -> bool:
        try:
            self.acks.get(timeout=within)
            return False
        except queue.Empty:
            return True

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


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


wait_for = functools.partial(polling.wait_for, timeout=10.0, step=0.02)


def retained_presence(broker, client_id: str, timeout: float = 5.0) -> CentreStatus:
    """The centre presence the broker retains for one ingest client id (as a kiosk would read it)."""
    return CentreStatus.model_validate_json(retained(broker, topics.centre(client_id), timeout))


def test_presence_online_when_subscribed_and_offline_when_stopped(broker, tmp_path):
    """Kiosks read the ingest's retained presence to hold their cases while it is away."""
    config = centre_config(broker, tmp_path)
    ing = Ingest(config).start()
    assert ing.wait_ready(10)
    try:
        wait_for(lambda: retained_presence(broker, config.broker.client_id).state == "online",
                 what="retained online presence")
        status = retained_presence(broker, config.broker.client_id)
        assert status.at is not None
        assert ing.presence_topic == f"dermkiosk/v1/centre/{config.broker.client_id}"
        assert topics.parse_centre(ing.presence_topic) == config.broker.client_id
        store = open_store(tmp_path)      # the fleet page's "ingest running" comes from the worker's beat
        from dashboard.fleet import ingest_states
        # the worker thread beats on its own, not in step with the MQTT thread's presence: wait for it
        wait_for(lambda: ingest_states(store, datetime.now(timezone.utc)), what="the worker's first heartbeat")
        [beat] = ingest_states(store, datetime.now(timezone.utc))
        assert beat["client_id"] == config.broker.client_id and beat["state"] == "running"
    finally:
        ing.stop()
    assert retained_presence(broker, config.broker.client_id).state == "offline"
    [beat] = ingest_states(store, datetime.now(timezone.utc))
    assert beat["state"] == "stopped"
    store.close()


def open_store(tmp_path) -> Store:
    return Store(tmp_path / "centre.db", tmp_path / "images", tmp_path / "quarantine")


def test_case_is_stored_then_acknowledged(centre, kiosk, tmp_path):
    header, images = sample.make_case(1, n_images=3)
    kiosk.publish(codec.encode_case(header, images))
    ack = kiosk.ack()
    assert ack.case_id == header.case_id and ack.status == "stored"
    assert kiosk.seen_in_db_at_ack[f"{header.case_id}:stored"] is True, "acked before the commit"
    store = open_store(tmp_path)
    back, data = store.load_case(header.case_id)
    assert back == header
    assert [codec.sha256_hex(d) for d in data] == [im.sha256 for im in header.images]
    for im in header.images:
        assert store.image_path(im.sha256).name == f"{im.sha256}.jpg"
    store.close()


def test_same_case_twice_is_stored_once_and_acked_duplicate(centre, kiosk, tmp_path):
    header, frame = sample.make_frame(2)
    kiosk.publish(frame)
    kiosk.publish(frame)
    assert [kiosk.ack().status, kiosk.ack().status] == ["stored", "duplicate"]
    store = open_store(tmp_path)
    assert store.count_cases() == 1
    assert len(list((tmp_path / "images").rglob("*.jpg"))) == len(header.images)
    assert store.conn.execute("SELECT count(*) FROM case_images").fetchone()[0] == len(header.images)
    store.close()


def test_image_shared_by_two_cases_is_stored_once(centre, kiosk, tmp_path):
    shared = sample.make_jpeg(99)
    h1, i1 = sample.make_case(3, images=[shared, sample.make_jpeg(100)])
    h2, i2 = sample.make_case(4, images=[shared])
    kiosk.publish(codec.encode_case(h1, i1))
    kiosk.publish(codec.encode_case(h2, i2))
    assert {kiosk.ack().status, kiosk.ack().status} == {"stored"}
    store = open_store(tmp_path)
    assert store.conn.execute("SELECT count(*) FROM images").fetchone()[0] == 2
    assert len(list((tmp_path / "images").rglob("*.jpg"))) == 2
    store.close()


def _wrong_version(header, images) -> bytes:
    """A case of a schema version this centre does not know (it reads 1 and 2)."""
    head = json.loads(header.model_dump_json())
    head["schema_version"] = 3
    raw = json.dumps(head).encode()
    return codec.MAGIC + struct.pack(">I", len(raw)) + raw + b"".join(images)


def test_malformed_messages_are_quarantined_and_valid_cases_still_flow(centre, kiosk, broker, tmp_path):
    header, images = sample.make_case(5)
    good = codec.encode_case(header, images)
    flipped = bytearray(good)
    flipped[-100] ^= 0xFF
    other_h, other_frame = sample.make_frame(6, device="kiosk-2")
    bad = [
        (b"hello, not a case", None, "bad magic"),
        (good[: len(good) // 2], header.case_id, "header promises"),
        (good[:6], None, "too short"),
        (_wrong_version(header, images), header.case_id, "schema_version"),
        (bytes(flipped), header.case_id, "sha256 mismatch"),
        (good + b"extra", header.case_id, "header promises"),
        (codec.MAGIC + struct.pack(">I", 10**9) + b"{}", None, "out of range"),
        (codec.MAGIC + struct.pack(">I", 7) + b"{nope!}", None, "invalid header"),
        (b"\x00" * (3 * 1024 * 1024), None, "bad magic"),  # oversized garbage
    ]
    for payload, _, _ in bad:
        kiosk.publish(payload)
    kiosk.publish(other_frame)  # kiosk-1 publishing a case that says it is kiosk-2
    rejected = [kiosk.ack() for _ in range(sum(1 for _, cid, _ in bad if cid) + 1)]
    assert {a.status for a in rejected} == {"rejected"}
    assert all(a.reason for a in rejected)
    assert kiosk.no_ack(0.3)  # nothing acked for payloads without a readable case id

    kiosk.publish(good)
    ack = kiosk.ack()
    assert (ack.case_id, ack.status) == (header.case_id, "stored")

    store = open_store(tmp_path)
    rows = store.list_quarantine()
    assert len(rows) == len(bad) + 1
    for (payload, cid, expect), row in zip(bad, reversed(rows[1:]), strict=True):
        assert expect in row["reason"], (expect, row["reason"])
        assert row["payload_size"] == len(payload)
        assert row["case_id"] == (str(cid) if cid else None)
        assert (tmp_path / "quarantine" / row["payload_file"]).read_bytes() == payload
    assert "kiosk-2" in rows[0]["reason"] and rows[0]["device"] == "kiosk-1"
    assert store.count_cases() == 1
    store.close()
    assert centre.stats["quarantined"] == len(bad) + 1
    assert centre._worker.is_alive()


def test_no_patient_identifier_in_logs(centre, kiosk, caplog):
    caplog.set_level(logging.DEBUG)
    header, images = sample.make_case(7)
    header = header.model_copy(update={"referral_ref": "NHS-9434765919", "lesion_id": "LESION-SECRET-42"})
    good = codec.encode_case(header, images)
    kiosk.publish(good)
    kiosk.publish(good)
    kiosk.publish(good[:-10])
    assert [kiosk.ack().status for _ in range(3)] == ["stored", "duplicate", "rejected"]
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert str(header.case_id) in text
    assert "9434765919" not in text and "LESION-SECRET" not in text


def durable_broker(workdir) -> Broker:
    """A broker whose persistence really works: as root, Mosquitto drops to user 'mosquitto' and then
    cannot write into pytest's 0700 temp folders (no mosquitto.db, silently), unless told to stay root."""
    b = Broker(workdir)
    b.write_conf()
    if os.geteuid() == 0 and "\nuser " not in "\n" + b.conf.read_text():
        b.extra_conf += "user root\n"
    return b.start()


def test_cases_published_while_ingest_is_down_arrive_after_restart(tmp_path):
    broker = durable_broker(tmp_path / "durable-broker")
    config = centre_config(broker, tmp_path)
    ing = Ingest(config).start()
    assert ing.wait_ready(10)
    ing.stop()  # session (and shared subscription) kept by the broker
    kiosk = Kiosk(broker, db_path=tmp_path / "centre.db")
    frames = [sample.make_frame(20 + i) for i in range(3)]
    for _, frame in frames:
        kiosk.publish(frame)
    assert kiosk.no_ack(0.5)
    broker.restart()  # persistence: the queued cases survive a broker restart too
    kiosk.close()
    kiosk = Kiosk(broker, db_path=tmp_path / "centre.db")
    ing = Ingest(config).start()
    try:
        got = {kiosk.ack().case_id for _ in frames}
        assert got == {h.case_id for h, _ in frames}
        assert (broker.workdir / "mosquitto.db").exists()
    finally:
        ing.stop()
        kiosk.close()
        broker.stop()


def test_cases_that_arrive_together_are_acked_in_batches(tmp_path, broker):
    """A backlog arriving at once is stored in batches: one Acks message per batch, not one per case."""
    config = centre_config(broker, tmp_path)
    ing = Ingest(config).start()
    assert ing.wait_ready(10)
    ing.stop()  # the broker keeps the session and queues what comes meanwhile
    kiosk = Kiosk(broker, db_path=tmp_path / "centre.db")
    frames = [sample.make_frame(40 + i) for i in range(12)]
    for _, frame in frames:
        kiosk.publish(frame)
    ing = Ingest(config).start()
    try:
        got = [kiosk.ack() for _ in frames]
        assert {a.case_id for a in got} == {h.case_id for h, _ in frames}
        assert all(a.status == "stored" for a in got)
        assert all(kiosk.seen_in_db_at_ack.values())  # each batch acked only after its commit
        assert kiosk.messages < len(frames)
    finally:
        ing.stop()
        kiosk.close()


def test_status_messages_keep_the_devices_table(centre, broker, tmp_path):
    pub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="status-pub", protocol=mqtt.MQTTv5)
    pub.connect(broker.host, broker.port)
    pub.loop_start()
    st = Status(device_id="kiosk-9", state="online", software_version="0.1.0", model_version="lesion-1")
    pub.publish(topics.topic("site-3", "kiosk-9", topics.STATUS), st.model_dump_json(), qos=1,
                retain=True).wait_for_publish(5)
    pub.publish(topics.topic("site-3", "kiosk-8", topics.STATUS), b"not json", qos=1).wait_for_publish(5)
    store = open_store(tmp_path)
    assert wait_for(lambda: store.list_devices() != [])
    (dev,) = store.list_devices()
    assert (dev["device"], dev["site"], dev["state"], dev["model_version"]) == ("kiosk-9", "site-3", "online",
                                                                               "lesion-1")
    off = Status(device_id="kiosk-9", state="offline")
    pub.publish(topics.topic("site-3", "kiosk-9", topics.STATUS), off.model_dump_json(), qos=1).wait_for_publish(5)
    assert wait_for(lambda: store.list_devices()[0]["state"] == "offline")
    assert store.list_devices()[0]["model_version"] == "lesion-1"  # kept when the message has none
    # the malformed one is kept in the quarantine with its reason (issue 25: IT sees it; it was logged only)
    assert centre.stats["quarantined"] == 1
    (q,) = store.list_quarantine()
    assert (q["device"], q["site"]) == ("kiosk-8", "site-3")
    assert q["reason"].startswith("invalid status message: Invalid JSON")
    store.close()
    pub.loop_stop()
    pub.disconnect()


def test_broker_restart_mid_stream_loses_nothing(centre, broker, tmp_path):
    kiosk = Kiosk(broker)
    frames = [sample.make_frame(700 + i, case_id=uuid.uuid4(),
                                images=[sample.make_jpeg(700 + i, 800, 600)]) for i in range(25)]
    for _, f in frames:
        kiosk.publish(f)
    kiosk.close()
    broker.restart()  # whatever the ingest had not taken yet waits in its persistent session
    store = open_store(tmp_path)
    try:
        assert wait_for(lambda: store.count_cases() == len(frames), timeout=30), store.count_cases()
        assert centre.wait_ready(10)  # reconnected and subscribed again
        for h, _ in frames:
            back, data = store.load_case(h.case_id)
            assert [codec.sha256_hex(d) for d in data] == [im.sha256 for im in h.images]
        # and it still takes new cases
        kiosk = Kiosk(broker)
        h, f = sample.make_frame(799, case_id=uuid.uuid4())
        kiosk.publish(f)
        ack = kiosk.ack()
        earlier = {fh.case_id for fh, _ in frames}
        while ack.case_id != h.case_id:  # late acks of the cases from before the restart
            assert ack.case_id in earlier and ack.status in ("stored", "duplicate")
            ack = kiosk.ack()
        assert ack.status == "stored"
        kiosk.close()
    finally:
        store.close()
