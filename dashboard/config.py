"""The centre's configuration: one TOML file validated by pydantic (``extra="forbid"``).

Relative paths are taken relative to the current working directory, so that
``firmware_config/centre.demo.toml`` run from the repository root keeps its
data in ``./var/centre``. :func:`load_config` raises
:class:`wire.tomlconfig.ConfigError` whose text names the file, the field and
what is wrong; the command line turns it into exit status 2.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from wire import topics, tomlconfig

from .alerts import FleetConfig
from .hospitalconfig import FhirConfig, PacsConfig
from .readingconfig import ReadingConfig
from .serviceconfig import ServiceConfig
from .servicereport.monitor import MonitoringConfig
from .worklistconfig import WorklistConfig


class BrokerAdmin(BaseModel):
    """The broker-admin identity (``pki issue-broker-admin``) the registry registers kiosks at the broker with."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str = Field(pattern=r"^mqtts://[^/]+$")
    ca_file: Path
    cert_file: Path
    key_file: Path


class RegistryConfig(BaseModel):
    """The ``[registry]`` section of the centre config."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: Cases from a kiosk that is not registered are quarantined. Off only while migrating a centre
    #: that had no registry: they are then stored, and the kiosk is still shown as unregistered.
    require_registration: bool = True
    #: The PKI folder (``python -m dashboard pki --dir``) whose ``index.json`` seeds registrations
    #: and gives the fleet page each kiosk's certificate expiry. Only the index is read.
    pki_dir: Path | None = None
    #: The broker-admin identity (``pki issue-broker-admin``): url, ca_file, cert_file, key_file.
    #: Set, registering a kiosk registers it at the broker too, bound to its hub.
    broker: BrokerAdmin | None = None


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BrokerConfig(_Section):
    """How the ingest reaches Mosquitto (MQTT 5, QoS 1, persistent session)."""

    url: str = "mqtt://127.0.0.1:1883"
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    username: str | None = None
    password_file: Path | None = None
    #: Fixed client id: with ``clean_start=False`` the broker keeps our session (and unacked cases).
    client_id: str = Field(default="dermkiosk-ingest", pattern=topics.CLIENT_ID_PATTERN)
    #: MQTT 5 shared-subscription group; several ingest processes in one group share the load.
    share_group: str = Field(default=topics.INGEST_SHARE_GROUP, pattern=r"^[a-z0-9][a-z0-9-]{0,31}$")
    session_expiry_s: int = Field(default=7 * 24 * 3600, ge=0, le=0xFFFFFFFF)
    keepalive_s: int = Field(default=30, ge=5, le=600)
    #: MQTT 5 Receive Maximum: how many unacknowledged cases the broker may push at once.
    receive_maximum: int = Field(default=32, ge=1, le=1000)

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        parts = urlsplit(v)
        if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
            raise ValueError("must look like mqtt://host:port or mqtts://host:port")
        try:
            parts.port
        except ValueError:
            raise ValueError("port must be a number from 1 to 65535") from None
        return v

    @model_validator(mode="after")
    def _tls_pair(self) -> "BrokerConfig":
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file go together (client certificate and its key)")
        return self

    @property
    def host(self) -> str:
        """Broker host name from the URL."""
        return urlsplit(self.url).hostname or "127.0.0.1"

    @property
    def port(self) -> int:
        """Broker port from the URL (1883 for mqtt://, 8883 for mqtts:// when not given)."""
        parts = urlsplit(self.url)
        return parts.port or (8883 if parts.scheme == "mqtts" else 1883)

    @property
    def tls(self) -> bool:
        """Whether the URL asks for TLS (``mqtts://``)."""
        return urlsplit(self.url).scheme == "mqtts"


class StorageConfig(_Section):
    """Where cases live: the SQLite database, the image store and quarantined payloads."""

    database: Path = Path("var/centre/centre.db")
    images_dir: Path = Path("var/centre/images")
    quarantine_dir: Path = Path("var/centre/quarantine")
    #: Write images with direct I/O, not through the page cache (dashboard/directio.py); where the
    #: file system refuses it the ingest falls back by itself. Off: every write is buffered.
    direct_io: bool = True


class WebConfig(_Section):
    """The dashboard's web server, its sessions and log-in throttle."""

    host: str = "127.0.0.1"
    port: int = Field(default=8090, ge=1, le=65535)
    #: File holding the Flask secret key; created (mode 0600) with a random key when missing.
    secret_key_file: Path = Path("var/centre/secret_key")
    #: Served over HTTPS (a TLS-terminating reverse proxy in front): Secure session cookie and HSTS.
    tls: bool = False
    #: How many reverse proxies in front are trusted for X-Forwarded-For/-Proto (0: none; the
    #: audit log's remote address is then the proxy's).
    trusted_proxies: int = Field(default=0, ge=0, le=3)
    #: A session ends this long after log-in, or after this long without a request.
    session_lifetime_s: int = Field(default=8 * 3600, ge=300, le=7 * 24 * 3600)
    session_idle_s: int = Field(default=30 * 60, ge=60, le=24 * 3600)
    #: Wrong passwords in a row that lock an account, and for how long.
    login_max_failures: int = Field(default=5, ge=1, le=100)
    login_lockout_s: int = Field(default=15 * 60, ge=10, le=7 * 24 * 3600)
    #: Failed log-ins from one remote address (any user name) within ``login_lockout_s`` that lock it out.
    login_addr_max_failures: int = Field(default=20, ge=1, le=100000)
    #: Bearer token a metrics scraper sends (``Authorization: Bearer ...``) for ``/metrics``;
    #: unset: ``/metrics`` refuses everyone. Keep this file readable by the service user only.
    metrics_token: str | None = Field(default=None, min_length=32)


class IngestConfig(_Section):
    """Ingest housekeeping."""

    #: Leftovers of an interrupted write (temp image files with no committed case) older than
    #: this are removed; the kiosk resends the case, so nothing is lost.
    incomplete_case_timeout_s: int = Field(default=600, ge=10)
    #: Pause between retries when storage fails (disk full, I/O error); cases wait unacknowledged.
    storage_retry_s: float = Field(default=2.0, gt=0, le=300)
    #: Threads per ingest process that verify cases (SHA-256) and write their images while the
    #: worker commits earlier ones. One process's Python work runs one thread at a time, so more
    #: threads gain little on a small machine (bench/ingest_throughput.py --decoder-threads).
    decoder_threads: int = Field(default=4, ge=1, le=32)


class UpdatesConfig(_Section):
    """Signed updates the dashboard itself sends: the kiosk staff roster (dashboard.staff)."""

    #: Ed25519 signing key (``python -m dashboard update make-key``); the kiosks hold its public key.
    #: Unset: the admin page says how to configure it and sends nothing.
    key_file: Path | None = None
    #: The update publisher's broker connection (certificate name ``updates``, which the broker's ACL
    #: lets publish on kiosks' update topics; the ingest's identity may not).
    broker: BrokerConfig | None = None


class CentreConfig(_Section):
    """The whole centre configuration file."""

    broker: BrokerConfig = BrokerConfig()
    storage: StorageConfig = StorageConfig()
    web: WebConfig = WebConfig()
    ingest: IngestConfig = IngestConfig()
    #: Fleet page and alert thresholds (dashboard.alerts).
    fleet: FleetConfig = FleetConfig()
    #: Kiosk staff rosters sent from the admin pages (signed config bundles).
    updates: UpdatesConfig = UpdatesConfig()
    #: The kiosk registry: which kiosk files under which hub (dashboard.registry).
    registry: RegistryConfig = RegistryConfig()
    #: Second-read rules and the lead for disagreements (dashboard.reports).
    reading: ReadingConfig = ReadingConfig()
    #: The service's name and contact on the GP and patient letters (dashboard.letters).
    service: ServiceConfig = ServiceConfig()
    #: The referral worklist: the FDS clock's warning points, claim time, page size (dashboard.worklist).
    worklist: WorklistConfig = WorklistConfig()
    #: The hospital's PACS the signed referrals' DICOM objects go to (dashboard.pacs).
    pacs: PacsConfig = PacsConfig()
    #: The hospital's FHIR server the signed referrals' reports go to (dashboard.pacs, dashboard.fhir).
    fhir: FhirConfig = FhirConfig()
    #: Thresholds of the service's alerts: cancer-call drift, sensitivity floor, override jump, unread referrals
    #: nearing the 28-day standard (dashboard.servicereport.monitor).
    monitoring: MonitoringConfig = MonitoringConfig()


#: Most ingest processes one centre runs: the broker's access rules (dashboard/brokerctl.py) name
#: an identity for each (``ingest``, ``ingest-2`` ... ``ingest-4``).
MAX_INGEST_INSTANCES = 4


def ingest_instance(config: CentreConfig, n: int) -> CentreConfig:
    """The configuration of ingest process ``n`` (1 to :data:`MAX_INGEST_INSTANCES`) of one centre.

    Process 1 is ``config`` itself. Process ``n`` >= 2 connects as client ``<client_id>-<n>``
    with, where client certificates are set, the sibling files ``<cert stem>-<n><suffix>`` and
    ``<key stem>-<n><suffix>`` (``ingest-2.crt`` beside ``ingest.crt``, made by ``python -m
    dashboard pki issue-ingest --instance 2``: certificate name ``ingest-2``). Everything else is
    shared: the database, the image folder and the shared-subscription group, in which the
    broker hands each case to one of the processes; each announces its own presence, and the
    kiosks send while any one of them is online. Two processes use both cores of a 2-core
    centre (one Python process cannot, bench/ingest_throughput.py ``--processes``), and one of
    them restarting does not stop the intake.
    """
    if not 1 <= n <= MAX_INGEST_INSTANCES:
        raise ValueError(f"ingest instance must be 1 to {MAX_INGEST_INSTANCES}, not {n}")
    if n == 1:
        return config
    b = config.broker

    def sibling(path: Path | None) -> Path | None:
        return None if path is None else path.with_name(f"{path.stem}-{n}{path.suffix}")

    broker = b.model_copy(update={"client_id": f"{b.client_id}-{n}", "cert_file": sibling(b.cert_file),
                                  "key_file": sibling(b.key_file)})
    return config.model_copy(update={"broker": BrokerConfig.model_validate(broker.model_dump())})


def load_config(path: Path | str) -> CentreConfig:
    """Load and validate a centre TOML file; raise ``ConfigError`` naming file, field and problem."""
    return tomlconfig.load(path, CentreConfig)


def secret_key(path: Path) -> str:
    """Return the secret key stored in ``path``, creating it (mode 0600) with a random key if missing."""
    path = Path(path)
    if path.exists():
        key = path.read_text().strip()
        if key:
            return key
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_hex(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(key + "\n")
    return key
