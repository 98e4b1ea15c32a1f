"""Issue 25: revocation takes effect without a manual step. ``python -m dashboard pki revoke DEVICE``
with the broker options (real CLI, real Mosquitto running the repository's config): the CRL is
copied where the broker reads it and the broker reloaded, the kiosk's registration is deleted, its
open connection is dropped, and it can connect again neither with TLS nor do anything; other
kiosks carry on. Renewal (``pki renew-kiosk``) gives a working certificate under the same name."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from cryptography import x509

from dashboard.pki import KIOSK_DAYS, Pki
from tests.broker import Broker
from tests.tls_kit import Client, clients, kiosk, t  # noqa: F401  (clients: fixture)

ROOT = Path(__file__).resolve().parents[1]


def pki_cli(pki_dir: Path, *args: str) -> subprocess.CompletedProcess:
    """Run ``python -m dashboard pki --dir PKI_DIR ARGS`` and return the finished process."""
    return subprocess.run([sys.executable, "-m", "dashboard", "pki", "--dir", str(pki_dir), *args],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)


def connects(broker: Broker, device: str, cert: Path, key: Path, ca: Path, made: list) -> bool:
    """Whether a fresh connection with this certificate is accepted."""
    c = Client(broker, device, cert, key, ca)
    made.append(c)
    return c.wait_connected(3)


def test_pki_revoke_refuses_the_certificate_and_drops_its_open_connection(tmp_path, test_pki, clients):
    # Its own broker whose CRL is a copy (as on the centre: /etc/mosquitto/dermkiosk/crl.pem).
    crl_copy = tmp_path / "installed" / "crl.pem"
    crl_copy.parent.mkdir()
    crl_copy.write_bytes(test_pki.pki.crl_path.read_bytes())
    template = tmp_path / "broker.conf"
    from demo import BROKER_TEMPLATE

    template.write_text(BROKER_TEMPLATE.read_text().replace("crlfile var/demo/pki/crl.pem", "crlfile CRLCOPY"))
    broker = Broker(tmp_path / "b", pki=test_pki, template=template)
    broker.write_conf()
    broker.conf.write_text(broker.conf.read_text().replace(str(test_pki.dir / "CRLCOPY"), str(crl_copy)))
    broker.write_conf = lambda: None          # keep the edited config on start
    broker.start()
    try:
        r = pki_cli(test_pki.dir, "issue-kiosk", "kiosk-thief", "--broker", broker.url)
        assert r.returncode == 0 and "registered at" in r.stdout, r.stderr
        cert, key = test_pki.pki.paths("kiosk-thief")
        victim = Client(broker, "kiosk-thief", cert, key, test_pki.ca)
        clients.append(victim)
        assert victim.wait_connected()
        victim.c.reconnect_delay_set(0.2, 0.5)
        assert victim.subscribe(t("kiosk-thief", "ack")) == ["Granted QoS 1"]
        other = kiosk(broker, test_pki, clients, "kiosk-a")
        assert other.wait_connected()

        r = pki_cli(test_pki.dir, "revoke", "kiosk-thief", "--broker", broker.url, "--broker-crl", str(crl_copy),
                    "--broker-reload", f"kill -HUP {broker.proc.pid}")
        assert r.returncode == 0, r.stderr
        assert "deleted at the broker" in r.stdout and "reloaded" in r.stdout
        assert crl_copy.read_bytes() == test_pki.pki.crl_path.read_bytes()

        assert victim.gone.wait(5), "the revoked kiosk's open connection was not dropped"
        # paho reconnects on its own: the broker refuses it from now on.
        time.sleep(1.5)
        assert not victim.c.is_connected()
        assert not connects(broker, "kiosk-thief", cert, key, test_pki.ca, clients)
        assert "certificate revoked" in broker.log.read_text() or "verify failed" in broker.log.read_text()
        # Other kiosks carry on untouched.
        assert not other.gone.is_set()
        assert other.publish(t("kiosk-a", "health"), b"ok") in ("Success", "No matching subscribers")
        # After a restart (the rules as the plugin saved them) it stays out.
        broker.stop()
        broker.start()
        assert not connects(broker, "kiosk-thief", cert, key, test_pki.ca, clients)
        assert "kiosk-thief" not in broker.control().kiosks()
    finally:
        broker.stop()


def test_revoke_without_broker_options_says_what_is_left(tmp_path):
    pki = Pki(tmp_path / "pki")
    pki.init()
    pki.issue_kiosk("kiosk-z")
    r = pki_cli(pki.dir, "revoke", "kiosk-z")
    assert r.returncode == 0
    assert "no --broker" in r.stdout and "no --broker-reload" in r.stdout
    r = pki_cli(pki.dir, "revoke", "kiosk-z")
    assert r.returncode == 2 and "no live certificate for kiosk 'kiosk-z'" in r.stderr


def test_revoke_with_an_unreachable_broker_fails_naming_it(tmp_path):
    pki = Pki(tmp_path / "pki")
    pki.init()
    pki.issue_broker_admin()
    pki.issue_kiosk("kiosk-z")
    r = pki_cli(pki.dir, "revoke", "kiosk-z", "--broker", "mqtts://127.0.0.1:1")
    assert r.returncode == 2
    assert "revoked, but the broker did not drop kiosk-z" in r.stderr and "127.0.0.1:1" in r.stderr
    assert pki.check("kiosk-z") == "revoked"          # the revocation itself is kept
    r = pki_cli(pki.dir, "revoke", "kiosk-y", "--broker-reload", "false")
    assert r.returncode == 2 and "no live certificate" in r.stderr


def test_renew_kiosk_issues_a_working_certificate_under_the_same_name(tmp_path, test_pki, clients, tls_broker):
    test_pki.kiosk("kiosk-renew")
    test_pki.register(tls_broker, "kiosk-renew")
    old_cert = x509.load_pem_x509_certificate(test_pki.pki.paths("kiosk-renew")[0].read_bytes())
    old_copy = tmp_path / "old.crt", tmp_path / "old.key"
    for src, dst in zip(test_pki.pki.paths("kiosk-renew"), old_copy):
        dst.write_bytes(src.read_bytes())
    r = pki_cli(test_pki.dir, "renew-kiosk", "kiosk-renew")
    assert r.returncode == 0, r.stderr
    cert, key = test_pki.pki.paths("kiosk-renew")
    new = x509.load_pem_x509_certificate(cert.read_bytes())
    assert new.serial_number != old_cert.serial_number
    assert new.subject == old_cert.subject
    days = (new.not_valid_after_utc - new.not_valid_before_utc).days
    assert days == KIOSK_DAYS == 397
    # Both work until the old one is retired: the kiosk is not cut off before the new one is installed.
    assert connects(tls_broker, "kiosk-renew", cert, key, test_pki.ca, clients)
    assert connects(tls_broker, "kiosk-renew", *old_copy, test_pki.ca, clients)
    r = pki_cli(test_pki.dir, "renew-kiosk", "kiosk-renew", "--revoke-old",
                "--broker-reload", f"kill -HUP {tls_broker.proc.pid}")
    assert r.returncode == 0 and "reloaded" in r.stdout, r.stderr
    newest = test_pki.pki.paths("kiosk-renew")
    assert connects(tls_broker, "kiosk-renew", *newest, test_pki.ca, clients)
    assert not connects(tls_broker, "kiosk-renew", *old_copy, test_pki.ca, clients)
    r = pki_cli(test_pki.dir, "renew-kiosk", "kiosk-never-issued")
    assert r.returncode == 2 and "pki issue-kiosk kiosk-never-issued" in r.stderr
