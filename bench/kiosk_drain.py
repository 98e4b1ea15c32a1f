"""Kiosk backlog drain: cases/s from an outbox of 10,000 waiting cases, with the progress the page shows.

    .venv/bin/python -m bench.kiosk_drain [--cases 10000] [--image-kb 4] [--images 1] [--window 16]
                                          [--centre ack|ingest] [--profile]

An outbox (edge.outbox: sealed files, fsync, WAL) is filled with ``--cases`` small cases while
the link is off, as after an outage. Then the kiosk's link (edge.link, in this process, the
kiosk's default window of 16) publishes them through Mosquitto (tests/broker.py, persistence
saved every second without on-change snapshots, as firmware_config/mosquitto.*.conf) to:

* ``--centre ack`` (default): a peer process that only answers each case with an Ack, so the
  figure is the kiosk side's own drain speed;
* ``--centre ingest``: the real ``python -m dashboard ingest`` process (verify, store, ack).

Times until every case is acknowledged and purged. Every 2 s it prints what the kiosk page
shows: queue depth, drain rate (Link.drain_rate) and time left. ``--profile`` runs cProfile in
the link thread and prints the top functions. Goal (issue 5): >= 80 cases/s.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from edge.link import BrokerSettings, Link  # noqa: E402
from edge.outbox import Outbox  # noqa: E402
from tests.broker import Broker  # noqa: E402
from wire.codec import sha256_hex  # noqa: E402
from wire.messages import CaseHeader, ImageMeta  # noqa: E402

SITE, DEVICE = "bench-site", "bench-kiosk"

ACK_PEER = r"""
import sys, threading
from datetime import datetime, timezone
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
sys.path.insert(0, sys.argv[3])
from dashboard.intake import peek_case_id
from wire import topics
from wire.messages import Ack
host, port = sys.argv[1], int(sys.argv[2])
c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-ack-peer", protocol=mqtt.MQTTv5)
c.max_inflight_messages_set(1000)
def on_connect(cl, u, f, rc, p):
    cl.subscribe(topics.subscription(topics.CASE, "ingest"), qos=1)
def on_subscribe(cl, u, mid, rcs, p):
    print("ready", flush=True)
def on_message(cl, u, m):
    case_id = peek_case_id(m.payload)
    site, device, _ = topics.parse(m.topic)
    ack = Ack(case_id=case_id, status="stored", received_at=datetime.now(timezone.utc))
    cl.publish(topics.topic(site, device, topics.ACK), ack.model_dump_json(), qos=1)
