"""Kiosk health: what IT needs to see from afar, published every ``health.interval_s`` seconds.

:func:`collect` builds a :class:`wire.messages.Health` report from the service
(outbox, link, camera, classifier) and the machine. Only the hardware sensors
(CPU temperature, throttling, clock synchronisation) sit behind the small
:class:`Sensors` interface: :class:`SystemSensors` reads sysfs, ``vcgencmd``
and ``timedatectl`` (or ``adjtimex``); :class:`FakeSensors` stands in for a Pi
in tests. :class:`HealthMonitor` is the thread that publishes the reports on the
device's ``health`` topic through the link.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import glob
import logging
import os
import shutil
import sqlite3
import subprocess
import threading
import time
from abc import ABC, abstractmethod
from datetime import datetime, timezone
from pathlib import Path

from wire import topics
from wire.messages import Health

log = logging.getLogger("edge.health")

#: ``vcgencmd get_throttled`` bits (Raspberry Pi firmware) and their names.
THROTTLE_BITS = {
    0: "under-voltage-now",
    1: "freq-capped-now",
    2: "throttled-now",
    3: "soft-temp-limit-now",
    16: "under-voltage-occurred",
    17: "freq-capped-occurred",
    18: "throttled-occurred",
    19: "soft-temp-limit-occurred",
}
#: Bits that mean "the kiosk is being held back right now".
THROTTLED_NOW_MASK = 0xF


def decode_throttled(bits: int) -> list[str]:
    """Names of the set bits of a ``get_throttled`` value, e.g. 0x50005 -> under-voltage now and before."""
    return [name for bit, name in THROTTLE_BITS.items() if bits & (1 << bit)]


# ---------------------------------------------------------------- sensors (the only faked part)
class Sensors(ABC):
    """Hardware readings; ``None`` where the machine has no such sensor."""

    @abstractmethod
    def cpu_temp_c(self) -> float | None:
        """CPU temperature in °C."""

    @abstractmethod
    def throttled_bits(self) -> int | None:
        """The firmware's throttling / under-voltage bits (``vcgencmd get_throttled``)."""

    @abstractmethod
    def clock_synced(self) -> bool | None:
        """Whether the OS says the clock is NTP-synchronised."""


