"""Issue 25: a kiosk files cases only under the hub it is registered for; an unregistered kiosk is an alert.

Real Mosquitto with the repository's TLS config and access rules, real certificates (dashboard.pki),
the real ingest on a real SQLite file, the registry changed through the real command line
(``python -m dashboard kiosk``), the fleet, kiosks and /metrics pages of the real app on that file.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timezone

from prometheus_client.parser import text_string_to_metric_families

from dashboard import audit, create_app, kioskcli, registry
from dashboard.config import load_config
from dashboard.ingest import Ingest
from dashboard.sample import make_frame
from dashboard.store import Store
from demokit.configs import toml_dumps
from tests import polling
from tests.centre import centre_config
from tests.dashauth import logged_in
from tests.test_fleet_page import health
from tests.tls_kit import Client, clients, kiosk  # noqa: F401  (clients: fixture)
from wire import topics
from wire.messages import Acks, Status

TOKEN = "metrics-token-registry-0123456789abcdef"


def write_config(tmp_path, tls_broker, test_pki, **registry_section):
    """The centre's TOML file (TLS ingest identity, registration required) and its loaded config."""
    cfg = centre_config(tmp_path / "centre", test_pki.ingest_broker(tls_broker, client_id="ingest-reg"),
                        registry={"require_registration": True, **registry_section})
    data = cfg.model_dump(mode="json", exclude_none=True)
    path = tmp_path / "centre.toml"
    path.write_text(toml_dumps(data))
    return path, load_config(path)


def acks_of(c: Client, site: str, device: str) -> list:
    return [a for t, p in c.messages if t == topics.topic(site, device, topics.ACK)
            for a in Acks.model_validate_json(p).acks]


def metrics(app) -> dict:
    body = app.test_client().get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"}).get_data(as_text=True)
    return {(s.name, tuple(sorted((k, v) for k, v in s.labels.items() if k != "client_id"))): s.value
            for fam in text_string_to_metric_families(body) for s in fam.samples}


