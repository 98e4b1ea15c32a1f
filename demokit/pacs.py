"""The demo's hospital PACS: Debian's Orthanc with its DICOMweb plugin, on loopback, with its own storage.

:func:`prepare_pacs` writes ``var/demo/orthanc.json`` (HTTP and DICOM on 127.0.0.1, the configured or a
free port each, storage in ``var/pacs``, one user ``dermkiosk`` whose password is made once and kept in
``var/demo/pacs-password``) and returns the ``[pacs]`` section of the demo centre's config (STOW-RS to
its DICOMweb root). Without Orthanc installed the demo runs without a PACS and says so.
"""

from __future__ import annotations

import json
import secrets
import shutil
from dataclasses import dataclass
from pathlib import Path

from . import say
from .ports import choose_port

DICOMWEB_PLUGIN = Path("/usr/share/orthanc/plugins/libOrthancDicomWeb.so")
PACS_USER = "dermkiosk"


@dataclass(frozen=True)
class PacsPlan:
    """Where the demo's Orthanc runs."""

    conf: Path
    http_port: int
    dicom_port: int
    password_file: Path

    @property
    def explorer_url(self) -> str:
        """Orthanc Explorer, Orthanc's own web viewer."""
        return f"http://127.0.0.1:{self.http_port}/app/explorer.html"


def orthanc_binary() -> str | None:
    """Path of the Orthanc executable with its DICOMweb plugin, or None when either is missing."""
    exe = shutil.which("Orthanc") or ("/usr/sbin/Orthanc" if Path("/usr/sbin/Orthanc").exists() else None)
    return exe if exe and DICOMWEB_PLUGIN.exists() else None


def prepare_pacs(state_dir: Path, taken: set[int]) -> tuple[PacsPlan | None, dict | None]:
    """Write Orthanc's config; return its plan and the centre's ``[pacs]`` section (None, None without Orthanc)."""
    if orthanc_binary() is None:
        say("Orthanc (apt: orthanc, orthanc-dicomweb) is not installed: the demo runs without a PACS")
        return None, None
    run_dir = state_dir / "demo"
    http_port = choose_port(8042, False, "PACS web", taken)
    taken.add(http_port)
    dicom_port = choose_port(4242, False, "PACS DICOM", taken)
    taken.add(dicom_port)
    password_file = run_dir / "pacs-password"
    if not password_file.exists():
        password_file.write_text(secrets.token_urlsafe(18) + "\n")
        password_file.chmod(0o600)
    storage = state_dir / "pacs"
    storage.mkdir(parents=True, exist_ok=True)
    conf = run_dir / "orthanc.json"
    conf.write_text(json.dumps({
        "Name": "DermKiosk demo PACS", "StorageDirectory": str(storage), "IndexDirectory": str(storage),
        "HttpPort": http_port, "DicomPort": dicom_port, "DicomAet": "ORTHANC", "RemoteAccessAllowed": False,
        "AuthenticationEnabled": True, "RegisteredUsers": {PACS_USER: password_file.read_text().strip()},
        "DicomCheckCalledAet": False, "DicomAlwaysAllowStore": True, "Plugins": [str(DICOMWEB_PLUGIN)],
        "DicomWeb": {"Enable": True, "Root": "/dicom-web/"}}, indent=2))
    conf.chmod(0o600)
    plan = PacsPlan(conf, http_port, dicom_port, password_file)
    section = {"enabled": True, "protocol": "stow-rs", "url": f"http://127.0.0.1:{http_port}/dicom-web",
               "username": PACS_USER, "password_file": str(password_file), "called_ae": "ORTHANC",
               "host": "127.0.0.1", "port": dicom_port, "viewer_url": plan.explorer_url}
    return plan, section
