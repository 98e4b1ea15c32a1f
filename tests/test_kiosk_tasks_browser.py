"""The kiosk's Tasks screen in Debian's Chromium by touch (800x480 and 1280x720): a re-image outcome that
came over the real broker shows as a task with the reader's reason and the referral's status, for
signed-in staff only; before sign-in the kiosk shows how many tasks wait and nothing about the patient.

Real parts: Mosquitto, the kiosk service (outbox, link, desk, the shipped model, replay camera), its page.
The centre's side is a plain MQTT publish of a :class:`wire.outcome.Outcome` here (the centre's queue and
its publisher are tested in tests/test_outcome_delivery.py). Screenshots: tests/artifacts/kiosk_tasks_*.png.
"""

from __future__ import annotations

import time
import uuid
from datetime import datetime, timezone

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from edge.service import KioskService
from edge.web import WebServer
from tests.appointment_kit import PHOTOGRAPHER, PIN, appointment_config, fill_details, photograph, synthetic_nhs_number
from tests.kiosk_walk import KioskWalk
from tests.test_browser_kiosk_flow import browser  # noqa: F401 (the shared Chromium fixture)
from tests.test_kiosk_service import MODEL_DIR
from tests.web import ARTIFACTS, playwright_or_skip
from wire import topics
from wire.outcome import Outcome
from wire.referral import format_nhs_number

pytestmark = pytest.mark.skipif(not (MODEL_DIR / "manifest.json").exists(), reason="no model in models/lesion yet")
playwright_api = playwright_or_skip()
SIZES = {"800x480": {"width": 800, "height": 480}, "1280x720": {"width": 1280, "height": 720}}
REASON = "Close-up blurred and hair over the lesion: shave and retake with the dermatoscope"
REF = "TK-55/2026"


def publish(broker, topic: str, payload: str) -> None:
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"centre-{uuid.uuid4().hex[:6]}", protocol=mqtt.MQTTv5)
    c.connect(broker.host, broker.port)
    c.loop_start()
    try:
        info = c.publish(topic, payload, qos=1)
        info.wait_for_publish(5)
        assert info.is_published()
    finally:
        c.disconnect()
        c.loop_stop()


@pytest.fixture
def kiosk_with_task(tmp_path, broker):
    """A kiosk that sent a two-lesion referral and got its outcome: L1 discharged, L2 to re-image."""
    nhs = synthetic_nhs_number(55)
    cfg = appointment_config(tmp_path, broker={"url": broker.url, "reconnect_min_s": 0.2},
                             camera={"replay": {"width": 640, "height": 480, "seed": 5}})
    with KioskService(cfg) as svc:
        deadline = time.monotonic() + 10
        while not svc.link.connected:
            assert time.monotonic() < deadline, "the link did not connect"
            time.sleep(0.05)
        desk = svc.desk
        desk.sign_in(PHOTOGRAPHER, PIN)
        fill_details(desk, nhs=nhs, reference=REF)
        desk.add_lesion(PHOTOGRAPHER, site="upper extremity", laterality="left", detail="Forearm")
        desk.add_lesion(PHOTOGRAPHER, site="posterior torso", laterality="midline")
        for i in (1, 2):
            photograph(desk, i)
        stored = desk.submit(PHOTOGRAPHER)
        desk.sign_out(PHOTOGRAPHER)
        rid = stored[0].referral.referral_id
        outcome = Outcome(outcome_id=uuid.uuid4(), referral_id=rid, site=cfg.site, device_id=cfg.device_id,
                          signed_at=datetime.now(timezone.utc), signed_by="Dr Reader",
                          lesions=[{"case_id": stored[0].case_id, "label": "L1", "management": "discharge"},
                                   {"case_id": stored[1].case_id, "label": "L2", "management": "re-image",
                                    "reason": REASON}])
        publish(broker, topics.topic(cfg.site, cfg.device_id, topics.OUTCOME), outcome.model_dump_json())
        deadline = time.monotonic() + 10
        while not svc.outcomes.tasks():
            assert time.monotonic() < deadline, "the outcome did not arrive"
            time.sleep(0.05)
        server = WebServer(svc, port=0).start()
        try:
            yield svc, server.url, nhs
        finally:
            server.stop()


@pytest.mark.parametrize("size", list(SIZES))
def test_reimage_task_for_signed_in_staff_only(kiosk_with_task, browser, size):
    svc, url, nhs = kiosk_with_task
    page = browser.new_context(viewport=SIZES[size], has_touch=True).new_page()
    urls: list[str] = []
    page.on("request", lambda req: urls.append(req.url))
    walk = KioskWalk(page, url, shots_dir=ARTIFACTS, tag=f"tasks_{size}")

    page.goto(url)
    signin = page.locator("main").inner_text()
    assert "1 lesion to photograph again" in signin
    for secret in (nhs, format_nhs_number(nhs), REF, REASON, "Forearm"):
        assert secret not in page.content(), f"{secret} shown before sign-in"
    page.goto(url.rstrip("/") + "/tasks")                        # not without signing in
    assert page.url.rstrip("/") == url.rstrip("/") and format_nhs_number(nhs) not in page.content()

    walk.sign_in(PHOTOGRAPHER, PIN)
    walk.audit("start")
    assert page.locator("#task-count").inner_text() == "1"
    walk.next("#tasks-link")
    tasks = walk.audit("tasks")
    main = page.locator("main").inner_text()
    assert "1 lesion to photograph again" in main
    row = page.locator(".task-row[data-label='L2']")
    text = row.inner_text()
    for words in (f"NHS {format_nhs_number(nhs)}", "born 01/02/1950", f"ref {REF}", "Where: back", f"Reason: {REASON}",
                  "Dr Reader"):
        assert words in text, words
    status = page.locator(".status-row").first
    assert status.get_attribute("data-status") == "reimage"
    assert "Read: new photographs needed" in status.inner_text()
    assert "L1: Discharge with safety-netting advice" in status.inner_text()
    assert "L2: Re-image: new photographs needed: " + REASON in status.inner_text()
    assert walk.failures() == {"small": {}, "below": []}
    assert not tasks.page_scrolls, "the tasks screen scrolls as a whole"
    assert walk.keystrokes == 0

    walk.next("[data-done='L2']")
    walk.audit("tasks-done")
    assert "Task for lesion L2 marked done" in page.locator("#flashes").inner_text()
    assert page.locator(".task-row").count() == 0
    assert page.locator(".status-row").first.get_attribute("data-status") == "reported"
    assert svc.outcomes.tasks() == [] and any(e.action == "task-done" for e in svc.desk.audit.entries())
    for u in urls:
        assert nhs not in u and REF not in u and "TK-55" not in u
