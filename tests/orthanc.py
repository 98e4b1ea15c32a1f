"""A real Orthanc (Debian's ``orthanc`` + ``orthanc-dicomweb``) as the hospital's PACS in tests and the demo.

Like :mod:`tests.broker` does with Mosquitto: its own JSON configuration, free loopback ports (HTTP
with DICOMweb under ``/dicom-web/``, and DICOM for C-STORE), its own storage folder, a user name and
password; ``stop()`` and ``start()`` keep the storage (a PACS that was down and comes back). With
``lua=`` a Lua script is loaded (e.g. a ``ReceivedInstanceFilter`` that refuses objects).
:meth:`Orthanc.get` reads its REST API.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path

import requests

from tests.broker import free_port

DICOMWEB_PLUGIN = "/usr/share/orthanc/plugins/libOrthancDicomWeb.so"


def orthanc_binary() -> str:
    """Path of the Orthanc executable (apt installs it as /usr/sbin/Orthanc)."""
    exe = shutil.which("Orthanc") or ("/usr/sbin/Orthanc" if Path("/usr/sbin/Orthanc").exists() else None)
    if not exe or not Path(DICOMWEB_PLUGIN).exists():
        raise RuntimeError("orthanc and orthanc-dicomweb are not installed: run `make test`, which installs them")
    return exe


class Orthanc:
    """One Orthanc process on 127.0.0.1 (HTTP ``http_port``, DICOM ``dicom_port``), storage in ``workdir``."""

    USER, PASSWORD = "pacs", "pacs-test-password"
    AET = "ORTHANC"

    def __init__(self, workdir: Path, lua: str | None = None):
        """An Orthanc in ``workdir`` (not started)."""
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.http_port, self.dicom_port = free_port(), free_port()
        self.lua = lua
        self.proc: subprocess.Popen | None = None
        self.log = self.workdir / "orthanc.log"

    @property
    def url(self) -> str:
        """Orthanc's REST root."""
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def dicomweb(self) -> str:
        """The DICOMweb root (STOW-RS, QIDO-RS, WADO-RS)."""
        return f"{self.url}/dicom-web"

    def write_conf(self) -> Path:
        """Write the JSON configuration (and the Lua script, if any); return the configuration's path."""
        conf = {
            "Name": "DermKiosk test PACS", "StorageDirectory": str(self.workdir / "storage"),
            "IndexDirectory": str(self.workdir / "storage"), "HttpPort": self.http_port,
            "DicomPort": self.dicom_port, "DicomAet": self.AET, "RemoteAccessAllowed": False,
            "AuthenticationEnabled": True, "RegisteredUsers": {self.USER: self.PASSWORD},
            "DicomCheckCalledAet": False, "DicomAlwaysAllowStore": True, "DicomAlwaysAllowEcho": True,
            "Plugins": [DICOMWEB_PLUGIN], "DicomWeb": {"Enable": True, "Root": "/dicom-web/"},
            "StableAge": 1, "HttpTimeout": 30, "ConcurrentJobs": 1, "HttpsVerifyPeers": False,
        }
        if self.lua:
            script = self.workdir / "filter.lua"
            script.write_text(self.lua)
            conf["LuaScripts"] = [str(script)]
        path = self.workdir / "orthanc.json"
        path.write_text(json.dumps(conf, indent=2))
        return path

    def start(self, timeout: float = 30.0) -> "Orthanc":
        """Start Orthanc and wait until its REST API answers."""
        conf = self.write_conf()
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen([orthanc_binary(), str(conf)],
                                         stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"Orthanc exited: {self.log.read_text()[-2000:]}")
            try:
                if self.get("/system").get("Name"):
                    return self
            except (requests.ConnectionError, requests.Timeout, ValueError):
                time.sleep(0.1)
        raise RuntimeError("Orthanc did not answer in time")

    def stop(self) -> None:
        """Stop Orthanc (SIGTERM), keeping its storage."""
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.proc = None

    def get(self, path: str, raw: bool = False):
        """GET ``path`` of the REST API (JSON, or the bytes with ``raw=True``)."""
        r = requests.get(self.url + path, auth=(self.USER, self.PASSWORD), timeout=10)
        r.raise_for_status()
        return r.content if raw else r.json()

    def pacs_config(self, protocol: str = "stow-rs", **kw):
        """A :class:`dashboard.hospitalconfig.PacsConfig` for this Orthanc (``password_file`` must be given)."""
        from dashboard.hospitalconfig import PacsConfig

        base = {"enabled": True, "protocol": protocol, "url": self.dicomweb, "username": self.USER,
                "host": "127.0.0.1", "port": self.dicom_port, "called_ae": self.AET, "retry_s": 0.2,
                "retry_max_s": 1.0, "timeout_s": 10}
        return PacsConfig(**(base | kw))

    def password_file(self) -> Path:
        """A file holding the test password (as the centre's config names it)."""
        path = self.workdir / "password"
        path.write_text(self.PASSWORD + "\n")
        return path
