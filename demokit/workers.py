"""The demo's watched child processes: started in order, probed, restarted, stopped in reverse order."""

from __future__ import annotations

import ctypes
import datetime as dt
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

from . import ROOT, DemoError, say
from .accounts import DEMO_PASSWORD, DEMO_PIN, DEMO_STAFF, DEMO_USERS


def _die_with_parent() -> None:
    """In the child: get SIGTERM when the launcher dies, even by SIGKILL (Linux prctl)."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def port_listening(port: int) -> bool | None:
    """Whether a TCP socket listens on ``port`` here, from /proc/net/tcp and tcp6 (None without /proc)."""
    seen = None
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        seen = False
        for row in rows:
            cols = row.split()
            if len(cols) > 3 and cols[3] == "0A" and int(cols[1].rsplit(":", 1)[1], 16) == port:  # 0A: LISTEN
                return True
    return seen


@dataclass
class Worker:
    """One watched child process."""

    name: str
    argv: list[str]
    log: Path
    ready_url: str | None = None
    ready_port: int | None = None
    proc: subprocess.Popen | None = None
    restarts: deque = field(default_factory=deque)
    probe_failures: int = 0
    next_probe: float = 0.0

    def start(self) -> None:
        """Start (or restart) the process, its output appended to its log file."""
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as fh:
            fh.write(f"\n--- {dt.datetime.now().isoformat(timespec='seconds')} start: "
                     f"{' '.join(self.argv)}\n".encode())
            fh.flush()
            env = dict(os.environ, PYTHONUNBUFFERED="1")
            self.proc = subprocess.Popen(self.argv, cwd=ROOT, stdout=fh, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, env=env, start_new_session=True,
                                         preexec_fn=_die_with_parent)

    def alive(self) -> bool:
        """Whether the process is running."""
        return self.proc is not None and self.proc.poll() is None

    def answers(self, timeout: float = 2.0) -> bool | None:
        """Whether the worker answers: its port listens (accepts), or its URL gives HTTP 200 (None:
        no probe).  The port is looked up in /proc/net/tcp rather than connected to: the TLS broker
        would log every bare probe connection as a failed handshake."""
        if self.ready_port is not None:
            listening = port_listening(self.ready_port)
            if listening is not None:
                return listening
            try:
                with socket.create_connection(("127.0.0.1", self.ready_port), timeout=timeout):
                    return True
            except OSError:
                return False
        if self.ready_url is not None:
            try:
                with urllib.request.urlopen(self.ready_url, timeout=timeout) as r:
                    return r.status == 200
            except (urllib.error.URLError, OSError):
                return False
        return None

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM, then SIGKILL after ``timeout`` seconds; waits until it is gone."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.send_signal(signal.SIGCONT)  # a stopped (hung) process must run to see SIGTERM
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                say(f"{self.name} did not stop in {timeout:.0f} s: killing it")
                self.proc.kill()
                self.proc.wait(5)

    def tail(self, n: int = 15) -> str:
        """The last ``n`` lines of the log."""
        try:
            lines = self.log.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join("    " + line for line in lines[-n:])


class Demo:
    """Starts the workers in order, watches them, stops them in reverse order."""

    def __init__(self, plan, max_restarts: int = 3, restart_window: float = 60.0,
                 ready_timeout: float = 60.0, probe_interval: float = 10.0, probe_failures: int = 3,
                 probe_grace: float = 30.0):
        py = sys.executable
        logs = plan.state_dir / "demo" / "logs"
        self.plan = plan
        self.max_restarts = max_restarts
        self.restart_window = restart_window
        self.ready_timeout = ready_timeout
        self.probe_interval = probe_interval
        self.probe_failures = probe_failures
        self.probe_grace = probe_grace
        self.stopping = False
        self.workers = [
            Worker("broker", [mosquitto_binary(), "-c", str(plan.broker_conf)], logs / "broker.log",
                   ready_port=plan.broker_port),
            Worker("ingest", [py, "-m", "dashboard", "ingest", "--config", str(plan.centre_conf)],
                   logs / "ingest.log"),
        ]
        pacs = getattr(plan, "pacs", None)
        if pacs is not None:  # the hospital's PACS, before the dashboard that sends to it
            from .pacs import orthanc_binary

            self.workers.append(Worker("pacs", [orthanc_binary(), str(pacs.conf)],
                                       logs / "pacs.log", ready_port=pacs.http_port))
        self.workers += [
            Worker("dashboard", [py, "-m", "dashboard", "serve", "--config", str(plan.centre_conf)],
                   logs / "dashboard.log", ready_url=plan.dashboard_url),
            Worker("kiosk", [py, "-m", "edge", "run", "--config", str(plan.kiosk_conf)],
                   logs / "kiosk.log", ready_url=plan.kiosk_url),
        ]

    def request_stop(self, signum, _frame) -> None:
        """Signal handler: ask the main loop to stop everything."""
        if not self.stopping:
            say(f"{signal.Signals(signum).name}: stopping")
        self.stopping = True

    def wait_ready(self, w: Worker) -> None:
        """Wait until ``w`` answers (its port accepts, its URL gives HTTP 200) or, with nothing to
        probe, has stayed up for a second."""
        deadline = time.monotonic() + self.ready_timeout
        started = time.monotonic()
        while not self.stopping:
            if not w.alive():
                raise DemoError(f"{w.name} exited with status {w.proc.returncode} while starting:\n"
                                f"{w.tail()}")
            answer = w.answers()
            if answer or (answer is None and time.monotonic() - started > 1.0):
                return
            if time.monotonic() > deadline:
                raise DemoError(f"{w.name} was not ready after {self.ready_timeout:.0f} s:\n{w.tail()}")
            time.sleep(0.2)

    def start_all(self) -> None:
        """Start the workers in order, each once the one before is ready."""
        for w in self.workers:
            if self.stopping:
                return
            w.start()
            say(f"started {w.name} (pid {w.proc.pid})")
            self.wait_ready(w)
            w.next_probe = time.monotonic() + self.probe_interval

    def stop_all(self) -> None:
        """Stop the workers in reverse order."""
        for w in reversed(self.workers):
            if w.alive():
                say(f"stopping {w.name}")
            w.stop()

    def restart(self, w: Worker, why: str) -> bool:
        """Restart ``w`` (``why`` says what happened); False when it failed too often to go on."""
        now = time.monotonic()
        while w.restarts and now - w.restarts[0] > self.restart_window:
            w.restarts.popleft()
        if len(w.restarts) >= self.max_restarts:
            say(f"{w.name} {why} {len(w.restarts) + 1} times in {self.restart_window:.0f} s: giving up\n"
                f"{w.tail()}")
            return False
        w.restarts.append(now)
        say(f"{w.name} {why}: restarting ({len(w.restarts)}/{self.max_restarts})\n{w.tail(8)}")
        w.stop(timeout=5)
        time.sleep(min(2 ** (len(w.restarts) - 1), 8) * 0.5)
        w.start()
        w.probe_failures = 0
        w.next_probe = time.monotonic() + self.probe_grace
        say(f"restarted {w.name} (pid {w.proc.pid})")
        return True

    def watch(self) -> int:
        """The watchdog: restart a worker that exits, or that stops answering its probe
        ``probe_failures`` times in a row; give up (1) after ``max_restarts`` restarts of one worker
        within ``restart_window`` seconds.  Returns 0 when asked to stop."""
        while not self.stopping:
            for w in self.workers:
                if self.stopping:
                    break
                if not w.alive():
                    if not self.restart(w, f"exited (status {w.proc.returncode})"):
                        return 1
                    continue
                if time.monotonic() < w.next_probe:
                    continue
                w.next_probe = time.monotonic() + self.probe_interval
                if w.answers() is False:
                    w.probe_failures += 1
                    if w.probe_failures >= self.probe_failures:
                        if not self.restart(w, f"did not answer {w.probe_failures} probes"):
                            return 1
                else:
                    w.probe_failures = 0
            time.sleep(0.3)
        return 0

    def run(self) -> int:
        """Start, print where to look, watch until a signal; always stop everything."""
        signal.signal(signal.SIGINT, self.request_stop)
        signal.signal(signal.SIGTERM, self.request_stop)
        signal.signal(signal.SIGHUP, self.request_stop)
        try:
            self.start_all()
            if self.stopping:
                return 0
            say("DermKiosk demo is running")
            say(f"  kiosk page:  {self.plan.kiosk_url}")
            say(f"  dashboard:   {self.plan.dashboard_url}")
            say(f"  log-in:      {', '.join(n for n, _ in DEMO_USERS)} (dermatologist, IT, admin), "
                f"password {DEMO_PASSWORD!r} (demo only; pages bind to 127.0.0.1)")
            say(f"  kiosk staff: {DEMO_STAFF[1]}, staff id {DEMO_STAFF[0]!r}, PIN {DEMO_PIN!r} "
                f"(managed on the dashboard: admin, Kiosk staff)")
            say(f"  broker:      mqtts://127.0.0.1:{self.plan.broker_port} (TLS, client certificates "
                f"from {self.plan.state_dir / 'demo' / 'pki'})")
            say(f"  metrics:     curl -H 'Authorization: Bearer {metrics_token(self.plan.centre_conf)}' "
                f"{self.plan.dashboard_url}metrics")
            if getattr(self.plan, "pacs", None) is not None:
                say(f"  PACS:        {self.plan.pacs.explorer_url} (Orthanc Explorer; user dermkiosk, password in "
                    f"{self.plan.pacs.password_file}): signed referrals arrive here as DICOM")
            say(f"  logs:        {self.plan.state_dir / 'demo' / 'logs'}")
            say("Open the kiosk page, sign in, photograph a referral, submit: it appears on the dashboard.")
            say("Press Ctrl-C to stop.")
            return self.watch()
        except DemoError as exc:
            say(f"error: {exc}")
            return 1
        finally:
            self.stop_all()
            say("stopped")


def mosquitto_binary() -> str:
    """Path of the mosquitto executable (apt puts it in /usr/sbin, often not on a user's PATH)."""
    exe = shutil.which("mosquitto") or ("/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None)
    if not exe:
        raise DemoError("mosquitto is not installed: `make run` installs it with apt")
    return exe


def metrics_token(centre_conf: Path) -> str:
    """The ``/metrics`` bearer token in the demo centre's config (for the banner)."""
    from dashboard.config import load_config

    return load_config(centre_conf).web.metrics_token or "(none configured)"

