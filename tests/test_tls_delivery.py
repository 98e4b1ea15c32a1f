"""A whole case through TLS: from the kiosk's link to the real ingest and back acknowledged; a kiosk config that
names another device's certificate; two ingest processes sharing the cases."""

from __future__ import annotations

import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.link import BrokerSettings, Link
from edge.outbox import Outbox
from wire.codec import sha256_hex
from wire.messages import CaseHeader, ImageMeta
from tests.tls_kit import SITE


def submit_case(outbox: Outbox, n: int, device: str = "kiosk-a") -> tuple[str, bytes]:
    """Put a small case (referral ``TLS-REF-<n>``, one 64 x 64 JPEG) in a kiosk's outbox; return its id and image."""
    ok, buf = cv2.imencode(".jpg", np.random.default_rng(n).integers(0, 255, (64, 64, 3), dtype=np.uint8))
    jpeg = buf.tobytes()
    now = datetime.now(timezone.utc)
    header = CaseHeader(case_id=uuid.uuid4(), referral_ref=f"TLS-REF-{n}", lesion_id="L1",
                        body_site="anterior torso", site=SITE, device_id=device, created_at=now,
                        seq=n, software_version="t", model_version="m",
                        images=[ImageMeta(view="dermoscopic", captured_at=now, sha256=sha256_hex(jpeg),
                                          length=len(jpeg), width=64, height=64)])
    outbox.submit(header, [jpeg])
    return str(header.case_id), jpeg


def wait_delivered(outbox: Outbox, ids: list[str], link: Link, timeout: float = 20.0) -> None:
    """Wait until the centre has acknowledged every case in ``ids``."""
    deadline = time.monotonic() + timeout
    while any(outbox.get(cid).state not in ("delivered", "purged") for cid in ids):
        assert time.monotonic() < deadline, f"not all acked: {link.stats}"
        time.sleep(0.05)


def wait_holding(link: Link, timeout: float = 10.0) -> None:
    """Wait until the kiosk's link holds its cases because no ingest says it is online."""
    deadline = time.monotonic() + timeout
    while not link.holding:
        assert time.monotonic() < deadline, f"the kiosk did not see the centre go: {link.stats}"
        time.sleep(0.05)


def stop_all(link: Link | None, outbox: Outbox | None, *ingests) -> None:
    """A test's teardown: the kiosk's link and outbox (where they were made), then each ingest."""
    if link:
        link.stop()
    if outbox:
        outbox.close()
    for ingest in ingests:
        ingest.stop()


def test_a_case_goes_through_tls_from_the_kiosk_link_to_the_ingest_and_is_acked(tls_broker, test_pki,
                                                                              tmp_path):
    from tests.centre import centre_config
    from dashboard.ingest import Ingest
    from dashboard.store import Store

    cfg = centre_config(tmp_path / "centre", test_pki.ingest_broker(tls_broker))
    ingest = Ingest(cfg).start()
    outbox = link = None
    try:
        assert ingest.wait_ready(15), "the ingest did not connect and subscribe over TLS"
        outbox = Outbox(tmp_path / "kiosk" / "data")
        settings = BrokerSettings.model_validate(
            test_pki.kiosk_broker(tls_broker, "kiosk-a", reconnect_min_s=0.2, reconnect_max_s=1.0))
        assert settings.tls
        link = Link(settings, SITE, "kiosk-a", outbox).start()
        cid, jpeg = submit_case(outbox, 1)
        link.wake()
        wait_delivered(outbox, [cid], link)
        assert link.connected and link.stats.delivered == 1
        # Delivered: the kiosk deletes the (sealed) image files and forgets the header.
        deadline = time.monotonic() + 10
        while outbox.get(cid).state != "purged" or any(outbox.images_dir.iterdir()):
            assert time.monotonic() < deadline, "delivered case not purged"
            time.sleep(0.05)
        stored = Store(cfg.storage.database, cfg.storage.images_dir, cfg.storage.quarantine_dir).load_case(cid)
        assert stored is not None
        got_header, images = stored
        assert images == [jpeg] and got_header.referral_ref == "TLS-REF-1"
        # The ingest announced itself through the ACL; stopping it tells the kiosk to hold its cases.
        assert link.stats.centre == "online"
        ingest.stop()
        wait_holding(link)
    finally:
        stop_all(link, outbox, ingest)


