"""Shared pytest fixtures: a real Mosquitto broker per test (free port, own folder), plain or TLS."""

from __future__ import annotations

import pytest

from tests.broker import Broker


@pytest.fixture
def broker(tmp_path):
    """A running Mosquitto on 127.0.0.1 with its own config and persistence; stopped after the test."""
    b = Broker(tmp_path / "broker").start()
    yield b
    b.stop()


@pytest.fixture(scope="session")
def test_pki(tmp_path_factory):
    """CA, broker, ingest and kiosk certificates (dashboard.pki), made once per test session."""
    from tests.broker import TestPki

    return TestPki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def tls_broker(tmp_path, test_pki):
    """A running Mosquitto with the repository's TLS configuration and ACL, on a free port.

    Settings for clients: ``test_pki.kiosk_broker(tls_broker, "kiosk-a")`` and
    ``test_pki.ingest_broker(tls_broker)``.
    """
    b = Broker(tmp_path / "tls-broker", pki=test_pki).start()
    yield b
    b.stop()
