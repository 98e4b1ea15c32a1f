"""Centre-side backlog drain: N cases wait at the broker for the ingest's session, then it starts.

    .venv/bin/python bench/ingest_backlog.py [--cases 10000] [--image-kb 20]

Starts its own Mosquitto (tests/broker.py, autosave every 10 s as the demo broker),
runs ``python -m dashboard ingest`` once to create its persistent session and
stops it, publishes N cases (3 images each) while it is down, then starts it
again and times until every case is stored and acknowledged. Prints the drain
rate in cases/s, with and without the process start-up (the issue's goal: >= 80).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.publish_kit import publisher, with_comment  # noqa: E402
from dashboard import sample  # noqa: E402
from tests.broker import Broker  # noqa: E402
from wire import codec, topics  # noqa: E402
from wire.messages import parse_acks  # noqa: E402

import subprocess  # noqa: E402


def build_frames(n: int, image_kb: int) -> list[tuple[uuid.UUID, bytes]]:
    """N valid case frames; images are tagged variants of 3 generated JPEGs (distinct hashes)."""
    bases = [sample.make_jpeg(s, 640, 480, 85, noise=1.0) for s in range(3)]
    if len(bases[0]) < image_kb * 1000 * 0.9:  # pad to the size asked with a JPEG comment segment
        bases = [with_comment(b, os.urandom(min(60000, image_kb * 1000 - len(b)))) for b in bases]
    header, _ = sample.make_case(0, images=bases)
    frames = []
    for i in range(n):
        images = [with_comment(b, f"backlog-{i}-{j}".encode()) for j, b in enumerate(bases)]
        metas = [m.model_copy(update={"sha256": codec.sha256_hex(d), "length": len(d)})
                 for m, d in zip(header.images, images)]
        h = header.model_copy(update={"case_id": uuid.uuid4(), "seq": i, "images": metas})
        frames.append((h.case_id, codec.encode_case(h, images)))
    return frames


def main() -> None:
    """Fill the backlog, start the ingest, print the drain rate."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cases", type=int, default=10000)
    ap.add_argument("--image-kb", type=int, default=20, help="rough size of each image")
    args = ap.parse_args()
    frames = build_frames(args.cases, args.image_kb)
    mb = sum(len(f) for _, f in frames) / 1e6
    print(f"{args.cases} cases x 3 images, {mb / args.cases * 1000:.0f} KB per case frame, {mb:.0f} MB in all")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        broker = Broker(tmp / "broker")
        broker.write_conf()
        if os.geteuid() == 0 and "\nuser " not in "\n" + broker.conf.read_text():
            broker.extra_conf += "user root\n"
        broker.extra_conf += "autosave_interval 10\nautosave_on_changes false\n"
        broker.start()
        data = tmp / "centre"
        data.mkdir()
        cfg = data / "centre.toml"
        cfg.write_text(f'[broker]\nurl = "{broker.url}"\nclient_id = "backlog-ingest"\n'
                       f'[storage]\ndatabase = "{data}/centre.db"\nimages_dir = "{data}/images"\n'
                       f'quarantine_dir = "{data}/quarantine"\n[web]\nsecret_key_file = "{data}/secret"\n'
                       '[registry]\nrequire_registration = false\n')  # made-up kiosks: not in the kiosk registry
        cmd = [sys.executable, "-m", "dashboard", "ingest", "--config", str(cfg), "--log-level", "WARNING"]
        acks: set[uuid.UUID] = set()
        lock = threading.Lock()
        all_in = threading.Event()
        first_ack = [0.0]
        draining = threading.Event()

        def on_message(c, u, m):
            batch = parse_acks(m.payload)
            with lock:
                if not first_ack[0] and draining.is_set():
                    first_ack[0] = time.perf_counter()
                acks.update(ack.case_id for ack in batch)
                if len(acks) >= args.cases + 1:
                    all_in.set()

        pub = publisher(broker)
        pub.on_message = on_message
        pub.subscribe(topics.subscription(topics.ACK), qos=1)
        proc = subprocess.Popen(cmd, cwd=ROOT)
        try:
            warm_id, warm = build_frames(1, 5)[0]
            deadline = time.monotonic() + 30
            while warm_id not in acks:  # the session exists once this case is acked
                assert time.monotonic() < deadline, "ingest did not answer"
                pub.publish(topics.topic("site-1", "kiosk-1", topics.CASE), warm, qos=1)
                time.sleep(0.5)
            proc.terminate()
            proc.wait(30)
            acks.clear()
            acks.add(warm_id)
            t0 = time.perf_counter()
            infos = [pub.publish(topics.topic("site-1", "kiosk-1", topics.CASE), f, qos=1) for _, f in frames]
            for info in infos:
                info.wait_for_publish(120)
            print(f"backlog of {args.cases} cases queued at the broker in {time.perf_counter() - t0:.1f} s")
            draining.set()
            t_start = time.perf_counter()
            proc = subprocess.Popen(cmd, cwd=ROOT)
            assert all_in.wait(1800), f"only {len(acks) - 1} of {args.cases} acknowledged"
            t_end = time.perf_counter()
        finally:
            pub.loop_stop()
            pub.disconnect()
            proc.terminate()
            proc.wait(30)
            broker.stop()
    total = t_end - t_start
    drain = t_end - first_ack[0]
    print(f"drained in {total:.1f} s from process start: {args.cases / total:.0f} cases/s "
          f"({mb / total:.1f} MB/s); from the first ack: {args.cases / drain:.0f} cases/s")


if __name__ == "__main__":
    main()