def test_kiosk_config_refuses_a_certificate_for_another_device(tmp_path, test_pki):
    from edge.config import ConfigError, load

    cert, key = test_pki.kiosk("kiosk-b")
    path = tmp_path / "kiosk.toml"
    path.write_text(f'device_id = "kiosk-a"\nsite = "{SITE}"\nmodel_dir = "{Path(__file__).parents[1] / "models/lesion"}"\n'
                    f'[broker]\nurl = "mqtts://127.0.0.1:8883"\nca_file = "{test_pki.ca}"\n'
                    f'cert_file = "{cert}"\nkey_file = "{key}"\n')
    with pytest.raises(ConfigError, match="certificate is for 'kiosk-b', not for device_id 'kiosk-a'"):
        load(path)
    path.write_text(path.read_text().replace('device_id = "kiosk-a"', 'device_id = "kiosk-b"'))
    assert load(path).device_id == "kiosk-b"


def test_two_ingest_processes_share_the_cases_and_either_keeps_the_centre_online(tls_broker, test_pki, tmp_path):
    """Ingest 1 (certificate ``ingest``) and 2 (``ingest-2``): one store, the cases split, none twice."""
    from tests.centre import centre_config
    from dashboard.config import ingest_instance
    from dashboard.ingest import Ingest
    from dashboard.store import Store

    first = centre_config(tmp_path / "centre", test_pki.ingest_broker(tls_broker))
    second = ingest_instance(first, 2)
    assert second.broker.cert_file == test_pki.pki.paths("ingest-2")[0]
    ingests = [Ingest(first).start(), Ingest(second).start()]
    outbox = link = None
    try:
        assert all(i.wait_ready(15) for i in ingests), "an ingest did not connect and subscribe over TLS"
        outbox = Outbox(tmp_path / "kiosk" / "data")
        settings = BrokerSettings.model_validate(
            test_pki.kiosk_broker(tls_broker, "kiosk-a", reconnect_min_s=0.2, reconnect_max_s=1.0))
        link = Link(settings, SITE, "kiosk-a", outbox).start()
        ids = [submit_case(outbox, n)[0] for n in range(12)]
        link.wake()
        wait_delivered(outbox, ids, link)
        stored = [i.stats["stored"] for i in ingests]
        assert sum(stored) == 12 and min(stored) > 0, f"the broker did not share the cases: {stored}"
        # Ingest 1 restarts: ingest 2 still says online, the kiosk goes on sending. Ingest 2 stores its
        # share at once; the broker keeps ingest 1's share for its session, which gets it on return.
        ingests[0].stop()
        time.sleep(1.0)
        assert link.stats.centre == "online" and not link.holding
        more = [submit_case(outbox, n)[0] for n in range(100, 104)]
        link.wake()
        deadline = time.monotonic() + 10
        while ingests[1].stats["stored"] == stored[1]:
            assert time.monotonic() < deadline, f"ingest 2 did not take its share: {ingests[1].stats}"
            time.sleep(0.05)
        time.sleep(1.0)
        waiting = [cid for cid in more if outbox.get(cid).state not in ("delivered", "purged")]
        assert waiting and ingests[1].stats["stored"] - stored[1] == 4 - len(waiting)
        ingests[0] = Ingest(first).start()
        wait_delivered(outbox, more, link)
        assert ingests[0].stats["stored"] == len(waiting)
        # Ingest 1 retires: once its session is ended the broker gives every case to ingest 2.
        ingests[0].stop()
        assert Ingest(first).end_session()
        last = [submit_case(outbox, n)[0] for n in range(200, 204)]
        before = ingests[1].stats["stored"]
        link.wake()
        wait_delivered(outbox, last, link, timeout=10)
        assert ingests[1].stats["stored"] == before + 4
        store = Store(first.storage.database, first.storage.images_dir, first.storage.quarantine_dir)
        try:
            assert store.count_cases() == 20
        finally:
            store.close()
        ingests[1].stop()  # the last one: now the kiosk holds its cases
        wait_holding(link)
    finally:
        stop_all(link, outbox, *ingests)
