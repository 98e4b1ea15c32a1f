"""The kiosk's configuration: one TOML file validated by pydantic (unknown fields refused).

It lives in ``wire`` because both sides need it: the kiosk runs on it (``edge.config``) and the
centre validates a kiosk's file before it signs it into a config bundle (``dashboard.updates``).

Example: ``firmware_config/kiosk.demo.toml`` (replay camera, local broker) and
``firmware_config/kiosk.pi.toml`` (Pi camera, TLS). Relative paths are taken
from the working directory (the repository root for the demo). A wrong value
gives one message naming the file, the field and what is wrong (ConfigError).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from wire import tomlconfig
from wire.kioskconfig.broker import BrokerSettings
from wire.kioskconfig.camera import CameraSettings
from wire.kioskconfig.quality import QualitySettings
from wire.messages import VIEWS
from wire.referral import MAX_LESIONS, normalise_ods_code
from wire.topics import check_id

#: The configuration file inside a signed config bundle and in ``<data_dir>/config/``.
CONFIG_FILE = "kiosk.toml"

ConfigError = tomlconfig.ConfigError

View = Literal["dermoscopic", "close-up", "regional"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class HealthSettings(_Strict):
    """How often the kiosk reports its health."""

    interval_s: float = Field(30.0, ge=1, le=3600)


class WebSettings(_Strict):
    """The kiosk page. Bound to loopback: the kiosk browser runs on the same device."""

    host: str = "127.0.0.1"
    port: int = Field(8080, ge=1, le=65535)


class RetentionSettings(_Strict):
    """What the outbox keeps. Images of a case are deleted only after the centre acknowledged it."""

    #: Seconds to keep a delivered case's images on the kiosk (0: delete at the ack).
    keep_delivered_s: float = Field(0.0, ge=0)
    #: A new capture is refused when it would leave less free space than this.
    min_free_mb: int = Field(64, ge=0)
    #: Days the kiosk keeps what it needs to show a sent referral's status and outcome (edge.outcomes);
    #: a referral with an open re-image task is kept until the task is done.
    keep_outcomes_days: float = Field(90.0, gt=0, le=3650)


class CaptureSettings(_Strict):
    """Which views a case needs before it can be submitted, and which ``capture-demo`` takes."""

    required_views: list[View] = Field(default_factory=lambda: ["dermoscopic"], min_length=1)
    demo_views: list[View] = Field(default_factory=lambda: list(VIEWS), min_length=1)

    @field_validator("required_views", "demo_views")
    @classmethod
    def _unique(cls, v: list[str]) -> list[str]:
        if len(set(v)) != len(v):
            raise ValueError("a view is listed twice")
        return v


class UpdateSettings(_Strict):
    """Signed updates: the centre's Ed25519 public key (PEM). Without it every bundle is refused."""

    public_key_file: Path | None = None
    max_bundle_mb: int = Field(64, ge=1, le=1024)


class Practice(_Strict):
    """A referring GP practice offered as a quick pick on the kiosk's referral screen."""

    ods: str
    name: str = Field(min_length=1, max_length=80)

    @field_validator("ods")
    @classmethod
    def _ods(cls, v: str) -> str:
        try:
            return normalise_ods_code(v)
        except ValueError as exc:
            raise ValueError(str(exc)) from None


class AppointmentSettings(_Strict):
    """The photographer's appointment at the kiosk (one GP referral, its lesions and their views)."""

    #: Most lesions one appointment may photograph (at most wire.referral.MAX_LESIONS).
    max_lesions: int = Field(5, ge=1, le=MAX_LESIONS)
    #: Views every lesion needs before submit; the dermoscopic view is always required.
    required_views: list[View] = Field(default_factory=lambda: ["dermoscopic", "close-up", "regional"])
    #: ``selected``: the photographer marks one shot per view to send; ``all``: every shot is sent.
    send_shots: Literal["selected", "all"] = "selected"
    #: Seconds without a touch after which the signed-in photographer is signed out.
    idle_timeout_s: int = Field(180, ge=15, le=3600)
    #: Show the classifier's result at the kiosk (to signed-in staff only). Off: it is never shown.
    show_classifier: bool = False
    #: A staff roster (wire.staff.StaffRoster JSON) used until a signed config bundle delivers one.
    staff_file: Path | None = None
    #: Referring practices shown as quick picks: ``[{ods = "A81001", name = "..."}]``.
    practices: list[Practice] = Field(default_factory=list, max_length=50)

    @field_validator("required_views")
    @classmethod
    def _views(cls, v: list[str]) -> list[str]:
        if len(set(v)) != len(v):
            raise ValueError("a view is listed twice")
        if "dermoscopic" not in v:
            raise ValueError("the dermoscopic view is always required: list it")
        return v


