"""Issue 25: the broker offers only AEAD suites (TLS 1.2 ECDHE with AES-GCM or ChaCha20-Poly1305, and
TLS 1.3). ``openssl s_client`` with a valid kiosk certificate against the real broker running the
repository's config: the four CBC suites it used to accept (LUCKY13) fail, AEAD ones succeed."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from tests.broker import Broker

CBC = ("ECDHE-ECDSA-AES128-SHA", "ECDHE-ECDSA-AES256-SHA", "ECDHE-ECDSA-AES128-SHA256", "ECDHE-ECDSA-AES256-SHA384")
AEAD = ("ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-ECDSA-AES256-GCM-SHA384", "ECDHE-ECDSA-CHACHA20-POLY1305")

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl command not installed")


def s_client(broker: Broker, test_pki, *args: str) -> tuple[int, str]:
    """``openssl s_client`` to the broker with kiosk-a's certificate; (exit status, output)."""
    cert, key = test_pki.kiosk("kiosk-a")
    r = subprocess.run(["openssl", "s_client", "-connect", f"{broker.host}:{broker.port}", "-CAfile", str(test_pki.ca),
                        "-cert", str(cert), "-key", str(key), "-verify_return_error", *args],
                       input="", capture_output=True, text=True, timeout=20)
    return r.returncode, r.stdout + r.stderr


def negotiated(out: str) -> str | None:
    m = re.search(r"Cipher is (\S+)", out)
    return None if m is None or m.group(1) == "(NONE)" else m.group(1)


def test_cbc_suites_are_refused_and_aead_suites_accepted(tls_broker, test_pki):
    for suite in CBC:
        rc, out = s_client(tls_broker, test_pki, "-tls1_2", "-cipher", suite)
        assert rc != 0 and negotiated(out) is None, f"{suite} accepted:\n{out[-600:]}"
    for suite in AEAD:
        rc, out = s_client(tls_broker, test_pki, "-tls1_2", "-cipher", suite)
        assert rc == 0 and negotiated(out) == suite, f"{suite} refused:\n{out[-600:]}"
    rc, out = s_client(tls_broker, test_pki, "-tls1_3")
    assert rc == 0 and negotiated(out) in ("TLS_AES_256_GCM_SHA384", "TLS_AES_128_GCM_SHA256",
                                           "TLS_CHACHA20_POLY1305_SHA256"), out[-600:]
    for old in ("-tls1", "-tls1_1"):
        rc, out = s_client(tls_broker, test_pki, old, "-cipher", "DEFAULT@SECLEVEL=0")
        assert rc != 0 and negotiated(out) is None, old


def test_without_the_ciphers_line_openssl_would_accept_cbc(tmp_path, test_pki):
    """The check above is not vacuous: the same broker without our `ciphers` line takes a CBC suite."""
    from demo import BROKER_TEMPLATE

    template = tmp_path / "no-ciphers.conf"
    template.write_text(re.sub(r"^ciphers .*$", "", BROKER_TEMPLATE.read_text(), flags=re.M))
    b = Broker(tmp_path / "b", pki=test_pki, template=template).start()
    try:
        rc, out = s_client(b, test_pki, "-tls1_2", "-cipher", CBC[0])
        assert rc == 0 and negotiated(out) == CBC[0], out[-600:]
    finally:
        b.stop()
