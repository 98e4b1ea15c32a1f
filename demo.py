#!/usr/bin/env python3
"""DermKiosk demo launcher (`make run`): the whole chain on one machine, with nothing else given.

Starts, in order, and watches:

1. Mosquitto with ``firmware_config/mosquitto.demo.conf`` (loopback, TLS only with client
   certificates and the ACL ``firmware_config/mosquitto.acl``; persistence in ``var/broker``),
2. the centre ingest   ``python -m dashboard ingest --config var/demo/centre.toml``,
3. the dashboard web   ``python -m dashboard serve  --config var/demo/centre.toml``,
4. the kiosk           ``python -m edge run --config var/demo/kiosk.toml``.

The runtime configs under ``var/demo/`` are the demo configs from ``firmware_config/`` with the
ports this run chose (the configured ones, or free ones when those are taken), absolute paths, and
``mqtts://`` with certificates from the demo PKI in ``var/demo/pki`` (made on the first run).
A worker that dies or stops answering is restarted (a bounded number of times, then the demo
stops).  Ctrl-C or SIGTERM stops everything in reverse order.  Logs: ``var/demo/logs/<name>.log``.
"""

from __future__ import annotations

import argparse
import ctypes
import datetime as dt
import enum
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import tomllib
import urllib.error
import urllib.request
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent
CONFIG_DIR = ROOT / "firmware_config"
BROKER_TEMPLATE = CONFIG_DIR / "mosquitto.demo.conf"
CENTRE_TEMPLATE = CONFIG_DIR / "centre.demo.toml"
KIOSK_TEMPLATE = CONFIG_DIR / "kiosk.demo.toml"
LOOPBACK = {"127.0.0.1", "localhost", "::1"}


class DemoError(Exception):
    """Something the demo cannot work around; ``str()`` is the message for the user."""


def say(msg: str) -> None:
    """Print one line of the launcher's own output."""
    print(f"[demo] {msg}", flush=True)


# ---------------------------------------------------------------- ports

