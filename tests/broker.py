"""A real Mosquitto broker for tests: own config, free loopback port, own persistence folder.

Two modes: plain MQTT on loopback with anonymous access (most tests), or, with ``pki=``, the
repository's own broker configuration (``firmware_config/mosquitto.demo.conf``, rendered by
``demo.broker_conf``): TLS only, client certificates, identity as user name, and the access rules
of the dynamic-security plugin written from the test PKI (``dashboard.brokerctl.sync_file``).
:class:`TestPki` makes the CA and certificates for such a broker once per test session.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path


def retained(broker: "Broker", topic: str, timeout: float = 5.0) -> bytes:
    """The retained payload a new subscriber to ``topic`` gets; AssertionError if none comes in ``timeout`` s."""
    import queue
    import uuid

    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    got: queue.Queue[bytes] = queue.Queue()
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"retained-reader-{uuid.uuid4().hex[:6]}",
                    protocol=mqtt.MQTTv5)
    c.on_message = lambda client, userdata, msg: got.put(msg.payload)
    c.connect(broker.host, broker.port)
    c.loop_start()
    try:
        c.subscribe(topic, qos=1)
        return got.get(timeout=timeout)
    except queue.Empty:
        raise AssertionError(f"no retained message on {topic} within {timeout} s") from None
    finally:
        c.loop_stop()
        c.disconnect()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def mosquitto_binary() -> str:
    """Path of the mosquitto executable (apt installs it under /usr/sbin)."""
    exe = shutil.which("mosquitto") or ("/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None)
    if not exe:
        raise RuntimeError("mosquitto is not installed: run `make test`, which installs it with apt")
    return exe


class Broker:
    """One Mosquitto process on 127.0.0.1:<port>; ``restart()`` keeps port and persistence."""

    def __init__(self, workdir: Path, port: int | None = None, extra_conf: str = "",
                 pki: "TestPki | None" = None, template: Path | None = None):
        """A broker in ``workdir`` (not started); with ``pki`` it runs the repository's TLS config
        (``template``, default ``firmware_config/mosquitto.demo.conf``)."""
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.host = "127.0.0.1"
        self.port = port or free_port()
        self.extra_conf = extra_conf
        self.pki = pki
        self.template = template
        self.proc: subprocess.Popen | None = None
        self.conf = self.workdir / "mosquitto.conf"
        self.log = self.workdir / "mosquitto.log"
        #: Kiosks registered in the broker's access rules (TLS mode).
        self.kiosks: set[str] = set()

    def write_conf(self) -> None:
        """Write the broker's config: persistence on and saved on every change (plain mode), or the
        repository's TLS config with this broker's port, PKI and folders (TLS mode)."""
        if self.pki is not None:
            import demo
            from dashboard.brokerctl import DYNSEC_FILE, kiosks_of, sync_file

            (self.workdir / "broker").mkdir(exist_ok=True)
            sync_file(self.workdir / "broker" / DYNSEC_FILE, self.pki.pki)
            self.kiosks = set(kiosks_of(self.pki.pki))
            self.conf.write_text(demo.broker_conf((self.template or demo.BROKER_TEMPLATE).read_text(), self.port,
                                                  self.workdir, pki_dir=self.pki.dir)
                                 + f"\nlog_dest file {self.log}\n" + self.extra_conf)
            return
        self.conf.write_text(
            f"listener {self.port} 127.0.0.1\n"
            "allow_anonymous true\n"
            "persistence true\n"
            f"persistence_location {self.workdir}/\n"
            "autosave_interval 1\n"
            "autosave_on_changes true\n"
            "max_inflight_messages 100\n"
            "max_queued_messages 100000\n"
            "message_size_limit 0\n"
            f"log_dest file {self.log}\n"
            "log_type error\nlog_type warning\nlog_type notice\n"
            # as root, mosquitto drops to the `mosquitto` user and then cannot write its
            # persistence into pytest's root-owned 0700 temp folder: stay root in tests
            + ("user root\n" if os.geteuid() == 0 else "")
            + self.extra_conf
        )

    def start(self, timeout: float = 10.0) -> "Broker":
        """Start mosquitto and wait until its port accepts connections."""
        self.write_conf()
        self.proc = subprocess.Popen([mosquitto_binary(), "-c", str(self.conf)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mosquitto exited: {self.log.read_text() if self.log.exists() else ''}")
            try:
                with socket.create_connection((self.host, self.port), timeout=0.2):
                    return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("mosquitto did not open its port in time")

    def stop(self, kill: bool = False) -> None:
        """Stop the broker (SIGTERM, or SIGKILL with ``kill=True``)."""
        if self.proc and self.proc.poll() is None:
            (self.proc.kill if kill else self.proc.terminate)()
            self.proc.wait(10)
        self.proc = None

    def restart(self) -> None:
        """Stop and start again on the same port with the same persistence."""
        self.stop()
        self.start()

    def control(self):
        """A ``dashboard.brokerctl.BrokerControl`` on this (TLS) broker as the test PKI's broker-admin."""
        from dashboard.brokerctl import BROKER_ADMIN_CN, BrokerControl

        cert, key = self.pki.pki.paths(BROKER_ADMIN_CN)
        return BrokerControl(self.url, self.pki.ca, cert, key)

    @property
    def tls(self) -> bool:
        """Whether this broker runs the TLS configuration."""
        return self.pki is not None

    @property
    def url(self) -> str:
        """``mqtt://127.0.0.1:PORT``, or ``mqtts://127.0.0.1:PORT`` in TLS mode (an address in the
        broker certificate's names)."""
        return f"{'mqtts' if self.tls else 'mqtt'}://{self.host}:{self.port}"


