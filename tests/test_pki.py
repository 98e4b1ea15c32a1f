"""dashboard.pki: the CA, the certificates it issues, revocation, and the command line.

Checked with the ``cryptography`` parser and with OpenSSL itself (``openssl verify -crl_check``),
the same library Mosquitto uses to check client certificates.
"""

from __future__ import annotations

import ipaddress
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from dashboard.pki import Pki, PkiError

ROOT = Path(__file__).resolve().parents[1]


def cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def cn(c: x509.Certificate) -> str:
    return c.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value


def openssl_verify(pki: Pki, path: Path, crl: bool = True) -> tuple[bool, str]:
    """``openssl verify`` of ``path`` against the CA (and its CRL)."""
    args = ["openssl", "verify", "-CAfile", str(pki.ca_cert_path)]
    if crl:
        args += ["-crl_check", "-CRLfile", str(pki.crl_path)]
    r = subprocess.run(args + [str(path)], capture_output=True, text=True)
    return r.returncode == 0, r.stdout + r.stderr


@pytest.fixture
def pki(tmp_path):
    p = Pki(tmp_path / "pki")
    p.init()
    return p


def test_ca_is_a_p256_ca_and_keys_are_private(pki):
    ca = cert(pki.ca_cert_path)
    bc = ca.extensions.get_extension_for_class(x509.BasicConstraints)
    assert bc.critical and bc.value.ca and bc.value.path_length == 0
    ku = ca.extensions.get_extension_for_class(x509.KeyUsage).value
    assert ku.key_cert_sign and ku.crl_sign
    key = load_pem_private_key(pki.ca_key_path.read_bytes(), None)
    assert isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name == "secp256r1"
    assert stat.S_IMODE(pki.ca_key_path.stat().st_mode) == 0o600
    assert stat.S_IMODE(pki.dir.stat().st_mode) == 0o700
    with pytest.raises(PkiError, match="already holds a CA"):
        pki.init()


