"""Backlog drain: cases/s from a full kiosk outbox through Mosquitto into the real centre ingest.

    .venv/bin/python bench/spine_drain.py [--cases 300] [--images 3] [--image-kb 300] [--window 16]

Fills an outbox with ``--cases`` cases of ``--images`` x ``--image-kb`` KB JPEG-like images
while the link is off, then starts the link and times until every case is acknowledged by
the ingest (stored in its SQLite + image files) and purged on the kiosk. Beside it, in the
same run and on a fresh broker, the raw broker-to-subscriber throughput of the same frames
(QoS 1, a plain paho subscriber that only counts). Goal (issue 5): ingest >= 0.5 x raw,
drain >= 80 cases/s. Run it on an idle machine; prints the figures.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import paho.mqtt.client as mqtt  # noqa: E402
from paho.mqtt.enums import CallbackAPIVersion  # noqa: E402

from edge.camera.synth import encode_jpeg, lesion_image  # noqa: E402
from edge.link import BrokerSettings, Link  # noqa: E402
from edge.outbox import Outbox  # noqa: E402
from tests.broker import Broker  # noqa: E402
from wire import topics  # noqa: E402
from wire.codec import encode_case, sha256_hex  # noqa: E402
from wire.messages import CaseHeader, ImageMeta  # noqa: E402

SITE, DEVICE = "bench-site", "bench-kiosk"


def base_jpegs(kb: int, n: int = 3) -> list[bytes]:
    """A few generated JPEGs padded (after the EOI marker) to about ``kb`` KB each."""
    out = []
    for i in range(n):
        j = encode_jpeg(lesion_image(800, 600, seed=500 + i), 95)
        out.append(j + os.urandom(max(0, kb * 1024 - len(j))))
    return out


def make_case(bases: list[bytes], k: int) -> tuple[CaseHeader, list[bytes]]:
    """Case ``k``: the base images made unique by a trailing counter (distinct SHA-256 per image)."""
    now = datetime.now(timezone.utc)
    imgs = [b + k.to_bytes(8, "big") + bytes([i]) for i, b in enumerate(bases)]
    views = ("dermoscopic", "close-up", "regional")
    header = CaseHeader(
        case_id=uuid.uuid4(), referral_ref=f"BENCH-{k}", lesion_id="L1", body_site="anterior torso",
        site=SITE, device_id=DEVICE, created_at=now, seq=0, software_version="bench", model_version="bench",
        images=[ImageMeta(view=views[i % 3], captured_at=now, sha256=sha256_hex(d), length=len(d),
                          width=800, height=600) for i, d in enumerate(imgs)],
    )
    return header, imgs


def raw_throughput(broker: Broker, payloads: list[bytes]) -> float:
    """Seconds to move ``payloads`` publisher -> broker -> subscriber at QoS 1 (window 16)."""
    got = threading.Event()
    count = [0]
    sub = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id="raw-sub", protocol=mqtt.MQTTv5)

    def on_message(c, u, m):
        count[0] += 1
        if count[0] == len(payloads):
            got.set()

    sub.on_message = on_message
    sub.connect(broker.host, broker.port)
    sub.subscribe("raw/#", qos=1)
    sub.loop_start()
    time.sleep(0.3)
    pub = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id="raw-pub", protocol=mqtt.MQTTv5)
    pub.max_inflight_messages_set(16)
    pub.connect(broker.host, broker.port)
    pub.loop_start()
    t0 = time.perf_counter()
    infos = []
    done = 0
    for p in payloads:
        infos.append(pub.publish("raw/case", p, qos=1))
        while True:                                  # keep paho's queue short: 16 unacknowledged at most
            while done < len(infos) and infos[done].is_published():
                done += 1
            if len(infos) - done < 16:
                break
            time.sleep(0.0005)
    got.wait(600)
    dt = time.perf_counter() - t0
    for c in (pub, sub):
        c.disconnect()
        c.loop_stop()
    return dt


def main(argv: list[str] | None = None) -> int:
    """Run the drain and the raw comparison, print cases/s and MB/s."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", type=int, default=300)
    ap.add_argument("--images", type=int, default=3)
    ap.add_argument("--image-kb", type=int, default=300)
    ap.add_argument("--window", type=int, default=16)
    args = ap.parse_args(argv)

    from tests.centre import centre_config
    from dashboard.ingest import Ingest
    from dashboard.store import Store

    bases = base_jpegs(args.image_kb, args.images)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        broker = Broker(tmp / "broker").start()
        try:
            outbox = Outbox(tmp / "kiosk", min_free_bytes=0)
            print(f"filling the outbox with {args.cases} cases of {args.images} x {args.image_kb} KB ...", flush=True)
            t0 = time.perf_counter()
            payload_bytes = 0
            for k in range(args.cases):
                h, imgs = make_case(bases, k)
                outbox.submit(h, imgs)
                payload_bytes += sum(len(i) for i in imgs)
            fill = time.perf_counter() - t0
            print(f"  capture side: {args.cases / fill:.1f} cases/s stored (atomic files + fsync + WAL commit)")
            cfg = centre_config(tmp / "centre", broker, "bench-ingest")
            ingest = Ingest(cfg).start()
            assert ingest.wait_ready(15)
            link = Link(BrokerSettings(url=broker.url, max_inflight=args.window), SITE, DEVICE, outbox)
            t0 = time.perf_counter()
            link.start()
            last = time.perf_counter()
            while outbox.queue_depth():
                time.sleep(0.05)
                if time.perf_counter() - last > 5:
                    last = time.perf_counter()
                    print(f"  ... {outbox.queue_depth()} left", flush=True)
            drain = time.perf_counter() - t0
            link.stop()
            ingest.stop()
            store = Store(cfg.storage.database, cfg.storage.images_dir)
            stored = store.count_cases()
            store.close()
            outbox.close()
        finally:
            broker.stop()
        # raw: same frame sizes through a fresh broker to a counting subscriber
        broker = Broker(tmp / "broker2").start()
        try:
            frames = [encode_case(*make_case(bases, k)) for k in range(min(args.cases, 300))]
            raw = raw_throughput(broker, frames)
        finally:
            broker.stop()
    raw_rate = len(frames) / raw
    rate = args.cases / drain
    mb = payload_bytes / 1e6
    print(f"\ndrain: {args.cases} cases ({mb:.0f} MB of images) in {drain:.1f} s = {rate:.1f} cases/s "
          f"({mb / drain:.1f} MB/s), window {args.window}; centre stored {stored}")
    print(f"raw broker->subscriber, same frames, QoS 1: {raw_rate:.1f} cases/s "
          f"({len(frames) * len(frames[0]) / raw / 1e6:.1f} MB/s)")
    print(f"drain / raw = {rate / raw_rate:.2f}  (goal >= 0.5; drain goal >= 80 cases/s)")
    return 0 if stored == args.cases else 1


if __name__ == "__main__":
    sys.exit(main())