class TestPki:
    """A CA and certificates made with ``dashboard.pki`` in ``directory`` (once per test session).

    ``kiosk(device)`` issues a kiosk certificate on first use; the ``revoked`` kiosk is revoked
    before any broker starts (Mosquitto reads the CRL at start); ``foreign`` is a second CA whose
    ``kiosk-a`` certificate the broker must refuse.
    """

    __test__ = False  # not a test class for pytest
    REVOKED = "kiosk-revoked"

    def __init__(self, directory: Path):
        """Create the CA, broker, ingest (processes 1 and 2), updates, broker-admin, ``kiosk-a``, ``kiosk-b``,
        a revoked kiosk and a foreign CA."""
        from dashboard.pki import Pki

        self.dir = Path(directory)
        self.pki = Pki(self.dir)
        self.pki.init()
        self.pki.issue_broker("localhost")
        self.pki.issue_ingest()
        self.pki.issue_ingest(instance=2)
        self.pki.issue_updates()
        self.pki.issue_broker_admin()
        for device in ("kiosk-a", "kiosk-b", self.REVOKED):
            self.pki.issue_kiosk(device)
        self.pki.revoke(self.REVOKED)
        self.foreign = Pki(self.dir / "foreign")
        self.foreign.init(name="Some other CA")
        self.foreign.issue_kiosk("kiosk-a")

    @property
    def ca(self) -> Path:
        """The CA certificate clients verify the broker with."""
        return self.pki.ca_cert_path

    def kiosk(self, device: str, foreign: bool = False) -> tuple[Path, Path]:
        """``(cert, key)`` of a kiosk, issued now if it has none yet."""
        pki = self.foreign if foreign else self.pki
        cert, key = pki.paths(device)
        if not cert.exists():
            pki.issue_kiosk(device)
        return cert, key

    def kiosk_broker(self, broker: Broker, device: str, foreign: bool = False, **kw) -> dict:
        """``[broker]`` settings (edge.link.BrokerSettings fields) for a kiosk on ``broker``; a kiosk
        issued after the broker started is registered there now (``pki issue-kiosk --broker``)."""
        cert, key = self.kiosk(device, foreign)
        self.register(broker, device)
        return {"url": broker.url, "ca_file": self.ca, "cert_file": cert, "key_file": key, **kw}

    def register(self, broker: Broker, device: str) -> None:
        """Register kiosk ``device`` in ``broker``'s access rules unless it is there already."""
        if broker.proc is not None and device not in broker.kiosks and self.pki.live(device):
            broker.control().add_kiosk(device)
            broker.kiosks.add(device)

    def ingest_broker(self, broker: Broker, identity: str = "ingest", **kw) -> dict:
        """``[broker]`` settings (dashboard.config.BrokerConfig fields) for the ingest on ``broker``
        (``identity="updates"``: the update publisher's certificate)."""
        cert, key = self.pki.paths(identity)
        return {"url": broker.url, "ca_file": self.ca, "cert_file": cert, "key_file": key, **kw}
