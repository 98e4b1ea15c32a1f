"""The ``[pacs]`` and ``[fhir]`` sections of the centre's config: where a signed referral is handed to the hospital.

``[pacs]``: the hospital's PACS, reached by DICOMweb STOW-RS (``protocol = "stow-rs"``, ``url`` the
DICOMweb root, e.g. ``http://pacs:8042/dicom-web``) or by DIMSE C-STORE (``protocol = "c-store"``,
``host``, ``port``, ``called_ae``; our ``calling_ae``). ``[fhir]``: an optional FHIR R4 endpoint
(the server's base URL) the transaction Bundle of each signed referral is POSTed to. Credentials are
read from files (``password_file``, ``token_file``) so the TOML holds no secret. Both sections are off
(``enabled = false``) by default: the referral page then shows "not configured" and nothing is queued.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _http_url(v: str | None) -> str | None:
    if v is None:
        return v
    parts = urlsplit(v)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must look like http://host:port/path or https://host/path")
    return v.rstrip("/")


class PacsConfig(_Section):
    """How the centre sends DICOM objects to the hospital's PACS."""

    enabled: bool = False
    protocol: Literal["stow-rs", "c-store"] = "stow-rs"
    #: DICOMweb root for STOW-RS (``.../dicom-web``).
    url: str | None = None
    username: str | None = None
    password_file: Path | None = None
    #: C-STORE peer.
    host: str = "127.0.0.1"
    port: int = Field(default=104, ge=1, le=65535)
    called_ae: str = Field(default="PACS", pattern=r"^[ -~]{1,16}$")
    calling_ae: str = Field(default="DERMKIOSK", pattern=r"^[ -~]{1,16}$")
    timeout_s: float = Field(default=30.0, gt=0, le=600)
    #: Seconds between tries of a referral that could not be sent (doubling up to ``retry_max_s``).
    retry_s: float = Field(default=60.0, gt=0, le=86400)
    retry_max_s: float = Field(default=3600.0, gt=0, le=7 * 86400)
    #: After storing, check over QIDO-RS (``url``) that the PACS holds every object before calling it sent.
    verify: bool = True
    #: Web address of the PACS's viewer, shown to dermatologists on the referral page (optional).
    viewer_url: str | None = None

    _url = field_validator("url", "viewer_url")(classmethod(lambda cls, v: _http_url(v)))

    @model_validator(mode="after")
    def _needs_url(self) -> "PacsConfig":
        if self.enabled and self.protocol == "stow-rs" and not self.url:
            raise ValueError("url: STOW-RS needs the PACS's DICOMweb root, e.g. http://pacs:8042/dicom-web")
        return self


class FhirConfig(_Section):
    """The optional FHIR R4 endpoint each signed referral's transaction Bundle is POSTed to."""

    enabled: bool = False
    #: The server's base URL (the Bundle is POSTed to it).
    url: str | None = None
    #: A bearer token, read from this file at each try.
    token_file: Path | None = None
    timeout_s: float = Field(default=30.0, gt=0, le=600)
    retry_s: float = Field(default=60.0, gt=0, le=86400)
    retry_max_s: float = Field(default=3600.0, gt=0, le=7 * 86400)

    _url = field_validator("url")(classmethod(lambda cls, v: _http_url(v)))

    @model_validator(mode="after")
    def _needs_url(self) -> "FhirConfig":
        if self.enabled and not self.url:
            raise ValueError("url: the FHIR server's base URL is needed to POST the Bundle")
        return self
