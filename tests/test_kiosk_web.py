"""The kiosk page's server side with Flask's test client over the real kiosk service: CSRF, the dashboard's
security headers, identifiers only in POST bodies, errors next to their field, the idle sign-out,
the preview for signed-in staff only, the classifier's result hidden unless configured."""

from __future__ import annotations

import os
import re
import socket
import time
from pathlib import Path

import pytest

from edge.service import KioskService
from edge.web import WebServer, create_app, eta_text, status_bar
from edge.web.security import CSP
from tests.appointment_kit import PHOTOGRAPHER, PIN, appointment_config, synthetic_nhs_number
from tests.test_kiosk_service import MODEL_DIR
from tests.web import CHROMIUM_ARGS  # noqa: F401 (tests/test_kiosk_drain.py takes it from here)

pytestmark = pytest.mark.skipif(not (MODEL_DIR / "manifest.json").exists(), reason="no model in models/lesion yet")
SHOTS = Path(os.environ.get("DERMKIOSK_SCREENSHOTS", "/tmp/dermkiosk-screenshots"))


def token(html: str) -> str:
    """The page's CSRF token."""
    return re.search(r'name="csrf-token" content="([^"]+)"', html).group(1)


class Page:
    """A test client that keeps the current CSRF token and posts forms with it."""

    def __init__(self, app):
        self.client = app.test_client()
        self.token = token(self.client.get("/").get_data(as_text=True))

    def get(self, url: str):
        r = self.client.get(url)
        if b"csrf-token" in r.data:
            self.token = token(r.get_data(as_text=True))
        return r

    def post(self, url: str, follow: bool = True, **data):
        r = self.client.post(url, data={"csrf_token": self.token, **data}, follow_redirects=follow)
        if r.mimetype == "text/html" and b"csrf-token" in r.data:
            self.token = token(r.get_data(as_text=True))
        return r

    def sign_in(self, staff: str = PHOTOGRAPHER, pin: str = PIN):
        return self.post(f"/signin/{staff}", pin=pin)

    def details(self, nhs: str | None = None, reference: str = "1234 5678 9012", referral_date: str = "20 11 2025"):
        """Sign in, open an appointment and fill in its details through the forms."""
        self.sign_in()
        self.post("/appointment/open")
        self.post("/appointment/patient", nhs_number=nhs or synthetic_nhs_number(), date_of_birth="01 02 1950",
                  sex="female")
        self.post("/appointment/skin", fitzpatrick="II")
        self.post("/appointment/referral", reference=reference, referral_date=referral_date,
                  practice_other="A81001", route="gp-referral")
        return self.post("/appointment/consents", photography="yes", ai_analysis="yes", teaching="no")


@pytest.fixture
def service(tmp_path):
    with KioskService(appointment_config(tmp_path, appointment={"idle_timeout_s": 15}), with_link=False) as svc:
        yield svc


def test_forms_need_the_csrf_token(service):
    client = create_app(service).test_client()
    assert client.post(f"/signin/{PHOTOGRAPHER}", data={"pin": PIN}).status_code == 400
    assert service.desk.signed_in(PHOTOGRAPHER) is None
    page = client.get("/")
    assert page.status_code == 200 and b'name="csrf-token"' in page.data and b"Alex Carter" in page.data


def test_security_headers_match_the_dashboard(service):
    from dashboard import security as dash

    assert CSP == dash.CSP and "unsafe-inline" not in CSP
    r = create_app(service).test_client().get("/")
    h = r.headers
    assert h["Content-Security-Policy"] == CSP and h["X-Frame-Options"] == "DENY"
    assert h["X-Content-Type-Options"] == "nosniff" and h["Referrer-Policy"] == "no-referrer"
    assert h["Cache-Control"] == "no-store"
    assert "HttpOnly" in h.get("Set-Cookie", "HttpOnly") and "style=" not in r.get_data(as_text=True)


