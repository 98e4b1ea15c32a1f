"""A test client that records the name of every topic crossing a plain test broker (to prove no patient
identifier is ever in one)."""

from __future__ import annotations

import threading
import uuid

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion


def sniff(broker) -> tuple[mqtt.Client, list[str]]:
    """A client subscribed to every topic of ``broker``; returns it (stop it with loop_stop/disconnect)
    and the list it appends each message's topic to."""
    topics: list[str] = []
    ready = threading.Event()
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"sniffer-{uuid.uuid4().hex[:8]}", protocol=mqtt.MQTTv5)
    c.on_connect = lambda cl, *a: (cl.subscribe("#", qos=0), ready.set())
    c.on_message = lambda cl, ud, msg: topics.append(msg.topic)
    c.connect(broker.host, broker.port)
    c.loop_start()
    assert ready.wait(5), "sniffer did not connect"
    return c, topics
