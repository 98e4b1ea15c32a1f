"""Fault suite: nothing lost, nothing doubled, with real processes and real faults (issue 5).

    .venv/bin/python -m bench.faults [--trials 200] [--seed 1] [--plain] [--keep DIR]
    make bench-faults                  # 200 trials

Runs, for the whole suite (long-lived, restarted only when a fault kills them):

* Mosquitto with the repository's broker configuration (``firmware_config/mosquitto.demo.conf``
  via ``tests/broker.py``: TLS with client certificates, ACL, persistence saved every second);
  ``--plain`` uses tests/broker.py's plain loopback broker instead;
* the kiosk as ``python -m edge run`` (replay camera, the real model, outbox, link, kiosk page);
* the ingest as ``python -m dashboard ingest``.

A trial photographs one referral of 1-3 lesions through the kiosk page, as a photographer does
(sign in, open the appointment, patient, skin type, referral, consents, then per lesion its site
and the dermoscopic and close-up views, submit: one case per lesion, stored as one group), and
injects one fault at a random point:

* ``kiosk-kill``: kill -9 of the kiosk while the appointment's details or a lesion are entered,
  while a view is captured, while the referral is being stored (submit), or while the link
  publishes; the kiosk is started again (an appointment it held open is restored, and the next
  trial discards it);
* ``broker-restart``: the broker stopped (SIGTERM, it saves its persistence) and started;
* ``broker-kill``: kill -9 of the broker, started again after up to 0.5 s (the kiosk keeps
  every case until the centre acknowledges it, so what the broker had not yet saved is resent);
* ``ingest-kill``: kill -9 of the ingest while cases are being stored; started again.

Then it waits until the kiosk's queue is empty and checks the trial's cases. The "capture log"
is the driver's own record of every submit the page confirmed ("Referral saved") with, per
lesion, the SHA-256 of each view it downloaded from the page before submitting; a case committed
by a submit whose answer was lost to the kill is known from the kiosk's outbox (its
``cases``/``images`` tables, read-only). Every such case must be in the centre's database exactly
once (by case id and by the kiosk's seq), with the same image hashes, and each image file must
hash to its name.

The last line printed is ``captured=N delivered=N lost=L duplicated=D``; exit status 0 when
nothing was lost or doubled.

The suite's parts: bench/faults_procs.py (the service processes and the ingest's notify socket),
bench/faults_page.py (the kiosk page driven like its browser), bench/faults_check.py (the verdict).
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import sys
import tempfile
import threading
import time
import urllib.error
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.faults_check import Tally, check_cases, outbox_cases  # noqa: E402
from bench.faults_page import NHS_NUMBER, STAFF_ID, STAFF_PIN, VIEWS, Page, PageDown  # noqa: E402
from bench.faults_procs import Notify, Process  # noqa: E402
from tests.broker import Broker, free_port  # noqa: E402

__all__ = ["DEVICE", "FAULTS", "MODEL_DIR", "NHS_NUMBER", "QUIESCE_S", "SITE", "STAFF_ID", "STAFF_PIN", "VIEWS",
           "FaultSuite", "Notify", "Page", "PageDown", "Process", "Tally", "main"]

DEVICE = "kiosk-a"                     # a device the test PKI issues a certificate for
SITE = "fault-hub"
FAULTS = ("kiosk-kill", "broker-restart", "broker-kill", "ingest-kill")
MODEL_DIR = Path(os.environ.get("DERMKIOSK_TEST_MODEL_DIR", ROOT / "models" / "lesion"))
#: Seconds a trial may take to drain before its cases are counted as not delivered (yet).
QUIESCE_S = 90.0


class FaultSuite:
    """Broker, kiosk and ingest as real processes in ``workdir``; ``run(trials)`` -> :class:`Tally`."""

    def __init__(self, workdir: Path, tls: bool = True, seed: int = 1, log=print):
        """Prepare configs and processes (nothing started)."""
        self.dir = Path(workdir)
        self.tls = tls
        self.rng = random.Random(seed)
        self.log = log
        self.pki = None
        if tls:
            from tests.broker import TestPki

            self.pki = TestPki(self.dir / "pki")
        self.broker = Broker(self.dir / "broker", pki=self.pki)
        self.web_port = free_port()
        self.kiosk_data = self.dir / "kiosk" / "data"
        self.centre = self.dir / "centre"
        self.kiosk_conf = self.dir / "kiosk.toml"
        self.staff_file = self.dir / "staff.json"
        self.centre_conf = self.dir / "centre.toml"
        self.notify = Notify(self.dir / "notify.sock")
        self.kiosk = Process("kiosk", [sys.executable, "-m", "edge", "run", "--config", str(self.kiosk_conf)],
                             self.dir / "kiosk.log")
        self.ingest = Process("ingest", [sys.executable, "-m", "dashboard", "ingest", "--config",
                                         str(self.centre_conf), "--log-level", "WARNING"],
                              self.dir / "ingest.log", env={"NOTIFY_SOCKET": str(self.notify.path)})
        self.page = Page(self.web_port)
        #: view hashes of every lesion of every submit the page confirmed (the driver's capture log)
        self.capture_log: list[tuple[str, ...]] = []
        self._case_no = 0
        self._fault_lock = threading.Lock()

    # -- configuration --------------------------------------------------------------------------
    def _tls_lines(self, cert_key: tuple[Path, Path] | None) -> str:
        if not self.tls:
            return ""
        cert, key = cert_key
        return f'ca_file = "{self.pki.ca}"\ncert_file = "{cert}"\nkey_file = "{key}"\n'

    def write_kiosk_conf(self) -> None:
        """The kiosk's config; each start gets a new camera seed (the replay camera repeats a seed)."""
        if not self.staff_file.exists():
            from datetime import datetime, timezone

            from wire.staff import StaffMember, StaffRoster, hash_pin

            roster = StaffRoster(version="bench", issued_at=datetime.now(timezone.utc), staff=[
                StaffMember(staff_id=STAFF_ID, name="Bench Photographer", pin_hash=hash_pin(STAFF_PIN))])
            self.staff_file.write_text(roster.model_dump_json())
        cert_key = self.pki.kiosk(DEVICE) if self.tls else None
        self.kiosk_conf.write_text(f"""
device_id = "{DEVICE}"
site = "{SITE}"
model_dir = "{MODEL_DIR}"
data_dir = "{self.kiosk_data}"
classifier_threads = 1
log_level = "WARNING"
[broker]
url = "{self.broker.url}"
{self._tls_lines(cert_key)}reconnect_min_s = 0.2
reconnect_max_s = 1.0
max_inflight = 8
ack_timeout_s = 3
[camera]
source = "replay"
[camera.replay]
width = 640
height = 480
seed = {self.rng.randrange(1, 1 << 30)}
[capture]
required_views = ["dermoscopic"]
[appointment]
required_views = {list(VIEWS)!r}
staff_file = "{self.staff_file}"
[web]
port = {self.web_port}
[retention]
keep_delivered_s = 0
min_free_mb = 0
""")

    def write_centre_conf(self) -> None:
        """The ingest's config (its TLS identity is ``ingest``)."""
        cert_key = self.pki.pki.paths("ingest") if self.tls else None
        self.centre_conf.write_text(f"""
[broker]
url = "{self.broker.url}"
client_id = "{'ingest' if self.tls else 'fault-ingest'}"
{self._tls_lines(cert_key)}
[storage]
database = "{self.centre}/centre.db"
images_dir = "{self.centre}/images"
quarantine_dir = "{self.centre}/quarantine"
[web]
secret_key_file = "{self.centre}/secret"
[ingest]
storage_retry_s = 0.5
# the trials' kiosk is not in the kiosk registry (tests/test_registry_ingest.py tests that part)
[registry]
require_registration = false
""")

    # -- process control ------------------------------------------------------------------------
    def start_kiosk(self, timeout: float = 60) -> None:
        """Start ``python -m edge run`` and wait until its page answers."""
        self.write_kiosk_conf()
        self.kiosk.start()
        self.page.reset()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.kiosk.alive:
                raise RuntimeError(f"kiosk exited: {self.kiosk.log.read_text()[-2000:]}")
            try:
                self.page.status()
                return
            except PageDown:
                time.sleep(0.05)
        raise RuntimeError("kiosk page did not come up")

    def start_ingest(self, wait: bool = False) -> None:
        """Start ``python -m dashboard ingest`` (``wait``: until it has subscribed)."""
        self.notify.drain()
        self.ingest.start()
        if wait and not self.notify.wait_for("STATUS=subscribed", 60):
            raise RuntimeError(f"ingest did not subscribe: {self.ingest.log.read_text()[-2000:]}")

    def start(self) -> "FaultSuite":
        """Broker, ingest (first start creates its persistent session), kiosk."""
        self.broker.start()
        self.write_centre_conf()
        self.start_ingest(wait=True)
        self.start_kiosk()
        return self

    def close(self) -> None:
        """Stop everything."""
        for p in (self.kiosk, self.ingest):
            p.stop()
        self.broker.stop()
        self.notify.sock.close()

    def inject(self, fault: str) -> None:
        """Inject one fault (runs in a timer thread while the driver keeps using the page)."""
        with self._fault_lock:
            if fault == "kiosk-kill":
                self.kiosk.kill()              # started again by the trial once its steps end
            elif fault == "broker-restart":
                self.broker.stop()
                self.broker.start()
            elif fault == "broker-kill":
                self.broker.stop(kill=True)
                time.sleep(self.rng.uniform(0, 0.5))
                self.broker.start()
            elif fault == "ingest-kill":
                self.ingest.kill()
                time.sleep(self.rng.uniform(0, 0.3))
                self.start_ingest()

    # -- one trial -------------------------------------------------------------------------------
    def trial(self, index: int, tally: Tally) -> None:
        """Photograph a referral of 1-3 lesions with one fault injected at a random step; recover and drain."""
        n = self.rng.randint(1, 3)
        fault = self.rng.choice(FAULTS)
        steps = ["start", *(f"lesion-{i}" for i in range(1, n + 1)),
                 *(f"capture-{i}-{v}" for i in range(1, n + 1) for v in VIEWS)]
        points = steps + ["submit", "publish"]
        at = self.rng.choice(points)
        # into the step: entering details a few requests, a capture (camera, quality gate, classifier)
        # ~0.1 s, storing a referral (files, fsync, one commit) a few ms, publishing and acks tens of ms
        delay = self.rng.uniform(0, {"publish": 0.3, "submit": 0.02, "start": 0.3}.get(at, 0.12))
        timer: list[threading.Timer] = []
        tally.faults[fault] += 1
        tally.points[f"{fault}@{at.split('-')[0]}"] += 1

        def hook(step):
            if step == at and not timer:
                timer.append(threading.Timer(delay, self.inject, (fault,)))
                timer[0].start()

        try:
            self._case_no += 1
            got = self.page.capture_referral(self._case_no, n, hook)
            if got is not None:
                self.capture_log += [tuple(shas) for shas in got]
                tally.confirmed += len(got)
                tally.outcomes["saved"] += 1
            else:
                tally.outcomes["refused"] += 1
            hook("publish")
        except PageDown:
            tally.outcomes["page down (kiosk killed)"] += 1
        except urllib.error.HTTPError as exc:
            if exc.code not in (400, 500):      # 400: CSRF of a session that died with the kiosk
                raise
            tally.outcomes[f"HTTP {exc.code}"] += 1
            if tally.outcomes[f"HTTP {exc.code}"] <= 3:
                self.log(f"  trial {index}: the kiosk page answered HTTP {exc.code} at {exc.url}")
        if timer:
            timer[0].join()
        if self.broker.proc is None or self.broker.proc.poll() is not None:
            self.log(f"  trial {index}: the broker was down after the fault; starting it")
            self.broker.start()
        if not self.kiosk.alive:
            self.start_kiosk()
        if not self.ingest.alive:
            self.start_ingest()
        self.quiesce()

    def quiesce(self, timeout: float = QUIESCE_S) -> bool:
        """Wait until the kiosk's queue is empty (every case acknowledged by the centre)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if self.page.status()["queue_depth"] == 0:
                    return True
            except PageDown:
                if not self.kiosk.alive:
                    self.start_kiosk()
            time.sleep(0.05)
        self.log(f"  queue not empty after {timeout:.0f} s")
        return False

    # -- checking --------------------------------------------------------------------------------
    def outbox_cases(self) -> dict[str, tuple[int, str, list[str]]]:
        """Every case the kiosk ever committed: case_id -> (seq, state, [sha256 by position])."""
        return outbox_cases(self.kiosk_data)

    def check(self, tally: Tally) -> None:
        """Compare every committed case with the centre; fills captured/delivered/lost/duplicated."""
        check_cases(tally, self.kiosk_data, self.centre, self.capture_log, DEVICE)

    def run(self, trials: int, check_every: int = 25) -> Tally:
        """Run ``trials`` trials; a full check every ``check_every`` trials and at the end."""
        tally = Tally()
        t0 = time.monotonic()
        for i in range(1, trials + 1):
            self.trial(i, tally)
            if i % check_every == 0 or i == trials:
                self.check(tally)
                self.log(f"  trial {i}/{trials} ({time.monotonic() - t0:.0f} s): {tally.line()}"
                         + (f"  PROBLEM: {tally.problems[0]}" if tally.problems else ""))
        return tally


def main(argv: list[str] | None = None) -> int:
    """Run the suite and print the verdict line last."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=200)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--plain", action="store_true", help="plain MQTT test broker instead of the repo's TLS config")
    ap.add_argument("--keep", type=Path, help="work in this folder and keep it (logs, databases)")
    args = ap.parse_args(argv)
    if not (MODEL_DIR / "manifest.json").exists():
        print(f"no model in {MODEL_DIR}", file=sys.stderr)
        return 2
    workdir = args.keep or Path(tempfile.mkdtemp(prefix="dermkiosk-faults-"))
    workdir.mkdir(parents=True, exist_ok=True)
    print(f"fault suite: {args.trials} trials, seed {args.seed}, broker "
          f"{'plain test config' if args.plain else 'repository TLS config (mosquitto.demo.conf)'}, in {workdir}",
          flush=True)
    suite = FaultSuite(workdir, tls=not args.plain, seed=args.seed, log=lambda s: print(s, flush=True))
    t0 = time.monotonic()
    try:
        suite.start()
        tally = suite.run(args.trials)
    finally:
        suite.close()
        if args.keep is None:
            shutil.rmtree(workdir, ignore_errors=True)
    dt = time.monotonic() - t0
    print(f"{args.trials} trials in {dt:.0f} s; faults: "
          + ", ".join(f"{k} {v}" for k, v in sorted(tally.faults.items())))
    print("injected at: " + ", ".join(f"{k} {v}" for k, v in sorted(tally.points.items())))
    print("capture outcomes: " + ", ".join(f"{k} {v}" for k, v in sorted(tally.outcomes.items())))
    print(f"lesion cases confirmed on the page {tally.confirmed}; committed but unconfirmed (answer lost to a kill) "
          f"{tally.unconfirmed_committed}; kiosk starts {suite.kiosk.starts}, ingest starts {suite.ingest.starts}")
    for p in tally.problems[:20]:
        print(f"PROBLEM: {p}")
    print(tally.line(), flush=True)
    if tally.confirmed == 0:
        print("no save was confirmed on the kiosk page: the suite tested nothing", file=sys.stderr)
        return 1
    return 0 if tally.lost == 0 and tally.duplicated == 0 and not tally.problems else 1


if __name__ == "__main__":
    sys.exit(main())