def _certificate_cn(path: Path | None) -> str | None:
    """The common name of a PEM certificate file (the kiosk's MQTT identity), None if unreadable."""
    if path is None:
        return None
    try:
        from cryptography import x509
        from cryptography.x509.oid import NameOID

        cert = x509.load_pem_x509_certificate(Path(path).read_bytes())
        return cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    except (OSError, ValueError, IndexError):
        return None


class KioskConfig(_Strict):
    """Everything one kiosk needs: identity, broker, camera, quality gate, model, storage, page."""

    device_id: str
    site: str
    broker: BrokerSettings = Field(default_factory=BrokerSettings)
    camera: CameraSettings = Field(default_factory=CameraSettings)
    quality: QualitySettings = Field(default_factory=QualitySettings)
    capture: CaptureSettings = Field(default_factory=CaptureSettings)
    model_dir: Path = Path("models/lesion")
    #: The shipped model copied to ``model_dir`` (a symlink the kiosk manages) on first start;
    #: needed for signed model updates (``model_dir`` then lives in the writable data folder).
    model_seed_dir: Path | None = None
    classifier_threads: int = Field(2, ge=1, le=8)
    #: Test-time augmentation: average the classifier over 4 flips (about 4x the inference time,
    #: see bench/classifier_speed.py and models/lesion/report/report.md for what it buys).
    classifier_tta: bool = False
    #: Override of the model manifest's risk thresholds: ``{"cancer": 0.2, "pre-cancer": 0.3}``.
    thresholds: dict[Literal["cancer", "pre-cancer"], float] | None = None
    data_dir: Path = Path("var/kiosk")
    #: AES-256 key sealing the outbox at rest (created 0600 if missing). The systemd credential
    #: ``kiosk-key`` is used instead when the service has one; default ``kiosk.key`` beside data_dir.
    data_key_file: Path | None = None
    web: WebSettings = Field(default_factory=WebSettings)
    retention: RetentionSettings = Field(default_factory=RetentionSettings)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    health: HealthSettings = Field(default_factory=HealthSettings)
    updates: UpdateSettings = Field(default_factory=UpdateSettings)
    appointment: AppointmentSettings = Field(default_factory=AppointmentSettings)

    @field_validator("device_id")
    @classmethod
    def _device(cls, v: str) -> str:
        return check_id(v, "device_id")

    @field_validator("site")
    @classmethod
    def _site(cls, v: str) -> str:
        return check_id(v, "site")

    @field_validator("thresholds")
    @classmethod
    def _thresholds(cls, v: dict[str, float] | None) -> dict[str, float] | None:
        if v is not None:
            if set(v) != {"cancer", "pre-cancer"}:
                raise ValueError("give both 'cancer' and 'pre-cancer'")
            if not all(0.0 < t <= 1.0 for t in v.values()):
                raise ValueError("thresholds must lie in (0, 1]")
        return v

    def missing_files(self) -> list[str]:
        """``field: problem`` for each configured file that does not exist (checked at start-up)."""
        out = []
        for name in ("ca_file", "cert_file", "key_file"):
            path = getattr(self.broker, name)
            if path is not None and not Path(path).is_file():
                out.append(f"broker.{name}: file {path} does not exist")
        cn = _certificate_cn(self.broker.cert_file)
        if cn is not None and cn != self.device_id:
            out.append(f"broker.cert_file: the certificate is for {cn!r}, not for device_id {self.device_id!r} "
                       "(the broker would refuse every case): issue one with `python -m dashboard pki issue-kiosk`")
        if not (Path(self.model_dir) / "manifest.json").is_file():
            if self.model_seed_dir is None:
                out.append(f"model_dir: {self.model_dir} has no manifest.json")
            elif not (Path(self.model_seed_dir) / "manifest.json").is_file():
                out.append(f"model_seed_dir: {self.model_seed_dir} has no manifest.json")
        if self.updates.public_key_file is not None and not Path(self.updates.public_key_file).is_file():
            out.append(f"updates.public_key_file: file {self.updates.public_key_file} does not exist")
        staff = self.appointment.staff_file
        if staff is not None and not Path(staff).is_file():
            out.append(f"appointment.staff_file: file {staff} does not exist")
        return out


def load(path: Path | str, check_files: bool = True) -> KioskConfig:
    """Load and validate a kiosk TOML file; raise ConfigError naming file, field and problem.

    ``check_files`` also requires the TLS files and the model manifest to exist
    (the service needs them; a config check on another machine may not).
    """
    cfg = tomlconfig.load(path, KioskConfig)
    missing = cfg.missing_files() if check_files else []
    if missing:
        raise ConfigError("\n".join(f"{path}: {m}" for m in missing))
    return cfg
