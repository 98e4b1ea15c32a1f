"""Centre outage: what the broker holds for a stopped ingest, and how the backlog goes when it is back.

    .venv/bin/python -m bench.centre_outage [--kiosks 3] [--cases 40] [--image-kb 300] [--outage 40]
                                            [--ack-timeout 1]

Each kiosk (edge.link with its own outbox and the default window of 16 cases and ``--window-mb`` MiB) has ``--cases`` cases of
3 x ``--image-kb`` KB waiting while the ingest (dashboard.ingest.Ingest, the real one, in this
process) is stopped for ``--outage`` seconds. The kiosks' ack timeout is shortened to
``--ack-timeout`` s (doubling per resend: 1, 2, 4, 8, 16, 32 s), so that the resends of a weekend
happen in seconds (the Pi's configuration says 120 s). The broker is Mosquitto with persistence
saved every second (as firmware_config/mosquitto.*.conf) and ``$SYS`` every second.

Two runs in one process, alike but for the kiosks, each on a fresh broker:

* ``presence``: kiosks read the ingest's retained presence and hold their cases while it says offline;
* ``ignoring``: kiosks ignore it, as before the presence topic: they publish their window and publish
  it again at every ack timeout.

Per run it prints the broker's stored messages and bytes at the end of the outage (``$SYS``), the
broker's peak resident memory, what the ingest received once it was back (stored / duplicate), and
the seconds from its return until every case was acknowledged.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import paho.mqtt.client as mqtt  # noqa: E402
from paho.mqtt.enums import CallbackAPIVersion  # noqa: E402

from bench.kiosk_drain import make_case  # noqa: E402
from dashboard.ingest import Ingest  # noqa: E402
from edge.link import BrokerSettings, Link  # noqa: E402
from edge.outbox import Outbox  # noqa: E402
from tests.broker import Broker  # noqa: E402
from tests.centre import centre_config  # noqa: E402

SITE = "bench-site"
STORE = ("$SYS/broker/store/messages/count", "$SYS/broker/store/messages/bytes")


class SysWatch:
    """Latest value of the broker's ``$SYS`` store counters."""

    def __init__(self, broker: Broker):
        self.values: dict[str, int] = {}
        self.c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-sys-watch", protocol=mqtt.MQTTv5)
        self.c.on_message = lambda c, u, m: self.values.__setitem__(m.topic, int(m.payload))
        self.c.connect(broker.host, broker.port)
        self.c.subscribe([(t, 0) for t in STORE])
        self.c.loop_start()

    def close(self) -> None:
        """Disconnect."""
        self.c.disconnect()
        self.c.loop_stop()


def peak_rss_mb(pid: int) -> float:
    """A process's peak resident memory (VmHWM), MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def run(mode: str, tmp: Path, args) -> dict:
    """One outage with kiosks that follow (``presence``) or ignore (``ignoring``) the centre's presence."""
    broker = Broker(tmp / "broker", extra_conf=f"autosave_interval {args.autosave_interval}\n"
                                              "autosave_on_changes false\nsys_interval 1\n")
    broker.start()
    watch = SysWatch(broker)
    cfg = centre_config(tmp / "centre", broker, f"bench-outage-{mode}")
    ingest = Ingest(cfg).start()            # creates the ingest's session; then the centre goes away
    assert ingest.wait_ready(15), "the ingest did not subscribe"
    ingest.stop()
    links, outboxes = [], []
    try:
        total = 0
        for k in range(args.kiosks):
            device = f"kiosk-{k}"
            ob = Outbox(tmp / device, min_free_bytes=0)
            for i in range(args.cases):
                ob.submit(*make_case(1000 * k + i, 3, args.image_kb, SITE, device))
            total += args.cases
            link = Link(BrokerSettings(url=broker.url, ack_timeout_s=args.ack_timeout, reconnect_min_s=0.2,
                                       max_inflight_bytes=args.window_mb << 20), SITE, device, ob)
            if mode == "ignoring":
                link._on_centre = lambda ingest, payload: None  # kiosk software from before the presence topic
            outboxes.append(ob)
            links.append(link.start())
        time.sleep(args.outage)
        time.sleep(2.5)                        # $SYS comes every second
        held = dict(watch.values)
        published = sum(lk.stats.published for lk in links)
        t0 = time.perf_counter()
        ingest = Ingest(cfg).start()
        deadline = time.monotonic() + 600
        while sum(ob.queue_depth() for ob in outboxes) and time.monotonic() < deadline:
            time.sleep(0.05)
        drain = time.perf_counter() - t0
        left = sum(ob.queue_depth() for ob in outboxes)
        # The ingest goes on with the copies the broker still holds: busy until nothing comes for 2 s.
        seen, busy = sum(ingest.stats.values()), drain
        while time.perf_counter() - t0 - busy < 2.0:
            time.sleep(0.05)
            if sum(ingest.stats.values()) != seen:
                seen, busy = sum(ingest.stats.values()), time.perf_counter() - t0
        stats = dict(ingest.stats)
        ingest.stop()
        return {"mode": mode, "cases": total, "published_during_outage": published,
                "broker_messages": held.get(STORE[0], -1), "broker_mb": held.get(STORE[1], -1) / 1e6,
                "broker_peak_rss_mb": peak_rss_mb(broker.proc.pid), "stored": stats.get("stored", 0),
                "duplicate": stats.get("duplicate", 0), "drain_s": drain, "busy_s": busy, "left": left}
    finally:
        for link in links:
            link.stop()
        for ob in outboxes:
            ob.close()
        watch.close()
        broker.stop()


