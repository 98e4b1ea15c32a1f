"""Polling for the tests that wait on other threads and processes."""

from __future__ import annotations

import time


def wait_for(cond, timeout: float = 15.0, step: float = 0.02, what: str = "condition"):
    """Poll ``cond`` until it returns something true and return that; AssertionError after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = cond()
        if value:
            return value
        time.sleep(step)
    raise AssertionError(f"timed out waiting for {what}")