def test_identifiers_travel_in_post_bodies_and_errors_sit_by_their_field(service):
    page = Page(create_app(service))
    page.sign_in()
    page.post("/appointment/open")
    nhs = synthetic_nhs_number(2)
    bad = nhs[:-1] + str((int(nhs[-1]) + 1) % 10)
    cases = [({"nhs_number": nhs[:9]}, "nhs_number", "10 digits; this one has 9"),
             ({"nhs_number": bad}, "nhs_number", "check digit"),
             ({"date_of_birth": "01 01 2999"}, "date_of_birth", "future")]
    for change, field, words in cases:
        form = {"nhs_number": nhs, "date_of_birth": "01 02 1950", "sex": "male", **change}
        r = page.post("/appointment/patient", **form)
        html = r.get_data(as_text=True)
        assert r.status_code == 422
        err = re.search(rf'id="e-{field}">([^<]*)<', html)
        assert err and words in err.group(1), (field, html[:200])
        assert f'value="{form["nhs_number"]}"' in html            # what was typed is kept
    r = page.post("/appointment/patient", follow=False, nhs_number=nhs, date_of_birth="01 02 1950", sex="male")
    assert r.status_code == 302 and nhs not in r.headers["Location"]
    page.post("/appointment/skin", fitzpatrick="V")
    r = page.post("/appointment/referral", reference="1234 5678 9012", referral_date="01 01 2999",
                  practice_other="A81001", route="gp-referral")
    assert r.status_code == 422 and re.search(r'id="e-referral_date">[^<]*future', r.get_data(as_text=True))
    r = page.post("/appointment/referral", reference="12345", referral_date="01 01 2020",
                  practice_other="A81001", route="gp-referral")
    assert re.search(r'id="e-reference">[^<]*12 digits', r.get_data(as_text=True))


def test_no_to_photography_ends_the_appointment_and_says_what_to_do(service):
    page = Page(create_app(service))
    page.details()
    service.desk.discard(PHOTOGRAPHER, "test")
    page.post("/appointment/open")
    page.post("/appointment/patient", nhs_number=synthetic_nhs_number(3), date_of_birth="01 02 1950", sex="female")
    page.post("/appointment/skin", fitzpatrick="II")
    page.post("/appointment/referral", reference="123456789012", referral_date="01 01 2020",
              practice_other="A81001", route="gp-referral")
    r = page.post("/appointment/consents", photography="no", ai_analysis="yes", teaching="no")
    html = r.get_data(as_text=True)
    assert "Appointment ended" in html and service.desk.current() is None
    assert re.search(r'id="message"[^>]*>[^<]{20,}', html)
    r = page.post("/appointment/consents", photography="yes")
    assert r.request.path == "/appointment/"                    # nothing open any more


def test_too_many_lesions_is_refused_with_a_message(tmp_path):
    cfg = appointment_config(tmp_path, appointment={"max_lesions": 1})
    with KioskService(cfg, with_link=False) as svc:
        page = Page(create_app(svc))
        page.details()
        page.post("/lesions/new", site="head/neck", laterality="midline")
        html = page.get("/lesions/new")
        assert html.status_code == 302
        r = page.post("/lesions/new", site="head/neck", laterality="left")
        assert r.status_code == 422 and len(svc.desk.current().lesions) == 1
        assert "lesion" in r.get_data(as_text=True).lower()
        follow = page.client.get("/lesions/new", follow_redirects=True).get_data(as_text=True)
        assert "the most one appointment may photograph" in follow


def test_idle_timeout_signs_out_on_the_server(service, monkeypatch):
    page = Page(create_app(service))
    page.details()
    assert service.desk.signed_in(PHOTOGRAPHER) is not None
    later = time.time() + 16
    monkeypatch.setattr(time, "time", lambda: later)
    r = page.client.get("/lesions/", follow_redirects=True)
    assert r.request.path == "/" and "Signed out after a time without use" in r.get_data(as_text=True)
    assert service.desk.signed_in(PHOTOGRAPHER) is None
    assert service.desk.current() is not None                   # the appointment is kept (sealed)


