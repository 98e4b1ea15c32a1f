"""Device identity: a small certificate authority for the broker, the ingest and every kiosk.

Command line: ``python -m dashboard pki ...`` (:mod:`dashboard.pkicli`).

Keys are EC P-256, written with mode 0600. Mosquitto authenticates clients by
their certificate (``require_certificate``) and takes the common name as the
user name (``use_identity_as_username``), so the CN is what the broker's access
rules see: a kiosk's CN is its device id, the ingest's is ``ingest``, the update
publisher's ``updates`` (see :mod:`dashboard.brokerctl`).

Layout of DIR::

    ca.crt  ca.key  crl.pem  index.json
    broker.crt  broker.key  ingest.crt  ingest.key  updates.crt  updates.key  broker-admin.crt/.key
    kiosks/<device>.crt  kiosks/<device>.key

``index.json`` lists every certificate issued (serial, CN, kind, a kiosk's site,
revocation time); the CRL and the broker's access rules (:mod:`dashboard.brokerctl`) are made
from it. Keep ``ca.key`` off the broker host in
production: only ``ca.crt`` and ``crl.pem`` are needed there. With
``$DERMKIOSK_CA_PASSPHRASE`` set, ``init`` encrypts the CA key with it and every
command that signs needs it.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import os
import re
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from wire.topics import check_id

from .brokerctl import BROKER_ADMIN_CN
from .config import MAX_INGEST_INSTANCES
from .pkifiles import key_pem as _key_pem, write_private as _write_private, write_public as _write_public

#: The ingest's certificate CN (its MQTT user name); no kiosk may take it.
INGEST_CN = "ingest"
#: The certificate names of the centre's ingest processes: ``ingest``, ``ingest-2`` ... (see
#: :func:`dashboard.config.ingest_instance`; the broker's ACL grants each the ingest's topics).
INGEST_NAMES = (INGEST_CN, *(f"{INGEST_CN}-{n}" for n in range(2, MAX_INGEST_INSTANCES + 1)))
#: The update publisher's certificate CN (``python -m dashboard update publish``).
UPDATES_CN = "updates"
#: Names a kiosk cannot have (they are other identities on the broker), and any ``ingest-<number>``.
RESERVED = {*INGEST_NAMES, UPDATES_CN, BROKER_ADMIN_CN, "broker", "admin", "root"}
CA_DAYS = 3650
#: Centre certificates (broker, ingest, updates, broker-admin): on the centre's own servers.
LEAF_DAYS = 825
#: Kiosk certificates: the key sits on a device in a GP surgery, where it can be stolen with the
#: device, so it lives at most 397 days (the CA/Browser Forum's cap for public TLS certificates):
#: renewed yearly (``pki renew-kiosk``) with a month to spare.
KIOSK_DAYS = 397
CRL_DAYS = 365
#: Environment variable holding the CA key's passphrase (optional).
PASSPHRASE_ENV = "DERMKIOSK_CA_PASSPHRASE"


def _passphrase() -> bytes | None:
    value = os.environ.get(PASSPHRASE_ENV)
    return value.encode() if value else None


class PkiError(Exception):
    """A PKI command cannot do what was asked; ``str()`` says why and what to do."""


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


class Pki:
    """The certificate authority kept in one folder (see the module docstring for the layout)."""

    def __init__(self, directory: Path | str):
        """Use the PKI in ``directory`` (nothing is read or written until a method is called)."""
        self.dir = Path(directory)

    # ------------------------------------------------------------------ paths
    @property
    def ca_cert_path(self) -> Path:
        """The CA certificate (give it to every broker and client)."""
        return self.dir / "ca.crt"

    @property
    def ca_key_path(self) -> Path:
        """The CA private key (keep it secret, ideally offline)."""
        return self.dir / "ca.key"

    @property
    def crl_path(self) -> Path:
        """The certificate revocation list the broker loads (``crlfile``)."""
        return self.dir / "crl.pem"

    @property
    def index_path(self) -> Path:
        """The list of issued certificates."""
        return self.dir / "index.json"

    def paths(self, name: str) -> tuple[Path, Path]:
        """``(cert, key)`` paths of ``broker``, ``ingest`` or a kiosk device id."""
        if name in ("broker", UPDATES_CN, BROKER_ADMIN_CN, *INGEST_NAMES):
            return self.dir / f"{name}.crt", self.dir / f"{name}.key"
        return self.dir / "kiosks" / f"{name}.crt", self.dir / "kiosks" / f"{name}.key"

    # ------------------------------------------------------------------ CA
    def exists(self) -> bool:
        """Whether this folder holds a CA (certificate and key)."""
        return self.ca_cert_path.exists() and self.ca_key_path.exists()

    def init(self, name: str = "DermKiosk device CA", force: bool = False) -> Path:
        """Create the CA key and self-signed certificate and an empty CRL; return the CA cert path.

        Refuses when a CA is already there (every certificate issued by it would be
        orphaned) unless ``force``.
        """
        if self.exists() and not force:
            raise PkiError(f"{self.dir} already holds a CA ({self.ca_cert_path}); "
                           "use another --dir, or --force to replace it (all issued certificates stop working)")
        self.dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.dir, 0o700)
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "DermKiosk"),
                             x509.NameAttribute(NameOID.COMMON_NAME, name)])
        now = _now()
        ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
        cert = (x509.CertificateBuilder()
                .subject_name(subject).issuer_name(subject).public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(now - dt.timedelta(minutes=5))
                .not_valid_after(now + dt.timedelta(days=CA_DAYS))
                .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
                .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False,
                                             key_encipherment=False, data_encipherment=False,
                                             key_agreement=False, key_cert_sign=True, crl_sign=True,
                                             encipher_only=False, decipher_only=False), critical=True)
                .add_extension(ski, critical=False)
                .sign(key, hashes.SHA256()))
        _write_private(self.ca_key_path, _key_pem(key, _passphrase()))
        _write_public(self.ca_cert_path, cert.public_bytes(serialization.Encoding.PEM))
        self._save_index([])
        self.write_crl()
        return self.ca_cert_path

    def _ca(self) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
        if not self.exists():
            raise PkiError(f"no CA in {self.dir}: run `python -m dashboard pki --dir {self.dir} init` first")
        cert = x509.load_pem_x509_certificate(self.ca_cert_path.read_bytes())
        try:
            key = serialization.load_pem_private_key(self.ca_key_path.read_bytes(), password=_passphrase())
        except TypeError:
            raise PkiError(f"{self.ca_key_path} is encrypted: set {PASSPHRASE_ENV} to its passphrase") from None
        except ValueError:
            raise PkiError(f"{self.ca_key_path} does not open with the passphrase in {PASSPHRASE_ENV}") from None
        return cert, key

    def entries(self) -> list[dict]:
        """Every certificate issued (``index.json``): serial, name, cn, kind, issued_at,
        expires_at, revoked_at, and for a kiosk its site (or None)."""
        return self._index()

    def _index(self) -> list[dict]:
        if not self.index_path.exists():
            return []
        return json.loads(self.index_path.read_text())

    def _save_index(self, entries: list[dict]) -> None:
        _write_public(self.index_path, (json.dumps(entries, indent=1) + "\n").encode())

    # ------------------------------------------------------------------ issuing
    def _issue(self, name: str, kind: str, cn: str, san: list[x509.GeneralName] | None,
               eku: x509.ObjectIdentifier, days: int, site: str | None = None,
               renew: bool = False) -> tuple[Path, Path]:
        if days < 1:
            raise PkiError(f"--days must be at least 1, not {days}")
        ca_cert, ca_key = self._ca()
        entries = self._index()
        live = self.live(name)
        cert_path, key_path = self.paths(name)
        if live and kind == "kiosk" and not renew:
            raise PkiError(f"kiosk {name} already has a certificate (serial {live[0]['serial']}); "
                           f"revoke it first (`pki revoke {name}`) to issue a new one")
        key = ec.generate_private_key(ec.SECP256R1())
        now = _now()
        b = (x509.CertificateBuilder()
             .subject_name(x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "DermKiosk"),
                                      x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
             .issuer_name(ca_cert.subject).public_key(key.public_key())
             .serial_number(x509.random_serial_number())
             .not_valid_before(now - dt.timedelta(minutes=5))
             .not_valid_after(min(now + dt.timedelta(days=days), ca_cert.not_valid_after_utc))
             .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
             .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False,
                                          key_encipherment=False, data_encipherment=False,
                                          key_agreement=False, key_cert_sign=False, crl_sign=False,
                                          encipher_only=False, decipher_only=False), critical=True)
             .add_extension(x509.ExtendedKeyUsage([eku]), critical=False)
             .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
             .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                            critical=False))
        if san:
            b = b.add_extension(x509.SubjectAlternativeName(san), critical=False)
        cert = b.sign(ca_key, hashes.SHA256())
        _write_private(key_path, _key_pem(key))
        _write_public(cert_path, cert.public_bytes(serialization.Encoding.PEM))
        entries.append({"serial": format(cert.serial_number, "x"), "name": name, "cn": cn, "kind": kind,
                        "issued_at": now.isoformat(timespec="seconds"),
                        "expires_at": cert.not_valid_after_utc.isoformat(timespec="seconds"),
                        "revoked_at": None, **({"site": site} if kind == "kiosk" else {})})
        self._save_index(entries)
        return cert_path, key_path

    def issue_kiosk(self, device_id: str, days: int = KIOSK_DAYS, site: str | None = None) -> tuple[Path, Path]:
        """Issue a kiosk client certificate with CN = ``device_id``, bound to hub ``site`` when given
        (the broker then lets it publish only under that site); return ``(cert, key)`` paths."""
        try:
            check_id(device_id, "device id")
            if site is not None:
                check_id(site, "site")
        except ValueError as exc:
            raise PkiError(str(exc)) from None
        if device_id in RESERVED or re.fullmatch(rf"{INGEST_CN}-[0-9]+", device_id):
            raise PkiError(f"device id {device_id!r} is reserved (it names another identity on the broker)")
        return self._issue(device_id, "kiosk", device_id, None, ExtendedKeyUsageOID.CLIENT_AUTH, days, site)

    def renew_kiosk(self, device_id: str, days: int = KIOSK_DAYS, revoke_old: bool = False) -> tuple[Path, Path]:
        """Issue kiosk ``device_id`` a new certificate and key (same name and site) while its
        current one is live; return ``(cert, key)``. The old certificate stays valid until it
        expires, so the kiosk keeps working until the new one is installed, unless ``revoke_old``
        (then it is revoked at once and the CRL rewritten)."""
        live = self.live(device_id)
        if not live or live[-1]["kind"] != "kiosk":
            raise PkiError(f"kiosk {device_id!r} has no live certificate to renew: "
                           f"issue one with `pki issue-kiosk {device_id}`")
        old = [e["serial"] for e in live]
        paths = self._issue(device_id, "kiosk", device_id, None, ExtendedKeyUsageOID.CLIENT_AUTH, days,
                            live[-1].get("site"), renew=True)
        if revoke_old:
            self._revoke_serials(device_id, old)
        return paths

    def issue_broker_admin(self, days: int = LEAF_DAYS) -> tuple[Path, Path]:
        """Issue (or renew) the certificate that may change the broker's access rules (CN
        ``broker-admin``, :class:`dashboard.brokerctl.BrokerControl`); return ``(cert, key)``."""
        return self._issue(BROKER_ADMIN_CN, "admin", BROKER_ADMIN_CN, None, ExtendedKeyUsageOID.CLIENT_AUTH, days)

    def issue_ingest(self, days: int = LEAF_DAYS, instance: int = 1) -> tuple[Path, Path]:
        """Issue (or renew) the client certificate of ingest process ``instance``: CN ``ingest``, or
        ``ingest-<instance>`` from 2 on (files ``ingest-<instance>.crt/.key``); return ``(cert, key)``."""
        if not 1 <= instance <= MAX_INGEST_INSTANCES:
            raise PkiError(f"ingest instance must be 1 to {MAX_INGEST_INSTANCES}, not {instance}")
        name = INGEST_NAMES[instance - 1]
        return self._issue(name, "ingest", name, None, ExtendedKeyUsageOID.CLIENT_AUTH, days)

    def issue_updates(self, days: int = LEAF_DAYS) -> tuple[Path, Path]:
        """Issue (or renew) the update publisher's client certificate, CN ``updates``; return ``(cert, key)``.

        A separate identity from the ingest's: the broker gives each certificate name one session.
        """
        return self._issue(UPDATES_CN, "updates", UPDATES_CN, None, ExtendedKeyUsageOID.CLIENT_AUTH, days)

    def issue_broker(self, host: str, ips: list[str] = (), days: int = LEAF_DAYS) -> tuple[Path, Path]:
        """Issue (or renew) the broker's server certificate for ``host``; return ``(cert, key)``.

        The subject alternative names are ``host`` (DNS name or IP address), ``localhost``,
        127.0.0.1 and every address in ``ips``: clients check the name they connect to.
        """
        san: list[x509.GeneralName] = []
        try:
            addrs = [ipaddress.ip_address(host)]
        except ValueError:
            if not host or any(c in host for c in " /:@"):
                raise PkiError(f"broker host {host!r} is not a DNS name or IP address") from None
            san.append(x509.DNSName(host))
            addrs = []
        if "localhost" != host:
            san.append(x509.DNSName("localhost"))
        try:
            addrs += [ipaddress.ip_address(i) for i in ips]
        except ValueError as exc:
            raise PkiError(f"--ip: {exc}") from None
        addrs.append(ipaddress.ip_address("127.0.0.1"))
        for a in dict.fromkeys(addrs):
            san.append(x509.IPAddress(a))
        return self._issue("broker", "broker", host, san, ExtendedKeyUsageOID.SERVER_AUTH, days)

    # ------------------------------------------------------------------ revocation
    def revoke(self, device_id: str) -> list[str]:
        """Revoke every live certificate of kiosk ``device_id`` and rewrite the CRL; return the serials.

        Mosquitto reads the CRL at start and on SIGHUP (reload); ``pki revoke`` with the broker
        options also reloads it and drops the kiosk's registration and connection
        (:func:`dashboard.pkicli.apply_revocation`).
        """
        return self._revoke_serials(device_id, None)

    def _revoke_serials(self, device_id: str, serials: list[str] | None) -> list[str]:
        """Revoke kiosk ``device_id``'s live certificates (only ``serials`` when given); rewrite the CRL."""
        self._ca()                      # the CA key must open before anything is recorded
        entries = self._index()
        now = _now().isoformat(timespec="seconds")
        done = []
        for e in entries:
            if (e["name"] == device_id and e["kind"] == "kiosk" and not e.get("revoked_at")
                    and (serials is None or e["serial"] in serials)):
                e["revoked_at"] = now
                done.append(e["serial"])
        if not done:
            raise PkiError(f"no live certificate for kiosk {device_id!r} in {self.index_path}")
        self._save_index(entries)
        self.write_crl()
        return done

    def live(self, name: str) -> list[dict]:
        """Index entries of ``name``'s certificates that are not revoked."""
        return [e for e in self._index() if e["name"] == name and not e.get("revoked_at")]

    def check(self, name: str) -> str | None:
        """Why the certificate of ``name`` (``broker``, ``ingest``, ``updates`` or a device id) is
        not usable — missing, key not matching, not from this CA, expired or revoked — or None."""
        cert_path, key_path = self.paths(name)
        if not (cert_path.exists() and key_path.exists()):
            return "missing"
        try:
            cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
            key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
            ca = x509.load_pem_x509_certificate(self.ca_cert_path.read_bytes())
        except (OSError, ValueError, TypeError) as exc:
            return f"unreadable ({exc})"
        if key.public_key() != cert.public_key():
            return "the key does not belong to the certificate"
        try:
            cert.verify_directly_issued_by(ca)
        except (ValueError, TypeError, InvalidSignature):
            return "not issued by this CA"
        if cert.not_valid_after_utc <= _now():
            return f"expired on {cert.not_valid_after_utc:%Y-%m-%d}"
        if cert.serial_number in self.revoked_serials():
            return "revoked"
        return None

    def status(self) -> list[str]:
        """One line per issued certificate (name, kind, serial, expiry, state) and one for the CRL."""
        lines = []
        for e in self._index():
            state = f"revoked {e['revoked_at']}" if e.get("revoked_at") else "valid"
            if not e.get("revoked_at") and e["expires_at"] <= _now().isoformat(timespec="seconds"):
                state = "expired"
            lines.append(f"{e['name']:<32} {e['kind']:<7} {e['serial'][:16]}  expires {e['expires_at'][:10]}  {state}")
        if self.crl_path.exists():
            crl = x509.load_pem_x509_crl(self.crl_path.read_bytes())
            left = crl.next_update_utc - _now()
            lines.append(f"CRL: next update {crl.next_update_utc:%Y-%m-%d} ({left.days} days left"
                         f"{'; re-sign it now: pki crl' if left.days < 30 else ''})")
        return lines

    def revoked_serials(self) -> list[int]:
        """Serial numbers of every revoked certificate."""
        return [int(e["serial"], 16) for e in self._index() if e.get("revoked_at")]

    def write_crl(self, days: int = CRL_DAYS) -> Path:
        """Sign a fresh CRL listing every revoked certificate, valid ``days`` days; return its path.

        OpenSSL refuses every client once the CRL's next update has passed: re-sign it
        (``pki crl``) well before, e.g. monthly from a timer.
        """
        ca_cert, ca_key = self._ca()
        now = _now()
        b = (x509.CertificateRevocationListBuilder()
             .issuer_name(ca_cert.subject)
             .last_update(now - dt.timedelta(minutes=5))
             .next_update(now + dt.timedelta(days=days))
             .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                            critical=False)
             .add_extension(x509.CRLNumber(int(now.timestamp() * 1000)), critical=False))
        for e in self._index():
            if e.get("revoked_at"):
                b = b.add_revoked_certificate(
                    x509.RevokedCertificateBuilder().serial_number(int(e["serial"], 16))
                    .revocation_date(dt.datetime.fromisoformat(e["revoked_at"])).build())
        crl = b.sign(ca_key, hashes.SHA256())
        _write_public(self.crl_path, crl.public_bytes(serialization.Encoding.PEM))
        return self.crl_path