def main(argv: list[str] | None = None) -> int:
    """Both runs; print one line each and the ratios."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kiosks", type=int, default=3)
    ap.add_argument("--cases", type=int, default=40, help="cases waiting in each kiosk's outbox")
    ap.add_argument("--image-kb", type=int, default=300)
    ap.add_argument("--outage", type=float, default=40.0, help="seconds the ingest is away")
    ap.add_argument("--ack-timeout", type=float, default=1.0, help="the kiosks' ack_timeout_s (>= 1)")
    ap.add_argument("--autosave-interval", type=int, default=1,
                    help="seconds between the broker's persistence saves (the repository's configs: 1)")
    ap.add_argument("--modes", default="ignoring,presence", help="which runs, comma-separated")
    ap.add_argument("--window-mb", type=int, default=32,
                    help="the kiosks' max_inflight_bytes in MiB (default 32, the kiosk's own default)")
    args = ap.parse_args(argv)
    logging.getLogger("edge.link").setLevel(logging.ERROR)   # "the centre is offline", once per kiosk
    print(f"{args.kiosks} kiosks x {args.cases} cases x 3 x {args.image_kb} KB, window 16 cases, ingest away "
          f"{args.outage:.0f} s, ack timeout {args.ack_timeout:g} s doubling, window {args.window_mb} MiB, "
          f"broker autosave every "
          f"{args.autosave_interval} s", flush=True)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for mode in args.modes.split(","):
            r = run(mode, Path(tmp) / mode, args)
            results.append(r)
            missing = f" ({r['left']} NOT acknowledged)" if r["left"] else ""
            print(f"  {mode:8s}: published during the outage {r['published_during_outage']:4d}; broker holds "
                  f"{r['broker_messages']:4d} messages, {r['broker_mb']:6.1f} MB (peak RSS "
                  f"{r['broker_peak_rss_mb']:.0f} MB); after the return: stored {r['stored']}, duplicates "
                  f"{r['duplicate']}; every case acknowledged after {r['drain_s']:.1f} s{missing}, the ingest "
                  f"busy for {r['busy_s']:.1f} s", flush=True)
    if len(results) != 2:
        return 0 if all(r["left"] == 0 and r["stored"] == r["cases"] for r in results) else 1
    old, new = results
    print(f"presence / ignoring: broker MB {new['broker_mb'] / max(old['broker_mb'], 1e-9):.2f}, "
          f"peak RSS {new['broker_peak_rss_mb'] / old['broker_peak_rss_mb']:.2f}, "
          f"time to acknowledge every case {new['drain_s'] / old['drain_s']:.2f}, "
          f"ingest busy {new['busy_s'] / old['busy_s']:.2f}")
    return 0 if all(r["left"] == 0 and r["stored"] == r["cases"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