c.on_connect, c.on_subscribe, c.on_message = on_connect, on_subscribe, on_message
c.connect(host, port)
c.loop_forever()
"""


def make_case(k: int, n_images: int, kb: int, site: str = SITE, device: str = DEVICE) -> tuple[CaseHeader, list[bytes]]:
    """Case ``k`` of ``device`` with ``n_images`` distinct JPEG-like images of about ``kb`` KB."""
    now = datetime.now(timezone.utc)
    imgs = [b"\xff\xd8\xff\xe0" + os.urandom(kb * 1024 - 6) + b"\xff\xd9" for _ in range(n_images)]
    views = ("dermoscopic", "close-up", "regional")
    header = CaseHeader(
        case_id=uuid.uuid4(), referral_ref=f"BENCH-{k}", lesion_id="L1", body_site="anterior torso",
        site=site, device_id=device, created_at=now, seq=0, software_version="bench", model_version="bench",
        images=[ImageMeta(view=views[i % 3], captured_at=now, sha256=sha256_hex(d), length=len(d),
                          width=64, height=64) for i, d in enumerate(imgs)])
    return header, imgs


def start_centre(kind: str, broker: Broker, tmp: Path) -> subprocess.Popen:
    """The ack-only peer or the real ingest, as a process; returns once it has subscribed."""
    if kind == "ack":
        proc = subprocess.Popen([sys.executable, "-c", ACK_PEER, broker.host, str(broker.port), str(ROOT)],
                                stdout=subprocess.PIPE, text=True)
        assert proc.stdout.readline().strip() == "ready", "ack peer did not subscribe"
        return proc
    conf = tmp / "centre.toml"
    conf.write_text(f'[broker]\nurl = "{broker.url}"\nclient_id = "bench-ingest"\n'
                    f'[storage]\ndatabase = "{tmp}/centre/c.db"\nimages_dir = "{tmp}/centre/img"\n'
                    f'quarantine_dir = "{tmp}/centre/q"\n[web]\nsecret_key_file = "{tmp}/centre/secret"\n'
                    '[registry]\nrequire_registration = false\n')  # a made-up kiosk: not in the kiosk registry
    sock_path = tmp / "notify.sock"
    import socket

    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(sock_path))
    sock.settimeout(60)
    proc = subprocess.Popen([sys.executable, "-m", "dashboard", "ingest", "--config", str(conf), "--log-level",
                             "WARNING"], cwd=ROOT, env={**os.environ, "NOTIFY_SOCKET": str(sock_path)})
    while b"STATUS=subscribed" not in sock.recv(4096):
        pass
    sock.close()
    return proc


def main(argv: list[str] | None = None) -> int:
    """Fill, drain, print cases/s."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", type=int, default=10_000)
    ap.add_argument("--images", type=int, default=1)
    ap.add_argument("--image-kb", type=int, default=4)
    ap.add_argument("--window", type=int, default=16)
    ap.add_argument("--centre", choices=("ack", "ingest"), default="ack")
    ap.add_argument("--profile", action="store_true")
    args = ap.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        broker = Broker(tmp / "broker", extra_conf="autosave_on_changes false\n")
        broker.start()
        centre = None
        try:
            outbox = Outbox(tmp / "kiosk", min_free_bytes=0)
            print(f"filling the outbox with {args.cases} cases of {args.images} x {args.image_kb} KB ...", flush=True)
            t0 = time.perf_counter()
            for k in range(args.cases):
                outbox.submit(*make_case(k, args.images, args.image_kb))
            fill = time.perf_counter() - t0
            print(f"  stored {args.cases / fill:.0f} cases/s (sealed files + fsync + WAL commit)", flush=True)
            centre = start_centre(args.centre, broker, tmp)
            link = Link(BrokerSettings(url=broker.url, max_inflight=args.window), SITE, DEVICE, outbox)
            prof = cProfile.Profile() if args.profile else None
            if prof:
                run = link._run

                def profiled():
                    prof.runcall(run)
                link._run = profiled
            t0 = time.perf_counter()
            link.start()
            next_print = t0 + 2
            while (depth := outbox.queue_depth()):
                time.sleep(0.05)
                if time.perf_counter() >= next_print:
                    next_print += 2
                    rate = link.drain_rate()
                    eta = f"{depth / rate:.0f} s" if rate else "-"
                    print(f"  {time.perf_counter() - t0:5.1f} s: waiting {depth}, sending {rate:.1f} cases/s, "
                          f"about {eta} left", flush=True)
            drain = time.perf_counter() - t0
            link.stop()
            counts = outbox.counts()
            outbox.close()
        finally:
            if centre is not None:
                centre.terminate()
                centre.wait(20)
            broker.stop()
    print(f"\nkiosk drain ({args.centre} centre): {args.cases} cases of {args.images} x {args.image_kb} KB in "
          f"{drain:.1f} s = {args.cases / drain:.1f} cases/s, window {args.window}; "
          f"purged {counts['purged']}, rejected {counts['rejected']}  (goal >= 80 cases/s)")
    if prof:
        out = io.StringIO()
        pstats.Stats(prof, stream=out).sort_stats("cumulative").print_stats(30)
        print(out.getvalue())
    return 0 if counts["purged"] == args.cases else 1


if __name__ == "__main__":
    sys.exit(main())
