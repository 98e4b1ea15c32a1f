"""Shared pytest fixtures: a real Mosquitto broker per test (free port, own folder)."""

from __future__ import annotations

import pytest

from tests.broker import Broker


@pytest.fixture
def broker(tmp_path):
    """A running Mosquitto on 127.0.0.1 with its own config and persistence; stopped after the test."""
    b = Broker(tmp_path / "broker").start()
    yield b
    b.stop()