def test_broker_certificate_names_and_usage(pki):
    crt, key = pki.issue_broker("centre.example.org", ips=["10.0.0.5"])
    c = cert(crt)
    san = c.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert set(san.get_values_for_type(x509.DNSName)) == {"centre.example.org", "localhost"}
    assert set(san.get_values_for_type(x509.IPAddress)) == {ipaddress.ip_address("10.0.0.5"),
                                                            ipaddress.ip_address("127.0.0.1")}
    assert list(c.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == [ExtendedKeyUsageOID.SERVER_AUTH]
    assert not c.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert openssl_verify(pki, crt)[0]


def test_kiosk_and_ingest_client_certificates(pki):
    kc, kk = pki.issue_kiosk("kiosk-7")
    ic, ik = pki.issue_ingest()
    assert (cn(cert(kc)), cn(cert(ic))) == ("kiosk-7", "ingest")
    for c, k in ((kc, kk), (ic, ik)):
        eku = cert(c).extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        assert list(eku) == [ExtendedKeyUsageOID.CLIENT_AUTH]
        assert stat.S_IMODE(k.stat().st_mode) == 0o600
        assert openssl_verify(pki, c)[0]
        # the key belongs to the certificate
        assert load_pem_private_key(k.read_bytes(), None).public_key() == cert(c).public_key()


def test_kiosk_certificates_live_397_days_and_centre_ones_longer(pki):
    """A kiosk's key sits on a device in a surgery: 397 days at most (renewed yearly), site recorded."""
    from dashboard.pki import KIOSK_DAYS, LEAF_DAYS

    kc, _ = pki.issue_kiosk("kiosk-life", site="hub-1")
    ic, _ = pki.issue_ingest()
    life = lambda c: (cert(c).not_valid_after_utc - cert(c).not_valid_before_utc).days   # noqa: E731
    assert life(kc) == KIOSK_DAYS == 397 and life(ic) == LEAF_DAYS > KIOSK_DAYS
    assert [e.get("site") for e in pki.entries() if e["name"] == "kiosk-life"] == ["hub-1"]
    with pytest.raises(PkiError, match="site 'Hub 1'"):
        pki.issue_kiosk("kiosk-life2", site="Hub 1")
    with pytest.raises(PkiError, match="reserved"):
        pki.issue_kiosk("broker-admin")
    with pytest.raises(PkiError, match="already has a certificate"):
        pki.issue_kiosk("kiosk-life")          # a second one only by renew-kiosk


def test_each_ingest_process_has_its_own_identity(pki):
    """``issue-ingest --instance N``: CN ingest-N, beside ingest.crt; no kiosk may take an ingest-<n> name."""
    c2, k2 = pki.issue_ingest(instance=2)
    assert (c2, k2) == pki.paths("ingest-2") and c2.parent == pki.issue_ingest()[0].parent
    assert cn(cert(c2)) == "ingest-2" and openssl_verify(pki, c2)[0]
    with pytest.raises(PkiError, match="1 to 4"):
        pki.issue_ingest(instance=5)
    for name in ("ingest-2", "ingest-4", "ingest-9"):
        with pytest.raises(PkiError, match="reserved"):
            pki.issue_kiosk(name)
    assert pki.issue_kiosk("ingestion-1")[0].exists()  # only the ingest-<number> names are taken


@pytest.mark.parametrize("bad, msg", [("Kiosk_1", "must be 1-32 characters"), ("ingest", "reserved"),
                                      ("a" * 33, "must be 1-32"), ("../x", "must be 1-32"), ("", "must be")])
def test_device_id_is_validated(pki, bad, msg):
    with pytest.raises(PkiError, match=msg):
        pki.issue_kiosk(bad)


def test_revocation_goes_into_the_crl_and_openssl_refuses_the_certificate(pki):
    crt, _ = pki.issue_kiosk("kiosk-lost")
    old_serial = cert(crt).serial_number
    other, _ = pki.issue_kiosk("kiosk-ok")
    with pytest.raises(PkiError, match="already has a certificate"):
        pki.issue_kiosk("kiosk-lost")
    serials = pki.revoke("kiosk-lost")
    crl = x509.load_pem_x509_crl(pki.crl_path.read_bytes())
    assert crl.is_signature_valid(cert(pki.ca_cert_path).public_key())
    assert {format(r.serial_number, "x") for r in crl} == set(serials)
    assert crl.get_revoked_certificate_by_serial_number(cert(crt).serial_number) is not None
    ok, out = openssl_verify(pki, crt)
    assert not ok and "revoked" in out
    assert openssl_verify(pki, other)[0]
    with pytest.raises(PkiError, match="no live certificate"):
        pki.revoke("kiosk-lost")
    # A replacement kiosk with the same id gets a new certificate (new serial), which works.
    new, _ = pki.issue_kiosk("kiosk-lost")
    assert cert(new).serial_number != old_serial and openssl_verify(pki, new)[0]
    # Re-signing the CRL keeps the revocation.
    pki.write_crl(days=30)
    assert x509.load_pem_x509_crl(pki.crl_path.read_bytes()).get_revoked_certificate_by_serial_number(
        old_serial) is not None


def test_without_a_ca_issuing_says_what_to_do(tmp_path):
    with pytest.raises(PkiError, match="pki --dir .* init"):
        Pki(tmp_path / "none").issue_kiosk("kiosk-1")


@pytest.mark.skipif(not shutil.which("openssl"), reason="no openssl")
def test_command_line(tmp_path):
    d = tmp_path / "cli"

    def run(*args):
        return subprocess.run([sys.executable, "-m", "dashboard", "pki", "--dir", str(d), *args],
                              cwd=ROOT, capture_output=True, text=True, timeout=60)

    assert run("init").returncode == 0
    r = run("issue-kiosk", "kiosk-cli")
    assert r.returncode == 0 and str(d / "kiosks" / "kiosk-cli.crt") in r.stdout
    assert run("issue-broker", "localhost").returncode == 0 and run("issue-ingest").returncode == 0
    r = run("issue-kiosk", "Bad Id")
    assert r.returncode == 2 and r.stderr.startswith("pki: device id 'Bad Id'") and "Traceback" not in r.stderr
    r = run("revoke", "kiosk-cli")
    assert r.returncode == 0 and "broker not reloaded (no --broker-reload)" in r.stdout
    r = run("crl", "--broker-crl", str(tmp_path / "nowhere" / "crl.pem"))      # a folder that is not there
    assert r.returncode == 2 and "could not be copied to" in r.stderr and "Traceback" not in r.stderr
    assert not openssl_verify(Pki(d), d / "kiosks" / "kiosk-cli.crt")[0]
    assert run("crl").returncode == 0
    r = subprocess.run([sys.executable, "-m", "dashboard", "pki", "crl", "--dir", str(d)], cwd=ROOT,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and str(d / "crl.pem") in r.stdout      # --dir after the command too
    r = run("init")
    assert r.returncode == 2 and "already holds a CA" in r.stderr


def test_check_and_status(pki, tmp_path):
    pki.issue_broker("localhost")
    assert pki.check("broker") is None
    assert pki.check("kiosk-x") == "missing"
    kc, kk = pki.issue_kiosk("kiosk-x")
    assert pki.check("kiosk-x") is None
    other = Pki(tmp_path / "other")
    other.init()
    oc, ok = other.issue_kiosk("kiosk-x")
    kc.write_bytes(oc.read_bytes())
    assert pki.check("kiosk-x") == "the key does not belong to the certificate"
    kk.write_bytes(ok.read_bytes())
    assert pki.check("kiosk-x") == "not issued by this CA"
    pki.revoke("kiosk-x")
    pki.issue_kiosk("kiosk-x")
    assert pki.check("kiosk-x") is None
    lines = pki.status()
    assert any(line.startswith("kiosk-x") and "revoked" in line for line in lines)
    assert any(line.startswith("kiosk-x") and line.endswith("valid") for line in lines)
    assert lines[-1].startswith("CRL: next update")


def test_ca_key_with_a_passphrase(tmp_path, monkeypatch):
    monkeypatch.setenv("DERMKIOSK_CA_PASSPHRASE", "correct horse")
    p = Pki(tmp_path / "pp")
    p.init()
    assert b"ENCRYPTED" in p.ca_key_path.read_bytes()
    p.issue_kiosk("kiosk-1")
    monkeypatch.setenv("DERMKIOSK_CA_PASSPHRASE", "wrong")
    with pytest.raises(PkiError, match="does not open"):
        p.issue_kiosk("kiosk-2")
    monkeypatch.delenv("DERMKIOSK_CA_PASSPHRASE")
    with pytest.raises(PkiError, match="is encrypted: set DERMKIOSK_CA_PASSPHRASE"):
        p.revoke("kiosk-1")
    assert p.live("kiosk-1")                        # nothing recorded when the CA key did not open


def test_demo_pki_is_made_once_and_repaired(tmp_path):
    import demo

    first = demo.ensure_pki(tmp_path / "pki", "kiosk-demo")
    assert set(first) == {"broker", "ingest", "updates", "broker-admin", "kiosk"}
    before = {k: c.read_bytes() for k, (c, _) in first.items()}
    again = demo.ensure_pki(tmp_path / "pki", "kiosk-demo")
    assert {k: c.read_bytes() for k, (c, _) in again.items()} == before        # idempotent
    first["kiosk"][1].unlink()                                                  # a lost kiosk key
    repaired = demo.ensure_pki(tmp_path / "pki", "kiosk-demo")
    assert repaired["kiosk"][0].read_bytes() != before["kiosk"] and Pki(tmp_path / "pki").check("kiosk-demo") is None
    assert Pki(tmp_path / "pki").revoked_serials()                               # the old one is revoked
