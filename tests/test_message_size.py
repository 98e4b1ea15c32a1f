"""The kiosk's message size limit agrees with the broker's: the kiosk never sends what Mosquitto
would drop, parks such a case with the reason (outbox and kiosk page), and sends one that fits
to the last byte. Real Mosquitto with a small ``max_packet_size``; the repository's configs checked."""

from __future__ import annotations

import re
import threading
import time
import tomllib
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from edge.link import _PACKET_OVERHEAD
from edge.service import KioskService
from edge.web import create_app
from tests.broker import Broker
from tests.test_kiosk_service import MODEL_DIR, config
from tests.link_kit import FakeCentre
from tests.polling import wait_for
from tests.test_outbox import jpeg, make_case
from wire import topics
from wire.codec import encode_case

ROOT = Path(__file__).resolve().parents[1]
BROKER_LIMIT = 200_000
pytestmark = pytest.mark.skipif(not (MODEL_DIR / "manifest.json").exists(), reason="no model in models/lesion yet")


def max_packet_size(conf: Path) -> int:
    m = re.search(r"^\s*max_packet_size\s+(\d+)", conf.read_text(), re.M)
    assert m, f"{conf.name} sets no max_packet_size"
    return int(m.group(1))


@pytest.mark.parametrize("kiosk", ["kiosk.demo.toml", "kiosk.pi.toml"])
@pytest.mark.parametrize("broker_conf", ["mosquitto.demo.conf", "mosquitto.centre.conf"])
def test_repository_kiosk_limits_fit_the_broker_configs(kiosk, broker_conf):
    limit = tomllib.loads((ROOT / "firmware_config" / kiosk).read_text())["broker"]["message_size_limit"]
    longest_topic = topics.topic("s" * 32, "d" * 32, topics.CASE)
    assert limit + len(longest_topic) + _PACKET_OVERHEAD <= max_packet_size(ROOT / "firmware_config" / broker_conf)


def sized_case(size: int, seq: int, seed: int):
    """A case whose wire frame (with ``seq``) is exactly ``size`` bytes."""
    base = jpeg(seed, size=64)
    pad = size - len(base)
    for _ in range(20):
        img = base + bytes(max(0, pad))
        header = make_case([img])
        header = header.model_copy(update={"site": "site-a", "device_id": "kiosk-1"})
        n = len(encode_case(header.model_copy(update={"seq": seq}), [img]))
        if n == size:
            return header, img
        pad += size - n
    raise AssertionError("could not size the case")


@pytest.fixture
def small_broker(tmp_path):
    b = Broker(tmp_path / "broker", extra_conf=f"max_packet_size {BROKER_LIMIT}\n").start()
    yield b
    b.stop()


def test_broker_drops_an_oversized_publish(small_broker):
    """What the kiosk guards against: Mosquitto does not pass on a packet over its limit."""
    got = []
    sub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="size-sub", protocol=mqtt.MQTTv5)
    subscribed = threading.Event()
    sub.on_message = lambda c, u, m: got.append(len(m.payload))
    sub.on_subscribe = lambda *a: subscribed.set()
    sub.connect(small_broker.host, small_broker.port)
    sub.loop_start()
    sub.subscribe("size/#", qos=1)
    assert subscribed.wait(5)
    pub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="size-pub", protocol=mqtt.MQTTv5)
    pub.connect(small_broker.host, small_broker.port)
    pub.loop_start()
    pub.publish("size/x", b"x" * (BROKER_LIMIT + 1000), qos=1)
    pub.publish("size/x", b"y" * 1000, qos=1)
    time.sleep(1.0)
    for c in (pub, sub):
        c.loop_stop()
        c.disconnect()
    assert BROKER_LIMIT + 1000 not in got


def test_kiosk_refuses_what_the_broker_would_drop_and_says_why(small_broker, tmp_path):
    centre = FakeCentre(small_broker)
    cfg = config(tmp_path, device_id="kiosk-1", site="site-a",
                 broker={"url": small_broker.url, "reconnect_min_s": 0.2})          # kiosk limit: 16 MiB
    assert cfg.broker.message_size_limit > BROKER_LIMIT
    topic = topics.topic("site-a", "kiosk-1", topics.CASE)
    limit = BROKER_LIMIT - len(topic) - _PACKET_OVERHEAD      # what the kiosk learns from the CONNACK
    try:
        with KioskService(cfg) as svc:
            ob = svc.outbox
            fits, fits_img = sized_case(limit, seq=1, seed=1)              # exactly at the limit
            over, over_img = sized_case(limit + 1, seq=2, seed=2)          # one byte over
            ids = [str(ob.submit(fits, [fits_img]).case_id), str(ob.submit(over, [over_img]).case_id)]
            small = make_case([jpeg(3)]).model_copy(update={"site": "site-a", "device_id": "kiosk-1"})
            ids.append(str(ob.submit(small, [jpeg(3)]).case_id))
            assert [len(ob.payload(i)) for i in ids[:2]] == [limit, limit + 1]
            svc.link.wake()
            wait_for(lambda: ob.queue_depth() == 0, timeout=20, what="every case delivered or parked")
            parked = ob.get(ids[1])
            assert parked.state == "rejected"
            assert f"{limit + 1} bytes is over the broker's message size limit of {limit} bytes" in parked.reason
            assert ob.get(ids[0]).reason == "stored" and ob.get(ids[2]).reason == "stored"
            assert set(centre.ids()) == {ids[0], ids[2]}                   # the one at the limit got through
            status = svc.status()
            assert status["rejected"]["count"] == 1 and status["link"]["connected"]
            html = create_app(svc).test_client().get("/").get_data(as_text=True)
            pill = re.search(r'<span class="pill bad" id="rejected">(.*?)</span>', html, re.S).group(1)
            assert "Not sent:" in pill and "over the broker&#39;s message size limit" in pill
    finally:
        centre.close()