def test_a_form_posted_after_the_server_ended_the_session_lands_on_sign_in(service, monkeypatch):
    """The race the server's idle timeout runs with the page's own timer: a status poll after the timeout ends the
    session, and its CSRF token with it; the page's idle sign-out, posted next with the old token, lands on the
    sign-in screen with the idle message (it had got "Form refused", which took the message). So does any form of
    a screen left open that long."""
    page = Page(create_app(service))
    page.details()
    stale = page.token
    later = time.time() + 16
    monkeypatch.setattr(time, "time", lambda: later)
    assert page.client.get("/status.json").status_code == 200  # a passive poll, yet past the timeout it signs out
    assert service.desk.signed_in(PHOTOGRAPHER) is None
    r = page.client.post("/signout", data={"csrf_token": stale, "why": "idle"})
    assert r.status_code == 302 and r.headers["Location"].endswith("/")
    home = page.client.get("/").get_data(as_text=True)
    assert "Signed out after a time without use" in home and "Form refused" not in home
    r = page.client.post("/lesions/new", data={"csrf_token": stale, "site": "head/neck"}, follow_redirects=True)
    assert r.request.path == "/" and "Signed out after a time without use" in r.get_data(as_text=True)
    page.get("/")  # the sign-in screen's own token
    page.sign_in()  # signed in, a bad token is still refused as it was
    assert service.desk.signed_in(PHOTOGRAPHER) is not None
    r = page.client.post("/lesions/new", data={"csrf_token": "forged", "site": "head/neck"})
    assert r.status_code == 400 and "Form refused" in r.get_data(as_text=True)


def test_classifier_result_only_when_configured(tmp_path):
    for show in (False, True):
        cfg = appointment_config(tmp_path / str(show), appointment={"show_classifier": show})
        with KioskService(cfg, with_link=False) as svc:
            page = Page(create_app(svc))
            page.details()
            page.post("/lesions/new", site="head/neck", laterality="midline")
            page.post("/lesions/1/shoot/dermoscopic")
            html = page.get("/lesions/1/shoot/dermoscopic").get_data(as_text=True)
            assert svc.desk.current().lesions[0].shots["dermoscopic"][0].classification is not None
            assert ('id="result"' in html) is show and ("Risk tier" in html) is show


def test_preview_for_signed_in_staff_only(service):
    server = WebServer(service, port=0).start()
    try:
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as s:
            s.sendall(b"GET /preview.mjpg HTTP/1.1\r\nHost: x\r\n\r\n")
            assert s.recv(100).startswith(b"HTTP/1.1 403")
    finally:
        server.stop()
    page = Page(create_app(service))
    page.sign_in()
    r = page.client.get("/preview.mjpg")
    chunks = iter(r.response)
    data = b"".join(next(chunks) for _ in range(2))
    r.close()
    assert r.mimetype == "multipart/x-mixed-replace" and data.count(b"\xff\xd8") >= 1


def test_status_json_is_open_and_not_activity(service):
    client = create_app(service).test_client()
    body = client.get("/status.json").get_json()
    assert body["queue_depth"] == 0 and body["signed_in"] is False and body["bar"]["camera"]["css"] == "ok"


def test_status_bar_wording_for_each_link_and_camera_state():
    """One source for the status bar (page and script): held, connected, offline; camera; time left."""
    def bar(connected, centre, camera=True, eta_s=None):
        return status_bar({"link": {"connected": connected, "centre": centre}, "camera": camera,
                           "drain": {"rate": 1.0, "eta_s": eta_s}})
    held = bar(True, "offline")
    assert held["link"] == {"css": "warn", "text": "Centre offline: cases are kept here and sent when it is back"}
    assert bar(True, "online")["link"] == {"css": "ok", "text": "Connected to centre"}
    assert bar(True, None)["link"]["css"] == "ok", "no presence heard yet: connected"
    assert bar(False, "offline")["link"] == {"css": "bad", "text": "Offline: cases are kept and sent later"}
    assert bar(True, "online", camera=False)["camera"] == {"css": "bad", "text": "Camera not connected"}
    assert bar(True, "online")["camera"] == {"css": "ok", "text": "Camera ready"}
    assert [eta_text(s) for s in (None, 42, 420, 5400)] == ["-", "42 s", "7 min", "1.5 h"]
    assert bar(True, "online", eta_s=420)["drain_eta"] == "7 min"