def test_a_kiosk_files_only_under_its_registered_hub_and_a_stranger_is_quarantined_and_alerted(
        tls_broker, test_pki, clients, tmp_path, capsys):  # noqa: F811
    path, cfg = write_config(tmp_path, tls_broker, test_pki)
    cert, _ = test_pki.kiosk("kiosk-a")
    # The admin registers kiosk-a at hub-north with its certificate file (no broker configured here: the
    # broker still lets kiosk-a publish under any hub, as a kiosk registered by `pki broker-sync` without --site).
    assert kioskcli.main(["register", "--config", str(path), "kiosk-a", "--site", "hub-north",
                          "--cert", str(cert)], load_config) == 0
    assert "registered kiosk-a for hub hub-north; broker not configured" in capsys.readouterr().out
    # bad input names what to fix and changes nothing
    assert kioskcli.main(["register", "--config", str(path), "kiosk-b", "--site", "Hub North",
                          "--cert-serial", "ab"], load_config) == 2
    assert "hub" in capsys.readouterr().err
    assert kioskcli.main(["register", "--config", str(path), "kiosk-b", "--site", "hub-south",
                          "--cert", str(cert)], load_config) == 2
    assert "is the certificate of 'kiosk-a', not 'kiosk-b'" in capsys.readouterr().err

    ing = Ingest(cfg).start()
    try:
        assert ing.wait_ready(10)
        a = kiosk(tls_broker, test_pki, clients, "kiosk-a")
        b = kiosk(tls_broker, test_pki, clients, "kiosk-b")        # a valid certificate, never registered
        assert a.wait_connected() and b.wait_connected()
        for c, dev in ((a, "kiosk-a"), (b, "kiosk-b")):
            assert c.subscribe(f"{topics.PREFIX}/+/{dev}/{topics.ACK}") == ["Granted QoS 1"]
        own, _ = make_frame(1, site="hub-north", device="kiosk-a")
        other_hdr, other = make_frame(2, site="other-hub", device="kiosk-a")
        stranger_hdr, stranger = make_frame(3, site="hub-south", device="kiosk-b")
        now = datetime.now(timezone.utc)
        assert a.publish(topics.topic("hub-north", "kiosk-a", topics.CASE), make_frame(1, site="hub-north",
                                                                                      device="kiosk-a")[1]) == "Success"
        assert a.publish(topics.topic("other-hub", "kiosk-a", topics.CASE), other) == "Success"
        assert a.publish(topics.topic("other-hub", "kiosk-a", topics.HEALTH),
                         health("kiosk-a", now).model_dump_json().encode()) == "Success"
        assert b.publish(topics.topic("hub-south", "kiosk-b", topics.STATUS),
                         Status(device_id="kiosk-b", state="online", at=now).model_dump_json().encode(),
                         retain=True) == "Success"
        assert b.publish(topics.topic("hub-south", "kiosk-b", topics.CASE), stranger) == "Success"
        assert polling.wait_for(lambda: len(acks_of(a, "hub-north", "kiosk-a")) == 1
                                and len(acks_of(a, "other-hub", "kiosk-a")) == 1
                                and len(acks_of(b, "hub-south", "kiosk-b")) == 1, timeout=15)
        assert acks_of(a, "hub-north", "kiosk-a")[0].status == "stored"
        [wrong] = acks_of(a, "other-hub", "kiosk-a")
        assert (str(wrong.case_id), wrong.status) == (str(other_hdr.case_id), "rejected")
        assert wrong.reason == "kiosk kiosk-a is registered for hub hub-north, not other-hub"
        [unreg] = acks_of(b, "hub-south", "kiosk-b")
        assert unreg.status == "rejected" and "kiosk kiosk-b is not registered at the centre" in unreg.reason
        store = Store(cfg.storage.database, cfg.storage.images_dir, cfg.storage.quarantine_dir)
        assert polling.wait_for(lambda: len(store.list_quarantine()) == 3, timeout=10)
    finally:
        ing.stop()
    try:
        assert store.has_case(str(make_frame(1, site="hub-north", device="kiosk-a")[0].case_id))
        assert not store.has_case(str(other_hdr.case_id)) and not store.has_case(str(stranger_hdr.case_id))
        reasons = {(q["device"], q["topic"].rsplit("/", 1)[-1]): q["reason"] for q in store.list_quarantine()}
        assert reasons == {("kiosk-a", "case"): "kiosk kiosk-a is registered for hub hub-north, not other-hub",
                           ("kiosk-a", "health"): "kiosk kiosk-a is registered for hub hub-north, not other-hub",
                           ("kiosk-b", "case"): "kiosk kiosk-b is not registered at the centre "
                                                "(register it: admin, Kiosks)"}
        # the stranger is not a kiosk of the fleet: its status was not recorded, only seen
        assert [d["device"] for d in store.list_devices()] == ["kiosk-a"]
        assert [(u["device"], u["site"], u["kinds"]) for u in registry.unregistered(store.conn)] == \
            [("kiosk-b", "hub-south", ["case", "status"])]
    finally:
        store.close()

    app = create_app({"DATABASE": str(cfg.storage.database), "IMAGES_DIR": str(cfg.storage.images_dir),
                      "QUARANTINE_DIR": str(cfg.storage.quarantine_dir), "METRICS_TOKEN": TOKEN,
                      "REGISTRY": cfg.registry})
    it = logged_in(app, "it-reg", "it")
    html = it.get("/fleet").get_data(as_text=True)
    assert 'id="kiosk-kiosk-a"' in html and 'id="kiosk-kiosk-b"' not in html
    assert 'data-alert="unregistered" data-device="kiosk-b"' in html
    assert 'data-alert="quarantine"' in html and "2 message(s) quarantined in the last 1.0 h" in html
    assert "kiosk-b" in it.get("/devices").get_data(as_text=True).split('id="unregistered"')[1]
    m = metrics(app)
    assert m[("dermkiosk_ingest_cases_stored_total", ())] == 1
    assert m[("dermkiosk_ingest_messages_quarantined_total", (("reason", "wrong-hub"),))] == 2
    assert m[("dermkiosk_ingest_messages_quarantined_total", (("reason", "unregistered"),))] == 1
    assert m[("dermkiosk_ingest_acks_sent_total", ())] == 3          # stored + two rejected cases
    assert m[("dermkiosk_unregistered_kiosks", ())] == 1
    assert m[("dermkiosk_device_quarantined_messages", (("device", "kiosk-a"), ("site", "hub-north")))] == 2


