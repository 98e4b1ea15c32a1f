"""The fault suite's driver of the kiosk page (bench/faults.py): sign in, open an appointment, enter
its details, photograph each lesion's views and submit, over HTTP like the kiosk's browser."""

from __future__ import annotations

import hashlib
import http.client
import http.cookiejar
import re
import urllib.error
import urllib.parse
import urllib.request

VIEWS = ("dermoscopic", "close-up")
#: The photographer the bench signs in as, and the patient of every referral (a synthetic NHS number;
#: each trial's referral reference differs, so no referral is refused as sent before).
STAFF_ID, STAFF_PIN = "ph-bench", "2468"
NHS_NUMBER = "9990000018"


class PageDown(Exception):
    """The kiosk page did not answer (the kiosk was killed)."""


class Page:
    """The kiosk page driven over HTTP like the kiosk's browser (cookies, CSRF token)."""

    _CSRF = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"')
    _SAVED = "Referral saved"

    def __init__(self, port: int):
        """Talk to the kiosk page on 127.0.0.1:``port``."""
        self.base = f"http://127.0.0.1:{port}"
        self.reset()

    def reset(self) -> None:
        """A fresh browser session (after the kiosk restarted, its old session cookie is void)."""
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
        self.token = ""

    def _open(self, path: str, data: dict | None = None, timeout: float = 30) -> bytes:
        body = urllib.parse.urlencode(data).encode() if data is not None else None
        try:
            with self.opener.open(self.base + path, body, timeout=timeout) as r:
                return r.read()
        except urllib.error.HTTPError:
            raise
        except (urllib.error.URLError, http.client.HTTPException, OSError) as exc:
            raise PageDown(str(exc)) from None

    def get(self, path: str) -> str:
        """GET a page (keeps the CSRF token it carries)."""
        html = self._open(path).decode()
        m = self._CSRF.search(html)
        if m:
            self.token = m.group(1)
        return html

    def post(self, path: str, **fields) -> str:
        """POST a form with the CSRF token; returns the page it redirects to."""
        if not self.token:
            self.get("/")
        try:
            html = self._open(path, {"csrf_token": self.token, **fields}).decode()
        except urllib.error.HTTPError as exc:
            if exc.code != 422:                 # 422: the page refused the input and says why
                raise
            html = exc.read().decode()
        m = self._CSRF.search(html)
        if m:
            self.token = m.group(1)
        return html

    def status(self) -> dict:
        """The kiosk's /status.json."""
        import json

        return json.loads(self._open("/status.json", timeout=5))

    def capture_referral(self, k: int, lesions: int, hook) -> list[list[str]] | None:
        """Sign in, open an appointment, enter its details, photograph ``lesions`` lesions, submit.

        ``hook(step)`` runs before each step (``start``, ``lesion-<i>``, ``capture-<i>-<view>``,
        ``submit``). Returns, per lesion, the SHA-256 of each view (VIEWS order) when the page
        confirmed the save; None when the kiosk refused it. Raises PageDown when the kiosk went away.
        """
        hook("start")
        self.get(f"/signin/{STAFF_ID}")                    # the PIN pad (its form carries the CSRF token)
        self.post(f"/signin/{STAFF_ID}", pin=STAFF_PIN)
        self.post("/appointment/discard")                  # an appointment a killed kiosk left open
        self.post("/appointment/open")
        self.post("/appointment/patient", nhs_number=NHS_NUMBER, date_of_birth="01021950", sex="female")
        self.post("/appointment/skin", fitzpatrick="III")
        self.post("/appointment/referral", reference=f"FAULT-{k:05d}", referral_date="01112026",
                  practice_ods="A81001", route="gp-referral")
        self.post("/appointment/consents", photography="yes", ai_analysis="yes", teaching="no")
        for i in range(1, lesions + 1):                    # the referral's lesions first, then their photographs
            hook(f"lesion-{i}")
            self.post("/lesions/new", site="anterior torso", laterality="left")
        out = []
        for i in range(1, lesions + 1):
            shas = []
            for view in VIEWS:
                hook(f"capture-{i}-{view}")
                self.post(f"/lesions/{i}/shoot/{view}")
                # a shot that failed the gate is sent with a reason (one that passed needs none: refused, harmless)
                self.post(f"/lesions/{i}/shoot/{view}/1/override", reason="other", text="fault bench")
                try:
                    jpeg = self._open(f"/lesions/{i}/shot/{view}/1.jpg")
                except urllib.error.HTTPError as exc:
                    if exc.code == 404:                        # the capture was refused: no referral this time
                        return None
                    raise
                shas.append(hashlib.sha256(jpeg).hexdigest())
            out.append(shas)
        hook("submit")
        html = self.post("/submit")
        return out if self._SAVED in html else None