def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    """Whether a TCP listener could bind ``host:port`` now (as Mosquitto and Werkzeug do, with
    SO_REUSEADDR: connections of a just-stopped run in TIME_WAIT do not make a port busy)."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str = "127.0.0.1", avoid: set[int] = frozenset()) -> int:
    """A TCP port on ``host`` that was free a moment ago and is not in ``avoid``."""
    while True:
        with socket.socket() as s:
            s.bind((host, 0))
            port = s.getsockname()[1]
        if port not in avoid:
            return port


def choose_port(preferred: int, explicit: bool, what: str, taken: set[int]) -> int:
    """The port to use: ``preferred`` if free, else (unless it was asked for explicitly) a free one."""
    if preferred not in taken and port_is_free(preferred):
        return preferred
    if explicit:
        raise DemoError(f"{what}: port {preferred} is already in use")
    port = free_port(avoid=taken)
    say(f"{what}: port {preferred} is busy, using {port}")
    return port


# ---------------------------------------------------------------- configs

def toml_dumps(data: dict) -> str:
    """Write a dict of TOML-able values (tables, arrays, strings, numbers, booleans, datetimes) as TOML."""

    def string(s: str) -> str:
        # JSON escapes ", \\ and C0 controls the TOML way; TOML also forbids a raw DEL.
        return json.dumps(s, ensure_ascii=False).replace("\x7f", "\\u007f")

    def key(k: str) -> str:
        return k if re.fullmatch(r"[A-Za-z0-9_-]+", k) else string(k)

    def value(v) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, (int, float)):
            return repr(v)
        if isinstance(v, str):
            return string(v)
        if isinstance(v, (dt.datetime, dt.date, dt.time)):
            return v.isoformat()
        if isinstance(v, (list, tuple)):
            return "[" + ", ".join(value(x) for x in v) + "]"
        if isinstance(v, dict):
            return "{" + ", ".join(f"{key(k)} = {value(x)}" for k, x in v.items() if x is not None) + "}"
        raise TypeError(f"cannot write {type(v).__name__} as TOML")

    def is_table_array(v) -> bool:
        return isinstance(v, list) and bool(v) and all(isinstance(x, dict) for x in v)

    out: list[str] = []

    def table(d: dict, path: list[str]) -> None:
        for k, v in d.items():
            if v is not None and not isinstance(v, dict) and not is_table_array(v):
                out.append(f"{key(k)} = {value(v)}")
        for k, v in d.items():
            if isinstance(v, dict):
                out.append("")
                out.append("[" + ".".join(key(p) for p in path + [k]) + "]")
                table(v, path + [k])
            elif is_table_array(v):
                for item in v:
                    out.append("")
                    out.append("[[" + ".".join(key(p) for p in path + [k]) + "]]")
                    table(item, path + [k])

    table(data, [])
    return "\n".join(out).lstrip("\n") + "\n"


def plain(value, state_dir: Path):
    """A pydantic ``model_dump()`` made TOML-able: relative paths made absolute (``var/...`` goes to
    ``state_dir``, anything else to the repository), enums to their values, ``None`` dropped."""
    if isinstance(value, Path):
        if value.is_absolute():
            return str(value)
        parts = value.parts
        if parts and parts[0] == "var":
            return str(state_dir.joinpath(*parts[1:]))
        return str(ROOT / value)
    if isinstance(value, enum.Enum):
        return value.value
    if hasattr(value, "get_secret_value"):
        return value.get_secret_value()
    if type(value).__module__.startswith("pydantic"):
        return str(value)
    if isinstance(value, dict):
        return {k: plain(v, state_dir) for k, v in value.items() if v is not None}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [plain(v, state_dir) for v in value]
    return value


def with_broker_port(url: str, port: int) -> str:
    """``url`` (mqtt://host:port) pointed at ``port`` when its host is loopback; else unchanged."""
    m = re.fullmatch(r"(mqtts?://)([^/:]+|\[[^\]]+\])(?::\d+)?(/.*)?", url)
    if not m or m.group(2).strip("[]") not in LOOPBACK:
        return url
    return f"{m.group(1)}{m.group(2)}:{port}{m.group(3) or ''}"


def patch(data: dict, broker_port: int, web_port: int | None) -> dict:
    """Point every loopback MQTT URL at ``broker_port`` and the ``[web]`` table at ``web_port``."""
    out = {}
    for k, v in data.items():
        if isinstance(v, dict):
            v = patch(v, broker_port, web_port)
            if k == "web" and web_port is not None and "port" in v:
                v["port"] = web_port
        elif isinstance(v, str) and v.startswith(("mqtt://", "mqtts://")):
            v = with_broker_port(v, broker_port)
        out[k] = v
    return out


def load_model(module: str, path: Path):
    """Load ``path`` with ``<module>.load_config`` or ``<module>.load`` (the service's own validation)."""
    import importlib

    from wire.tomlconfig import ConfigError

    mod = importlib.import_module(module)
    loader = getattr(mod, "load_config", None) or getattr(mod, "load")
    try:
        return loader(path)
    except ConfigError as exc:
        raise DemoError(str(exc)) from None


def web_of(cfg: dict, what: str) -> tuple[str, int]:
    """The (host, port) of the ``[web]`` table of a dumped config."""
    web = cfg.get("web")
    if not isinstance(web, dict) or "port" not in web:
        raise DemoError(f"{what}: no [web] port in its config")
    return str(web.get("host", "127.0.0.1")), int(web["port"])


def broker_template_port(text: str) -> int:
    """The port of the ``listener`` line of the demo broker config."""
    m = re.search(r"^\s*listener\s+(\d+)", text, re.M)
    if not m:
        raise DemoError(f"{BROKER_TEMPLATE}: no `listener PORT 127.0.0.1` line")
    return int(m.group(1))


#: Broker config lines naming TLS files: they point into the PKI folder (by file name).
TLS_FILE_KEYS = ("cafile", "certfile", "keyfile", "crlfile")
#: Broker config lines naming other files: relative paths are from the repository root.
REPO_FILE_KEYS = ("acl_file", "password_file")


def broker_conf(text: str, port: int, state_dir: Path, pki_dir: Path | None = None) -> str:
    """The runtime broker config: chosen port, absolute persistence folder, TLS files from
    ``pki_dir`` (default ``state_dir/demo/pki``), the repository's ACL file by absolute path, and
    (as root) `user root` so that Mosquitto can write the persistence folder we own."""
    text = re.sub(r"^(\s*listener\s+)\d+", rf"\g<1>{port}", text, flags=re.M)
    broker_dir = state_dir / "broker"
    text = re.sub(r"^(\s*persistence_location\s+).*$", rf"\g<1>{broker_dir}/", text, flags=re.M)
    pki_dir = Path(pki_dir) if pki_dir is not None else state_dir / "demo" / "pki"

    def tls_file(m: re.Match) -> str:
        return f"{m.group(1)}{pki_dir / Path(m.group(2).strip()).name}"

    def repo_file(m: re.Match) -> str:
        path = Path(m.group(2).strip())
        return f"{m.group(1)}{path if path.is_absolute() else ROOT / path}"

    text = re.sub(rf"^(\s*(?:{'|'.join(TLS_FILE_KEYS)})\s+)(.+)$", tls_file, text, flags=re.M)
    text = re.sub(rf"^(\s*(?:{'|'.join(REPO_FILE_KEYS)})\s+)(.+)$", repo_file, text, flags=re.M)
    if os.geteuid() == 0 and not re.search(r"^\s*user\s", text, re.M):
        text += "\n# demo.py runs as root: keep root so the persistence folder stays writable.\nuser root\n"
    return text


def ensure_pki(pki_dir: Path, device_id: str) -> dict[str, tuple[Path, Path]]:
    """The demo's PKI in ``pki_dir`` (``dashboard.pki``), made on first run and reused afterwards:
    CA and CRL, the broker's certificate (localhost, 127.0.0.1), the ingest's, the update
    publisher's, and the kiosk's (CN = its device id).
    Returns ``{"broker"|"ingest"|"updates"|"kiosk": (cert, key)}``."""
    from dashboard.pki import Pki, PkiError

    pki = Pki(pki_dir)
    try:
        if not pki.exists():
            pki.init(name="DermKiosk demo CA")
            say(f"made a demo certificate authority in {pki_dir}")
        out = {}
        for role, name, issue in (("broker", "broker", lambda: pki.issue_broker("localhost")),
                                  ("ingest", "ingest", pki.issue_ingest),
                                  ("updates", "updates", pki.issue_updates),
                                  ("kiosk", device_id, lambda: pki.issue_kiosk(device_id))):
            problem = pki.check(name)
            if problem is not None:
                if role == "kiosk" and pki.live(name):
                    pki.revoke(name)     # a kiosk gets a new certificate only once the old one is revoked
                issue()
                if problem != "missing":
                    say(f"demo PKI: {name} certificate was {problem}: issued a new one")
            out[role] = pki.paths(name)
        pki.write_crl()          # fresh at every start: an expired CRL would lock every client out
    except PkiError as exc:
        raise DemoError(f"demo PKI: {exc}") from None
    return out


#: Demo log-ins (one per dashboard role), re-set at every start; loopback-only demo, never production.
DEMO_USERS = (("derm", "dermatologist"), ("it", "it"), ("admin", "admin"))
DEMO_PASSWORD = "dermkiosk-demo"


def ensure_demo_users(centre_conf: Path) -> None:
    """Create (or re-set) the demo's dashboard users with ``python -m dashboard create-user ...
    --password-stdin --update``: the password goes through standard input, never the command line."""
    for name, role in DEMO_USERS:
        r = subprocess.run([sys.executable, "-m", "dashboard", "create-user", "--config", str(centre_conf),
                            "--username", name, "--role", role, "--password-stdin", "--update"],
                           input=DEMO_PASSWORD + "\n", capture_output=True, text=True, timeout=60, cwd=ROOT)
        if r.returncode != 0:
            raise DemoError(f"demo user {name}: {r.stderr.strip() or r.stdout.strip()}")


def with_tls(cfg: dict, ca: Path, cert: Path, key: Path) -> dict:
    """The ``[broker]`` table of a dumped config on this run's broker: ``mqtts://`` with the CA and
    the client's certificate and key (a broker elsewhere is left as configured)."""
    broker = dict(cfg.get("broker") or {})
    m = re.fullmatch(r"mqtts?://(([^/:]+|\[[^\]]+\]).*)", str(broker.get("url", "")))
    if not m or m.group(2).strip("[]") not in LOOPBACK:
        return cfg
    broker.update(url="mqtts://" + m.group(1), ca_file=str(ca), cert_file=str(cert), key_file=str(key))
    return {**cfg, "broker": broker}


@dataclass
class Plan:
    """What one demo run starts: ports, runtime config files and URLs."""

    state_dir: Path
    broker_port: int
    broker_conf: Path
    centre_conf: Path
    kiosk_conf: Path
    dashboard_url: str
    kiosk_url: str


def prepare(state_dir: Path, broker_port: int | None, dashboard_port: int | None,
            kiosk_port: int | None) -> Plan:
    """Choose the ports and write the runtime configs under ``state_dir/demo``."""
    for p in (BROKER_TEMPLATE, CENTRE_TEMPLATE, KIOSK_TEMPLATE):
        if not p.exists():
            raise DemoError(f"{p}: missing")
    run_dir = state_dir / "demo"
    run_dir.mkdir(parents=True, exist_ok=True)
    (state_dir / "broker").mkdir(parents=True, exist_ok=True)

    taken: set[int] = set()
    template = BROKER_TEMPLATE.read_text()
    bport = choose_port(broker_port or broker_template_port(template), broker_port is not None,
                        "broker", taken)
    taken.add(bport)
    pki_dir = run_dir / "pki"
    certs = ensure_pki(pki_dir, load_model("edge.config", KIOSK_TEMPLATE).device_id)
    bconf = run_dir / "mosquitto.conf"
    bconf.write_text(broker_conf(template, bport, state_dir, pki_dir))

    confs = {}
    urls = {}
    for name, module, template_path, asked in (
        ("centre", "dashboard.config", CENTRE_TEMPLATE, dashboard_port),
        ("kiosk", "edge.config", KIOSK_TEMPLATE, kiosk_port),
    ):
        model = load_model(module, template_path)
        cfg = plain(model.model_dump(), state_dir)
        host, port = web_of(cfg, name)
        wport = choose_port(asked or port, asked is not None,
                            "dashboard web" if name == "centre" else "kiosk web", taken)
        taken.add(wport)
        cfg = patch(cfg, bport, wport)
        cfg = with_tls(cfg, pki_dir / "ca.crt", *certs["ingest" if name == "centre" else "kiosk"])
        out = run_dir / f"{name}.toml"
        out.write_text(f"# Generated by demo.py from {template_path.relative_to(ROOT)}: do not edit.\n"
                       + toml_dumps(cfg))
        load_model(module, out)  # what we wrote must still be valid
        confs[name] = out
        shown = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
        urls[name] = f"http://{shown}:{wport}/"
    ensure_demo_users(confs["centre"])
    # The update publisher has its own identity (one broker session per certificate name):
    # python -m dashboard update publish BUNDLE --config var/demo/updates.toml --device DEVICE
    updates = with_tls({"broker": {"url": f"mqtt://127.0.0.1:{bport}"}}, pki_dir / "ca.crt", *certs["updates"])
    (run_dir / "updates.toml").write_text("# Generated by demo.py: the update publisher's broker settings.\n"
                                          + toml_dumps(updates))
    return Plan(state_dir, bport, bconf, confs["centre"], confs["kiosk"], urls["centre"], urls["kiosk"])


# ---------------------------------------------------------------- processes

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

    def __init__(self, plan: Plan, max_restarts: int = 3, restart_window: float = 60.0,
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
            say(f"  broker:      mqtts://127.0.0.1:{self.plan.broker_port} (TLS, client certificates "
                f"from {self.plan.state_dir / 'demo' / 'pki'})")
            say(f"  logs:        {self.plan.state_dir / 'demo' / 'logs'}")
            say("Open the kiosk page, start a case, capture, submit: it appears on the dashboard.")
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


def main(argv: list[str] | None = None) -> int:
    """Command line: ``python demo.py [--state-dir DIR] [--broker-port N] ...``."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--state-dir", type=Path, default=ROOT / "var",
                    help="where the demo keeps its data, runtime configs and logs (default: ./var)")
    ap.add_argument("--broker-port", type=int, help="MQTT/TLS port (default: 8883, or a free one if busy)")
    ap.add_argument("--dashboard-port", type=int, help="dashboard port (default: from centre.demo.toml)")
    ap.add_argument("--kiosk-port", type=int, help="kiosk page port (default: from kiosk.demo.toml)")
    ap.add_argument("--max-restarts", type=int, default=3,
                    help="restarts of a crashed worker within a minute before the demo gives up")
    ap.add_argument("--probe-interval", type=float, default=10.0,
                    help="seconds between liveness probes of the broker port and the two web pages")
    ap.add_argument("--probe-failures", type=int, default=3,
                    help="failed probes in a row after which a worker counts as hung and is restarted")
    args = ap.parse_args(argv)
    state_dir = args.state_dir.resolve()
    os.chdir(ROOT)  # the configs' relative paths (models/lesion, var/...) are from the repository root
    sys.path.insert(0, str(ROOT))
    try:
        for pkg in ("dashboard", "edge"):
            if not (ROOT / pkg / "__main__.py").exists():
                raise DemoError(f"{pkg}/__main__.py is missing: the `python -m {pkg}` command is not there")
        mosquitto_binary()
        plan = prepare(state_dir, args.broker_port, args.dashboard_port, args.kiosk_port)
    except DemoError as exc:
        say(f"error: {exc}")
        return 2
    return Demo(plan, max_restarts=args.max_restarts, probe_interval=args.probe_interval,
                probe_failures=args.probe_failures).run()


if __name__ == "__main__":
    sys.exit(main())