def test_registering_binds_the_kiosk_to_its_hub_at_the_broker_and_unregistering_drops_it(
        tls_broker, test_pki, clients, tmp_path, capsys):  # noqa: F811
    device = f"kiosk-r{uuid.uuid4().hex[:4]}"
    cert, key = test_pki.pki.issue_kiosk(device)                 # registered at the broker for any hub
    test_pki.register(tls_broker, device)
    admin_cert, admin_key = test_pki.pki.paths("broker-admin")
    path, cfg = write_config(tmp_path, tls_broker, test_pki, broker={
        "url": tls_broker.url, "ca_file": str(test_pki.ca), "cert_file": str(admin_cert), "key_file": str(admin_key)})
    try:
        free = Client(tls_broker, device, cert, key, test_pki.ca)
        clients.append(free)
        assert free.wait_connected()
        assert free.publish(topics.topic("other-hub", device, topics.CASE), b"x") in ("Success", "No matching subscribers")
        assert kioskcli.main(["register", "--config", str(path), device, "--site", "hub-east", "--cert", str(cert)],
                             load_config) == 0
        assert "registered at the broker for hub hub-east" in capsys.readouterr().out
        assert polling.wait_for(free.gone.is_set, timeout=5)          # re-registration drops the old connection
        c = Client(tls_broker, device, cert, key, test_pki.ca)
        clients.append(c)
        assert c.wait_connected()
        assert c.publish(topics.topic("other-hub", device, topics.CASE), b"x") == "Not authorized"
        assert c.publish(topics.topic("hub-east", device, topics.CASE), b"x") in ("Success", "No matching subscribers")
        assert kioskcli.main(["unregister", "--config", str(path), device], load_config) == 0
        assert "removed at the broker" in capsys.readouterr().out
        assert polling.wait_for(c.gone.is_set, timeout=5)
        store = Store(cfg.storage.database, cfg.storage.images_dir)
        try:
            entries = audit.entries(store.conn, action="kiosk.")
            assert [(e["action"], e["target"]) for e in entries] == [("kiosk.unregister", device),
                                                                     ("kiosk.register", device)]
            assert entries[0]["actor"].startswith("cli:") and "registered at the broker" in entries[1]["detail"]
            assert registry.get(store.conn, device) is None
        finally:
            store.close()
    finally:
        test_pki.pki.revoke(device)


def test_without_required_registration_a_strangers_cases_are_stored_but_still_alerted(tmp_path):
    """Migration mode: cases of kiosks not yet registered are stored; they still show as unregistered."""
    from dashboard.intake import check_case, handle_cases, handle_kiosk_message

    store = Store(tmp_path / "c.db", tmp_path / "images", tmp_path / "q")
    try:
        registry.ensure_schema(store.conn)
        registry.register(store.conn, "kiosk-a", "hub-north", cert_serial="ab", actor="test")
        now = datetime.now(timezone.utc)
        hdr, frame = make_frame(5, site="hub-x", device="kiosk-z")
        _, wrong = make_frame(6, site="hub-x", device="kiosk-a")
        out = handle_cases(store, [check_case(topics.topic("hub-x", "kiosk-z", "case"), frame, now),
                                   check_case(topics.topic("hub-x", "kiosk-a", "case"), wrong, now)], {},
                           require_registration=False)
        assert [out[i].label for i in range(2)] == ["stored", "quarantined"]
        assert out[1].reason == "wrong-hub"
        st = Status(device_id="kiosk-z", state="online", at=now).model_dump_json().encode()
        assert handle_kiosk_message(store, topics.topic("hub-x", "kiosk-z", "status"), st, now,
                                    require_registration=False).label == "status"
        assert [u["device"] for u in registry.unregistered(store.conn)] == ["kiosk-z"]
    finally:
        store.close()