def _run(cmd: list[str], timeout: float = 2.0) -> str | None:
    exe = shutil.which(cmd[0]) or (f"/usr/bin/{cmd[0]}" if os.path.exists(f"/usr/bin/{cmd[0]}") else None)
    if not exe:
        return None
    try:
        out = subprocess.run([exe, *cmd[1:]], capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


class _Timex(ctypes.Structure):
    # struct timex (linux/timex.h): only the leading fields are read; the rest is padding.
    _fields_ = [("modes", ctypes.c_uint), ("offset", ctypes.c_long), ("freq", ctypes.c_long),
                ("maxerror", ctypes.c_long), ("esterror", ctypes.c_long), ("status", ctypes.c_int),
                ("_rest", ctypes.c_char * 256)]


_TIME_ERROR = 5
_STA_UNSYNC = 0x0040


def adjtimex_synced() -> bool | None:
    """The kernel's view of clock synchronisation (``adjtimex``, read-only); None if unavailable."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        tx = _Timex()
        rc = libc.adjtimex(ctypes.byref(tx))
    except (OSError, AttributeError):
        return None
    if rc < 0:
        return None
    return rc != _TIME_ERROR and not (tx.status & _STA_UNSYNC)


class SystemSensors(Sensors):
    """The real sensors: ``/sys/class/thermal``, ``vcgencmd`` (Pi firmware), ``timedatectl``/``adjtimex``."""

    def __init__(self, thermal_glob: str = "/sys/class/thermal/thermal_zone*/temp"):
        self.thermal_glob = thermal_glob
        self._vcgencmd = shutil.which("vcgencmd") or ("/usr/bin/vcgencmd" if os.path.exists("/usr/bin/vcgencmd")
                                                      else None)

    def cpu_temp_c(self) -> float | None:
        """Hottest thermal zone (sysfs millidegrees), else ``vcgencmd measure_temp``."""
        temps = []
        for path in sorted(glob.glob(self.thermal_glob)):
            try:
                temps.append(int(Path(path).read_text().strip()) / 1000.0)
            except (OSError, ValueError):
                continue
        if temps:
            return max(temps)
        if self._vcgencmd:
            out = _run([self._vcgencmd, "measure_temp"])       # temp=48.3'C
            if out and out.startswith("temp="):
                try:
                    return float(out[5:].split("'")[0])
                except ValueError:
                    return None
        return None

    def throttled_bits(self) -> int | None:
        """``vcgencmd get_throttled`` -> ``throttled=0x50005``; None off a Pi."""
        if not self._vcgencmd:
            return None
        out = _run([self._vcgencmd, "get_throttled"])
        if out and out.startswith("throttled="):
            try:
                return int(out.split("=", 1)[1], 16)
            except ValueError:
                return None
        return None

    def clock_synced(self) -> bool | None:
        """``timedatectl show -p NTPSynchronized --value`` (yes/no), else the kernel's adjtimex state."""
        out = _run(["timedatectl", "show", "-p", "NTPSynchronized", "--value"])
        if out in ("yes", "no"):
            return out == "yes"
        return adjtimex_synced()


class FakeSensors(Sensors):
    """Settable readings standing in for a Pi's sensors (tests, the demo on a PC)."""

    def __init__(self, temp_c: float | None = 45.0, throttled: int | None = 0, synced: bool | None = True):
        self.temp_c, self.throttled, self.synced = temp_c, throttled, synced

    def cpu_temp_c(self) -> float | None:
        """The set temperature."""
        return self.temp_c

    def throttled_bits(self) -> int | None:
        """The set throttling bits."""
        return self.throttled

    def clock_synced(self) -> bool | None:
        """The set clock state."""
        return self.synced


# ---------------------------------------------------------------- machine figures (real everywhere)
def uptime_s() -> float:
    """Seconds since the machine booted."""
    try:
        return float(Path("/proc/uptime").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return time.monotonic()


def memory_mb() -> tuple[float | None, float | None]:
    """(total, available) memory in MiB from /proc/meminfo."""
    info = {}
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            key, _, rest = line.partition(":")
            info[key] = int(rest.split()[0]) / 1024.0
    except (OSError, ValueError, IndexError):
        return None, None
    return info.get("MemTotal"), info.get("MemAvailable")


def outbox_figures(db_path: Path, now: datetime) -> tuple[int, float | None, datetime | None, datetime | None]:
    """(waiting cases, age of the oldest in s, last capture, last delivery) read from the outbox database."""
    if not Path(db_path).exists():
        return 0, None, None, None
    conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=5)
    try:
        depth, oldest = conn.execute(
            "SELECT COUNT(*), MIN(created_at) FROM cases WHERE state IN ('captured','queued','sent')").fetchone()
        last_capture, last_delivery = conn.execute(
            "SELECT MAX(created_at), MAX(delivered_at) FROM cases").fetchone()
    finally:
        conn.close()

    def ts(v: str | None) -> datetime | None:
        return datetime.fromisoformat(v) if v else None

    age = max(0.0, (now - ts(oldest)).total_seconds()) if oldest else None
    return int(depth or 0), age, ts(last_capture), ts(last_delivery)


def collect(service, sensors: Sensors, interval_s: float, now: datetime | None = None) -> Health:
    """One health report of a running :class:`edge.service.KioskService` (any part may be missing)."""
    now = now or datetime.now(timezone.utc)
    cfg = service.cfg
    try:
        depth, oldest, last_case, last_delivery = outbox_figures(Path(cfg.data_dir) / "outbox.sqlite3", now)
    except sqlite3.Error as exc:
        log.warning("outbox figures unavailable: %s", exc)
        depth, oldest, last_case, last_delivery = 0, None, None, None
    try:
        disk = shutil.disk_usage(cfg.data_dir)
        disk_total, disk_free = disk.total / 2**20, disk.free / 2**20
    except OSError:
        disk_total = disk_free = None
    try:
        load = os.getloadavg()
    except OSError:
        load = (None, None, None)
    total, avail = memory_mb()
    bits = sensors.throttled_bits()
    temp = sensors.cpu_temp_c()
    link = getattr(service, "link", None)
    camera = getattr(service, "camera", None)
    from .version import software_version

    return Health(
        device_id=cfg.device_id, at=now, interval_s=interval_s, uptime_s=uptime_s(),
        service_uptime_s=max(0.0, time.monotonic() - getattr(service, "started_monotonic", time.monotonic())),
        cpu_temp_c=None if temp is None else round(temp, 1),
        throttled_bits=bits, throttled=decode_throttled(bits) if bits else [],
        load1=load[0], load5=load[1], load15=load[2],
        mem_total_mb=total, mem_available_mb=avail, disk_total_mb=disk_total, disk_free_mb=disk_free,
        outbox_depth=depth, outbox_oldest_s=oldest,
        last_capture_at=getattr(service, "last_capture_at", None) or last_case,
        last_delivery_at=last_delivery,
        camera_connected=bool(camera is not None and camera.connected),
        link_connected=bool(link is not None and link.connected),
        classifier_latency_ms=getattr(service, "classifier_latency_ms", None),
        model_version=service.model_version, software_version=software_version(),
        clock_synced=sensors.clock_synced(),
        calibration=calibration_note(cfg),
    )


#: Said after the calibration's note of a kiosk whose dermatoscope has a grey patch the calibration did not measure.
PATCH_UNCALIBRATED = " (grey patch not measured: calibrate again)"
#: Said after the calibration's note of a kiosk whose sharpness normal was measured before a change to the focus
#: measure (``KioskReference.focus_outdated``: a flag of ``FOCUS_MEASURE_FLAGS`` unset): the kiosk judges focus as
#: that release did, and a new calibration brings it today's focus check.
FOCUS_OUTDATED = " (sharpness measured by an older release: calibrate again)"


def calibration_note(cfg) -> str:
    """The kiosk's quality reference (``cfg.quality.reference``) as health reports it: the calibration's
    note, "" if never calibrated; where ``[quality.grey_patch]`` was added after it (the patch's normal
    brightness unknown, so the exposure check still reads the skin), or its sharpness was measured by an older
    release (``FOCUS_OUTDATED``), the note says so, within the report's 200 characters."""
    ref = cfg.quality.reference
    if not ref.images:
        return ""
    tail = ""
    if cfg.quality.grey_patch is not None and ref.patch_level is None:
        tail += PATCH_UNCALIBRATED
    if ref.focus_outdated:
        tail += FOCUS_OUTDATED
    return (ref.note or "calibrated")[:200 - len(tail)] + tail


class HealthMonitor:
    """Publishes :func:`collect` on the device's ``health`` topic every ``interval_s`` (own thread)."""

    def __init__(self, service, sensors: Sensors | None = None, interval_s: float = 30.0):
        self.service = service
        self.sensors = sensors or SystemSensors()
        self.interval_s = interval_s
        self.last: Health | None = None
        self.sent = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> "HealthMonitor":
        """Start the reporting thread (first report at once)."""
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="edge-health", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the reporting thread."""
        self._stop.set()
        if self._thread:
            self._thread.join(timeout)
        self._thread = None

    @property
    def alive(self) -> bool:
        """True while the thread runs (the watchdog checks this)."""
        return bool(self._thread and self._thread.is_alive())

    def report_once(self) -> Health:
        """Collect one report and hand it to the link."""
        report = collect(self.service, self.sensors, self.interval_s)
        self.last = report
        link = getattr(self.service, "link", None)
        # Only while connected: a report queued through an outage would reach the centre late and
        # look like clock skew (the centre compares its arrival with the kiosk's clock).
        if link is not None and link.connected:
            link.publish(topics.HEALTH, report.model_dump_json())
            self.sent += 1
        return report

    def _run(self) -> None:
        while not self._stop.is_set():
            link = getattr(self.service, "link", None)
            if link is not None and not link.connected:
                self._stop.wait(min(self.interval_s, 1.0))    # report as soon as the link is up
                continue
            try:
                self.report_once()
            except Exception:
                log.exception("health report failed")
            self._stop.wait(self.interval_s)
