"""The production broker config (firmware_config/mosquitto.centre.conf) matches the tested demo one
and runs: TLS only with AEAD suites, certificates required, identity as user name and client id, CRL,
and the dynamic-security plugin's access rules."""

from __future__ import annotations

import re
from pathlib import Path

from tests.broker import Broker
from tests.tls_kit import Client, t

ROOT = Path(__file__).resolve().parents[1]
CENTRE = ROOT / "firmware_config" / "mosquitto.centre.conf"
DEMO = ROOT / "firmware_config" / "mosquitto.demo.conf"
SECURITY = ("per_listener_settings", "tls_version", "ciphers", "ciphers_tls1.3", "require_certificate",
            "use_identity_as_username", "use_username_as_clientid", "allow_anonymous", "plugin", "persistence",
            "max_packet_size")
FILES = ("cafile", "certfile", "keyfile", "crlfile", "plugin_opt_config_file")


def directives(path: Path) -> dict[str, list[str]]:
    """Each directive of a Mosquitto config with its values, comments dropped."""
    out: dict[str, list[str]] = {}
    for line in path.read_text().splitlines():
        line = re.sub(r"#.*", "", line).strip()
        if line:
            key, _, value = line.partition(" ")
            out.setdefault(key, []).append(value.strip())
    return out


def test_production_config_has_the_demos_security_settings():
    demo, centre = directives(DEMO), directives(CENTRE)
    for key in SECURITY:
        assert centre.get(key) == demo.get(key), key
    for key in FILES:
        assert len(centre[key]) == 1 and Path(centre[key][0]).is_absolute(), key
        assert Path(centre[key][0]).name == Path(demo[key][0]).name, key
    assert [v.split()[0] for v in centre["listener"]] == ["8883"]       # one listener, the TLS one
    assert "password_file" not in centre and "allow_anonymous" in centre
    assert "acl_file" not in centre and "acl_file" not in demo      # it cannot refuse a SUBSCRIBE
    assert centre["plugin"] == ["mosquitto_dynamic_security.so"]


def test_production_config_runs_and_refuses_what_it_must(tmp_path, test_pki):
    text = CENTRE.read_text().replace("listener 8883 0.0.0.0", "listener 8883 127.0.0.1")
    text = re.sub(r"^plugin_opt_config_file .*$", "plugin_opt_config_file var/broker/dynamic-security.json",
                  text, flags=re.M)
    template = tmp_path / "centre.conf"
    template.write_text(text)
    b = Broker(tmp_path / "b", pki=test_pki, template=template,
               extra_conf=f"persistence_location {tmp_path / 'b'}/\n").start()
    made = []
    try:
        s = test_pki.kiosk_broker(b, "kiosk-a")
        a = Client(b, "kiosk-a", s["cert_file"], s["key_file"], test_pki.ca)
        made.append(a)
        assert a.wait_connected()
        assert a.publish(t("kiosk-b", "case"), b"x") == "Not authorized"
        assert a.publish(t("kiosk-a", "case"), b"x") in ("Success", "No matching subscribers")
        assert a.subscribe("#", t("kiosk-a", "ack")) == ["Not authorized", "Granted QoS 1"]
        for cert, key in (test_pki.kiosk(test_pki.REVOKED), test_pki.kiosk("kiosk-a", foreign=True), (None, None)):
            c = Client(b, "intruder", cert, key, test_pki.ca)
            made.append(c)
            assert not c.wait_connected(3)
        plain = Client(b, "plain", tls=False)
        made.append(plain)
        assert not plain.wait_connected(2)
    finally:
        for c in made:
            c.close()
        b.stop()
