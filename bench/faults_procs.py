"""The fault suite's process harness (bench/faults.py): a service process (kiosk or ingest) with
its log file, started, killed (kill -9) and stopped; and the NOTIFY_SOCKET the ingest reports to."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


class Process:
    """One service process (kiosk or ingest) with its log file; ``start``/``kill``/``stop``."""

    def __init__(self, name: str, argv: list[str], log: Path, env: dict | None = None):
        """Prepare (not start) ``argv`` run from the repository root, output appended to ``log``."""
        self.name, self.argv, self.log, self.env = name, argv, log, env
        self.proc: subprocess.Popen | None = None
        self.starts = 0

    def start(self) -> None:
        """Start the process (output appended to its log)."""
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(self.argv, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
                                         env={**os.environ, **(self.env or {})})
        self.starts += 1

    def kill(self) -> None:
        """kill -9 and reap."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 20 s."""
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()

    @property
    def alive(self) -> bool:
        """Whether the process is running."""
        return self.proc is not None and self.proc.poll() is None


class Notify:
    """A NOTIFY_SOCKET (sd_notify) the ingest reports to: tells when it has subscribed."""

    def __init__(self, path: Path):
        """Bind a datagram socket at ``path``."""
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.2)

    def wait_for(self, text: str, timeout: float) -> bool:
        """True once a notification containing ``text`` arrived within ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if text in self.sock.recv(4096).decode(errors="replace"):
                    return True
            except socket.timeout:
                pass
        return False

    def drain(self) -> None:
        """Forget notifications received so far."""
        self.sock.setblocking(False)
        try:
            while True:
                self.sock.recv(4096)
        except (BlockingIOError, OSError):
            pass
        finally:
            self.sock.settimeout(0.2)
