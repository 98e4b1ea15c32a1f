"""Ingest throughput (3 x ~300 KB JPEGs per case) beside raw broker-to-subscriber throughput, same bytes, same run.

    .venv/bin/python bench/ingest_throughput.py [--cases 600] [--image-kb 300] [--window 192] [--processes 1]

Starts its own Mosquitto (tests/broker.py) on a free loopback port, then:

* raw:    a bare paho subscriber process (QoS 1, persistent session, shared subscription and
          Receive Maximum like the ingest's) receives the N case frames and checks their byte count;
          time from the first publish to the last message received;
* ingest: ``python -m dashboard ingest`` (a process, as deployed) receives the same
          N frames, verifies, stores them (images durable, then the WAL commit) and acks;
          time from the first publish to the last Ack received by the publisher (acks come
          in batches: one Acks message per stored batch).

Both phases use the same frames, the same broker (same configuration, same process), the same
QoS, session kind and Receive Maximum, and alternate ``--repeat`` times.

The publisher keeps at most ``--window`` cases published and not yet taken by the consumer (raw:
received, as the subscriber reports; ingest: acked), 192 by default: 12 kiosks' in-flight windows
of 16, which is what the kiosks keep after an outage (edge/link/settings.py ``max_inflight``), so the broker
holds a bounded queue. ``--window 0`` publishes everything at once: the broker then holds the whole
backlog of the slower consumer in fresh memory (page faults and page clearing: a third of its CPU in
the ingest phase), a cost of the flood that the kiosks never make. Each consumer first takes
``--warmup`` cases untimed (their own images: nothing of the timed cases is stored before), so
that a running service is measured, not a process growing its heap.

``--processes N`` runs N ingest processes in one shared-subscription group on one store, as a
centre does with ``python -m dashboard ingest --instance N`` (systemd ``dermkiosk-ingest@N``; on
the centre's broker each has its own certificate, ``ingest-N``). One Python process keeps about
1.7 of this machine's 2 cores busy; two keep both.

Prints cases/s and MB/s of each, the ratio ingest / raw of the medians and the median, min and max of
each run's own ratio (its raw run just before it: same background load; the last line judges the issue's
goal, >= 0.5, on their median), the same for the steady rates (cases taken between the moments 10 %
and 90 % of a run's cases were: without the pipeline's filling and draining, for the ingest the commit
of its first and last batch), and per
phase the CPU milliseconds per case of the consumer, the broker, the publisher, the kernel's threads
and interrupts (writeback, journal, block completions) and the whole machine (not counting niced
processes), which shows whether a phase was bound by the machine's CPUs. On a machine shared with
other work the throughputs swing with that work; the "CPU per case" line gives the CPU each path costs per
case (consumer + broker + publisher + kernel threads and interrupts) and their ratio, which is the
throughput ratio to expect where both paths are CPU-bound on a machine of their own.

The broker saves its persistence file as the demo broker does
(firmware_config/mosquitto.demo.conf: every second, autosave_interval 1). ``--autosave-on-every-change``
uses tests/broker.py's setting instead (a full snapshot after each queued
message), which is the broker's cost, not the ingest's: with ~1 MB cases it
caps both paths at a few cases per second.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.proc_cpu import cpu_snapshot, file_creation_us, print_cpu  # noqa: E402
from bench.publish_kit import Progress, Window, build_frames, publish_all, publisher  # noqa: E402
from dashboard.config import load_config  # noqa: E402
from dashboard.ingest import Ingest  # noqa: E402
from tests.broker import Broker  # noqa: E402
from wire import topics  # noqa: E402
from wire.messages import parse_acks  # noqa: E402

RAW_TOPIC = "bench/raw"


def run_raw(broker: Broker, frames: list, receive_maximum: int = 32, warmup: list = (),
            window: int = 0) -> tuple[float, float, float]:
    """Seconds for the broker to deliver all frames to a bare subscriber process, CPU ms per case, and the
    steady rate (cases/s, :meth:`Progress.steady`).

    The ``warmup`` frames go first, untimed (the process reaches its steady memory footprint).
    """
    sub = subprocess.Popen([sys.executable, str(ROOT / "bench" / "raw_subscriber.py"), broker.host, str(broker.port), str(len(frames)),
                            str(receive_maximum), str(sum(len(f) for _, f in frames)), str(len(warmup))],
                           stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT)
    assert sub.stdout.readline().strip() == "ready"
    win = Window(window)
    events = {"warm": threading.Event(), "done": threading.Event()}
    progress, seen = Progress(), [0]

    def read() -> None:
        for line in sub.stdout:
            line = line.strip()
            if line.startswith("+"):
                win.taken(int(line[1:]))
                seen[0] += int(line[1:])
                if seen[0] > len(warmup):  # a timed case
                    progress.add(seen[0] - len(warmup) - progress.done)
            elif line in events:
                events[line].set()

    threading.Thread(target=read, daemon=True).start()
    pub = publisher(broker)
    if warmup:
        publish_all(pub, RAW_TOPIC, warmup, win)
        assert events["warm"].wait(600)
    cpu0 = cpu_snapshot(broker, sub.pid)
    t0 = time.perf_counter()
    publish_all(pub, RAW_TOPIC, frames, win)
    assert events["done"].wait(600)
    elapsed = time.perf_counter() - t0
    cpu = print_cpu("raw   ", "subscriber", cpu0, cpu_snapshot(broker, sub.pid), len(frames))
    sub.stdin.close()
    sub.wait(10)
    pub.loop_stop()
    pub.disconnect()
    return elapsed, cpu, progress.steady(len(frames))


def run_ingest(broker: Broker, frames: list, data: Path, client_id: str = "bench-ingest",
               receive_maximum: int = 32, warmup: list = (), processes: int = 1,
               decoder_threads: int = 4, window: int = 0, direct_io: bool = True) -> tuple[float, float, float]:
    """Seconds from the first publish until every case is stored and its Ack received, CPU ms per case, and the
    steady rate (cases/s, :meth:`Progress.steady`).

    The ``warmup`` frames are stored first, untimed (a running service, not a process's first seconds).
    With ``processes`` > 1, that many ingest processes share the subscription group and the store;
    their CPU is added up.
    """
    ids = [client_id] if processes == 1 else [f"{client_id}-{k}" for k in range(processes)]
    procs = []
    for cid in ids:
        cfg = data / f"{cid}.toml"
        cfg.write_text(f'[broker]\nurl = "{broker.url}"\nclient_id = "{cid}"\nreceive_maximum = {receive_maximum}\n'
                       f'[storage]\ndatabase = "{data}/centre.db"\nimages_dir = "{data}/images"\n'
                       f'quarantine_dir = "{data}/quarantine"\ndirect_io = {str(direct_io).lower()}\n'
                       f'[web]\nsecret_key_file = "{data}/secret"\n'
                       f'[ingest]\ndecoder_threads = {decoder_threads}\n'
                       '[registry]\nrequire_registration = false\n')  # made-up kiosks: not in the kiosk registry
        procs.append(subprocess.Popen([sys.executable, "-m", "dashboard", "ingest", "--config", str(cfg),
                                       "--log-level", "WARNING"], cwd=ROOT))
    pids = [p.pid for p in procs]
    acks: dict[uuid.UUID, str] = {}
    lock = threading.Lock()
    all_in = threading.Event()
    expected = {cid for cid, _ in frames}
    warm_ids = {cid for cid, _ in warmup}
    warmed = threading.Event()
    win = Window(window)
    progress = Progress()

    def on_message(c, u, m):
        batch = parse_acks(m.payload)
        with lock:
            new = [ack.case_id for ack in batch if ack.case_id not in acks]
            timed = sum(1 for cid in new if cid in expected)
            acks.update((ack.case_id, ack.status) for ack in batch)
            win.taken(len(new))
            if timed:
                progress.add(timed)
            if warm_ids <= acks.keys():
                warmed.set()
            if expected <= acks.keys():
                all_in.set()

    pub = publisher(broker)
    pub.on_message = on_message
    pub.subscribe(topics.subscription(topics.ACK), qos=1)
    try:
        # Warm-up case: proves the ingest is subscribed and has opened its database.
        warm_id, warm = build_frames(1, 10, tag="ping")[0]
        deadline = time.monotonic() + 30
        while warm_id not in acks:
            assert all(p.poll() is None for p in procs), "ingest exited"
            assert time.monotonic() < deadline, "ingest did not answer"
            pub.publish(topics.topic("site-1", "kiosk-1", topics.CASE), warm, qos=1)
            time.sleep(0.5)
        win.take()  # the ping's answer released a slot that it never took
        case_topic = topics.topic("site-1", "kiosk-1", topics.CASE)
        publish_all(pub, case_topic, warmup, win)
        assert warmed.wait(600), "the warm-up cases were not all acked"
        cpu0 = cpu_snapshot(broker, *pids)
        t0 = time.perf_counter()
        publish_all(pub, case_topic, frames, win)
        assert all_in.wait(600), f"only {len(acks)} acks"
        elapsed = time.perf_counter() - t0
        assert all(acks[cid] == "stored" for cid in expected), "some cases were not stored"
        # Every image was new, hence written: no set of frames shares an image with another.
        files = sum(1 for f in (data / "images").rglob("*") if f.is_file() and not f.name.startswith("."))
        assert files == 3 * (len(frames) + len(warmup) + 1), f"{files} image files stored"
        return (elapsed, print_cpu("ingest", "ingest", cpu0, cpu_snapshot(broker, *pids), len(frames)),
                progress.steady(len(frames)))
    finally:
        pub.loop_stop()
        pub.disconnect()
        for p in procs:
            p.terminate()
        for p, cid in zip(procs, ids):
            p.wait(30)
            # the shared group would go on queueing a share for the retired process's session
            assert Ingest(load_config(data / f"{cid}.toml")).end_session(), f"could not end {cid}'s session"



def main() -> None:
    """Run both measurements and print the figures."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cases", type=int, default=600,
                    help="timed cases per run (default 600: a run of ~1.5 s, which the ingest's fixed latency of "
                         "filling and draining its pipeline, ~0.1 s, distorts less than a shorter one)")
    ap.add_argument("--image-kb", type=int, default=300)
    ap.add_argument("--warmup", type=int, default=200,
                    help="cases each consumer takes, untimed, before the timed ones (steady memory footprint)")
    ap.add_argument("--repeat", type=int, default=3, help="alternating raw/ingest runs; medians are reported")
    ap.add_argument("--data-dir", type=Path, default=ROOT / "bench" / "out",
                    help="where the broker and the ingest keep their files, in a temp folder removed at the end "
                         "(default: bench/out, away from the test suite's churn in /tmp; see file_creation_us)")
    ap.add_argument("--autosave-on-every-change", action="store_true",
                    help="keep tests/broker.py's persistence setting (snapshot after every change)")
    ap.add_argument("--autosave-interval", type=int, default=1,
                    help="seconds between the broker's persistence saves (the repository's configs: 1)")
    ap.add_argument("--processes", type=int, default=1,
                    help="ingest processes sharing the subscription and the store (default 1)")
    ap.add_argument("--decoder-threads", type=int, default=4,
                    help="the ingest's [ingest] decoder_threads (default 4)")
    ap.add_argument("--window", type=int, default=192,
                    help="most cases published and not yet taken by the consumer, as a fleet's kiosks keep "
                         "(default 192: 12 kiosks x 16); 0: publish all at once (a flood the broker queues)")
    ap.add_argument("--direct-io", choices=("on", "off", "both"), default="on",
                    help="the ingest's [storage] direct_io (default on); both: each run also measures an ingest "
                         "writing through the page cache, right after or before (alternately) the direct one")
    ap.add_argument("--receive-maximum", type=int, default=32,
                    help="MQTT 5 Receive Maximum of both consumers (the ingest's default: 32)")
    args = ap.parse_args()
    frames = build_frames(args.cases, args.image_kb)
    warmup = build_frames(args.warmup, args.image_kb, tag="warm-up")
    mb = sum(len(f) for _, f in frames) / 1e6
    autosave = "on every change" if args.autosave_on_every_change else f"every {args.autosave_interval} s"
    print(f"{args.cases} cases x 3 images, {mb / args.cases * 1000:.0f} KB per case frame, {mb:.0f} MB in all; "
          f"broker autosave {autosave}; publisher window {args.window or 'none (flood)'}")
    raws, ings, raw_cpu, ing_cpu, raw_steady, ing_steady = [], [], [], [], [], []
    buffered: list[float] = []  # --direct-io both: the ingest runs writing through the page cache
    modes = {"on": [True], "off": [False], "both": [True, False]}[args.direct_io]
    args.data_dir.mkdir(parents=True, exist_ok=True)
    # ext4's "top of directory hierarchy" flag: each run's folder goes to a block group of its own, with
    # more free inodes than average, not beside the last run's store, deleted seconds ago (file_creation_us).
    subprocess.run(["chattr", "+T", str(args.data_dir)], capture_output=True, check=False)
    with tempfile.TemporaryDirectory(dir=args.data_dir) as tmp:
        tmp = Path(tmp)
        print(f"creating a file in {args.data_dir}: {file_creation_us(tmp / 'probe'):.0f} us (the ingest creates 3 per "
              f"case; a few us on a file system that was not just emptied, see file_creation_us)", flush=True)
        broker = Broker(tmp / "broker")
        broker.write_conf()
        if os.geteuid() == 0 and "\nuser " not in "\n" + broker.conf.read_text():
            # As root, Mosquitto drops to user 'mosquitto' and cannot write its persistence here.
            broker.extra_conf += "user root\n"
        if not args.autosave_on_every_change:
            broker.extra_conf += f"autosave_interval {args.autosave_interval}\nautosave_on_changes false\n"
        broker.start()
        try:
            for rep in range(args.repeat):  # alternate, so that background load hits both alike
                elapsed, cpu, steady = run_raw(broker, frames, args.receive_maximum, warmup, args.window)
                raws.append(elapsed)
                raw_cpu.append(cpu)
                raw_steady.append(steady)
                # Each run's store (~0.5 GB for 300 cases) is kept until the end, as a centre keeps its
                # images: deleting it between runs made the later runs' buffered writes dearer in the
                # kernel (ingest system CPU per case 0.77 -> 1.53 ms over 6 runs, on ext4 mounted with
                # online discard; 0.73 -> 1.00 when kept).
                for direct in modes if rep % 2 == 0 else modes[::-1]:
                    name = f"centre-{rep}" + ("" if direct else "-buffered")
                    (tmp / name).mkdir()
                    if not direct:
                        print("  (ingest writing through the page cache)")
                    elapsed, cpu, steady = run_ingest(broker, frames, tmp / name,
                                                      f"bench-ingest-{rep}-{int(direct)}", args.receive_maximum,
                                                      warmup, args.processes, args.decoder_threads, args.window,
                                                      direct)
                    if direct or args.direct_io == "off":
                        ings.append(elapsed)
                        ing_cpu.append(cpu)
                        ing_steady.append(steady)
                    else:
                        buffered.append(elapsed)
                line = (f"  run {rep + 1}: raw {args.cases / raws[-1]:7.1f} cases/s, "
                        f"ingest {args.cases / ings[-1]:7.1f} cases/s, ratio {raws[-1] / ings[-1]:.2f}; steady "
                        f"{raw_steady[-1]:7.1f} vs {ing_steady[-1]:7.1f}, ratio {ing_steady[-1] / raw_steady[-1]:.2f}")
                if buffered:
                    line += (f"; buffered ingest {args.cases / buffered[-1]:7.1f} cases/s, "
                             f"ratio {raws[-1] / buffered[-1]:.2f}")
                print(line, flush=True)
        finally:
            broker.stop()
    n = args.cases
    raw, ing = statistics.median(raws), statistics.median(ings)
    print(f"median of {args.repeat} runs:")
    print(f"raw broker->subscriber : {n / raw:8.1f} cases/s  {mb / raw:7.1f} MB/s")
    print(f"ingest (stored+acked)  : {n / ing:8.1f} cases/s  {mb / ing:7.1f} MB/s")
    print(f"ratio ingest/raw       : {raw / ing:8.2f}")
    if buffered:
        b = statistics.median(buffered)
        print(f"ingest, buffered writes: {n / b:8.1f} cases/s  {mb / b:7.1f} MB/s, ratio {raw / b:.2f}; "
              f"direct / buffered {b / ing:.2f} (paired median "
              f"{statistics.median(bb / ii for bb, ii in zip(buffered, ings)):.2f})")
    # Each ingest run follows its raw run by seconds: their own ratio shares that moment's background load.
    paired = sorted(r / i for r, i in zip(raws, ings))
    print(f"paired ratios          : median {statistics.median(paired):.2f}, "
          f"min {paired[0]:.2f}, max {paired[-1]:.2f} ({len(paired)} runs)")
    # The same runs between the moments 10 % and 90 % of their cases were taken: throughput without the
    # pipeline's filling and draining, which for the ingest include a batch's commit (fixed latency, not rate).
    rs, is_ = statistics.median(raw_steady), statistics.median(ing_steady)
    steady = sorted(i / r for r, i in zip(raw_steady, ing_steady))
    print(f"steady (10-90 % taken) : raw {rs:8.1f} cases/s, ingest {is_:8.1f} cases/s, ratio {is_ / rs:.2f}; "
          f"paired median {statistics.median(steady):.2f}, min {steady[0]:.2f}, max {steady[-1]:.2f}")
    # On a machine busy with other work the throughputs swing with that work; the CPU each path costs
    # per case (its processes, the broker, the publisher, kernel threads and interrupts) swings less. On
    # a dedicated machine where both paths are CPU-bound, throughput ratio = inverse ratio of CPU per case.
    rc, ic = statistics.median(raw_cpu), statistics.median(ing_cpu)
    print(f"CPU per case           : raw {rc:.2f} ms, ingest {ic:.2f} ms; "
          f"CPU-bound ratio raw/ingest CPU {rc / ic:.2f}")
    # The goal, judged as its ratio measured within one run (each ingest run beside its own raw run,
    # seconds apart, under the same background load), the median over the runs.
    goal = statistics.median(paired)
    print(f"goal ingest >= 0.5 x raw (median of the paired ratios): {goal:.2f}, {'met' if goal >= 0.5 else 'NOT met'}")


if __name__ == "__main__":
    main()
