"""How the kiosk reaches the broker: :class:`BrokerSettings`, the ``[broker]`` table of the kiosk's config."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class BrokerSettings(BaseModel):
    """How the kiosk reaches the MQTT broker.

    ``url`` is ``mqtt://host[:1883]`` or ``mqtts://host[:8883]``; with ``mqtts`` the
    broker is verified against ``ca_file`` (system CAs when absent) and the kiosk
    presents ``cert_file``/``key_file`` when given (mutual TLS). ``message_size_limit``
    must agree with the broker's own (Mosquitto drops larger messages silently): the
    kiosk refuses to send a larger case and says why.
    """

    model_config = ConfigDict(extra="forbid")

    url: str = "mqtt://127.0.0.1:1883"
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    keepalive: int = Field(30, ge=5, le=3600)
    #: Seconds the broker keeps the kiosk's session (subscription, queued acks) while it is away.
    session_expiry: int = Field(7 * 24 * 3600, ge=60, le=0xFFFFFFFE)
    #: Cases published and not yet acknowledged by the centre, at most.
    max_inflight: int = Field(16, ge=1, le=100)
    #: ... and their bytes, at most (about: a window always holds one case, whatever its size). After an
    #: outage every kiosk's window arrives at the broker at once, and Mosquitto 2.0 writes all it holds
    #: at every save (each second): large cases need fewer in flight, not more queued.
    max_inflight_bytes: int = Field(32 * 1024 * 1024, ge=64 * 1024, le=1024 * 1024 * 1024)
    message_size_limit: int = Field(16 * 1024 * 1024, ge=64 * 1024, le=256 * 1024 * 1024)
    reconnect_min_s: float = Field(0.5, gt=0, le=60)
    reconnect_max_s: float = Field(30.0, gt=0, le=3600)
    #: Resend a published case when the centre has not acknowledged it after this long (doubling).
    ack_timeout_s: float = Field(60.0, ge=1, le=3600)

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        parts = urlsplit(v)
        if parts.scheme not in ("mqtt", "mqtts"):
            raise ValueError("must start with mqtt:// or mqtts://")
        if not parts.hostname:
            raise ValueError("has no host name")
        try:
            parts.port
        except ValueError:
            raise ValueError("has an invalid port") from None
        if parts.path not in ("", "/") or parts.query or parts.username:
            raise ValueError("must be just scheme://host[:port] (no path, query or user)")
        return v

    @model_validator(mode="after")
    def _tls(self) -> "BrokerSettings":
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("give both cert_file and key_file (client certificate) or neither")
        if not self.tls and any((self.ca_file, self.cert_file, self.key_file)):
            raise ValueError("TLS files are given but the url is mqtt://; use mqtts://")
        if self.reconnect_max_s < self.reconnect_min_s:
            raise ValueError("reconnect_max_s must not be below reconnect_min_s")
        return self

    @property
    def tls(self) -> bool:
        """True for ``mqtts://``."""
        return urlsplit(self.url).scheme == "mqtts"

    @property
    def host(self) -> str:
        """Broker host name."""
        return urlsplit(self.url).hostname or ""

    @property
    def port(self) -> int:
        """Broker port (1883 for mqtt, 8883 for mqtts unless the url says otherwise)."""
        return urlsplit(self.url).port or (8883 if self.tls else 1883)
