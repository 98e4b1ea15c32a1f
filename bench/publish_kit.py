"""The publishing side of the broker benchmarks (``bench/ingest_throughput.py``, ``bench/ingest_backlog.py``):
case frames of distinct JPEGs, the kiosks' own MQTT client class as publisher, a fleet's window of cases
in flight, and when the consumer took each case."""

from __future__ import annotations

import threading
import time
import uuid

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from dashboard import sample
from wire import codec, sending


def with_comment(jpeg: bytes, tag: bytes) -> bytes:
    """The same JPEG with a COM segment after SOI: still a valid JPEG, a different SHA-256."""
    return jpeg[:2] + b"\xff\xfe" + (len(tag) + 2).to_bytes(2, "big") + tag + jpeg[2:]


def build_frames(n: int, image_kb: int, tag: str = "bench") -> list[tuple[uuid.UUID, bytes]]:
    """N case frames, each with 3 distinct ~image_kb JPEGs (variants of 3 generated bases; ``tag`` makes
    them differ from another set's, so that no image of one set is already stored by the other)."""
    bases = [sample.make_jpeg_of_size(image_kb * 1000, seed=s) for s in range(3)]
    frames = []
    for i in range(n):
        images = [with_comment(b, f"{tag}-{i}-{j}".encode()) for j, b in enumerate(bases)]
        header, images = sample.make_case(i, n_images=3, images=images, case_id=uuid.uuid4())
        frames.append((header.case_id, codec.encode_case(header, images)))
    return frames


def publisher(broker) -> mqtt.Client:
    """The bench's publishing client (stands in for the kiosks)."""
    c = sending.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-pub-{uuid.uuid4().hex[:6]}",
                       protocol=mqtt.MQTTv5)  # the kiosks' client class
    c.max_inflight_messages_set(32)
    c.connect(broker.host, broker.port)
    c.loop_start()
    return c


class Window:
    """At most ``size`` cases published and not yet taken by the consumer (0: no bound), as the kiosks keep.

    Each kiosk keeps at most ``max_inflight`` cases (16) published and not yet acknowledged by the
    centre, so that the broker holds a bounded queue for the ingest; the bench's publisher does the
    same for both consumers, a fleet's worth of windows in one.
    """

    def __init__(self, size: int):
        self._slots = threading.Semaphore(size) if size else None

    def take(self) -> None:
        """Wait for room to publish one more case."""
        if self._slots is not None:
            assert self._slots.acquire(timeout=600), "the consumer took nothing for 10 minutes"

    def taken(self, n: int = 1) -> None:
        """The consumer has taken ``n`` more cases."""
        if self._slots is not None:
            self._slots.release(n)


class Progress:
    """When each of a run's cases was taken (raw: received; ingest: acked), for its steady rate."""

    def __init__(self):
        self.marks: list[tuple[float, int]] = []  # (perf_counter, cases taken so far)
        self.done = 0

    def add(self, n: int) -> None:
        """``n`` more of the timed cases were taken now."""
        self.done += n
        self.marks.append((time.perf_counter(), self.done))

    def steady(self, n: int, lo: float = 0.1, hi: float = 0.9) -> float:
        """Cases per second between the moments ``lo`` and ``hi`` of the ``n`` cases had been taken.

        Leaves out the pipeline's filling (the first cases' latency) and its draining (the last batch's
        commit): for the ingest ~0.1 s of a 1.5 s run of 600 cases, for raw ~1 ms.
        """
        first = next(m for m in self.marks if m[1] >= lo * n)
        last = next(m for m in self.marks if m[1] >= hi * n)
        return (last[1] - first[1]) / (last[0] - first[0])


def publish_all(pub: mqtt.Client, topic: str, frames, window: Window) -> None:
    """Publish the frames (QoS 1) in order, keeping within the window."""
    for _, frame in frames:
        window.take()
        pub.publish(topic, frame, qos=1)
