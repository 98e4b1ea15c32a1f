"""Walk a referral through the real kiosk page with Playwright, by touch only, and audit every screen.

Reusable by the kiosk page's tests, the combined kiosk -> centre test and ``bench/kiosk_taps.py``:

    walk = KioskWalk(page, base_url, shots_dir=ARTIFACTS, tag="800x480")
    walk.referral(PatientEntry(nhs_number=...), [LesionEntry("front", "arm-left"), ...], staff=..., pin=...)

Every interaction is a ``tap()`` on an on-screen control (the digit pad, the letter keyboard, buttons,
the body map), counted in ``walk.taps``. Key presses that reach the page are counted by a listener
installed before any page script (``walk.keystrokes``), so a walk that needed a physical keyboard
shows it. On each new screen ``audit()`` records targets under 44x44 px and whether the screen's
main action (``[data-main]``) is below the fold, and saves a screenshot when ``shots_dir`` is set.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

#: Where the page's views are photographed, in order.
VIEWS = ("dermoscopic", "close-up", "regional")

AUDIT_JS = """() => {
  const sel = 'a[href], button, input:not([type=hidden]), select, textarea, summary, [role=button]';
  const small = [];
  for (const el of document.querySelectorAll(sel)) {
    const cs = getComputedStyle(el);
    const r = el.getBoundingClientRect();
    if (!el.getClientRects().length || cs.visibility === 'hidden' || el.closest('[hidden]')) continue;
    if (el.closest('.sr-only')) continue;
    if (r.width < 43.5 || r.height < 43.5) {
      const name = (el.id ? '#' + el.id : el.tagName.toLowerCase()) + ' "' +
        (el.getAttribute('aria-label') || el.textContent || el.value || '').trim().slice(0, 30) + '"';
      small.push(name + ' ' + Math.round(r.width) + 'x' + Math.round(r.height));
    }
  }
  const main = document.querySelector('[data-main]');
  const m = main ? main.getBoundingClientRect() : null;
  return {small, main: main ? (main.id || main.textContent.trim()) : null,
          below: m ? (m.bottom > innerHeight + 0.5 || m.right > innerWidth + 0.5) : false,
          pageScrolls: document.documentElement.scrollHeight > innerHeight + 1,
          url: location.pathname};
}"""


@dataclass
class PatientEntry:
    """What the photographer types for the appointment's details (dates as DDMMYYYY digits)."""

    nhs_number: str
    date_of_birth: str = "01021950"
    sex: str = "female"
    fitzpatrick: str = "III"
    reference: str = "123456789012"       # digits: a UBRN on the pad; otherwise a local reference
    referral_date: str | None = None       # None: the "Today" button
    practice_ods: str = "A81001"           # a configured quick pick is tapped, else typed on the keyboard
    route: str = "gp-referral"
    consents: tuple[bool, bool, bool] = (True, True, False)


@dataclass
class LesionEntry:
    """A lesion: the body map region tapped (``side`` front/back, region key), optional detail and history."""

    side: str
    region: str
    detail: str | None = None            # a quick-pick label of the site
    size_mm: str | None = None
    history: tuple[str, ...] = ()        # changed, bleeding, itching, new
    checklist: tuple[str, ...] = ()      # wire.referral.SEVEN_POINT keys
    added_reason: str | None = None      # for a lesion added after photographing started


@dataclass
class ScreenAudit:
    """What one screen looked like: its path, targets under 44 px and whether its main action is below the fold."""

    name: str
    url: str
    small: list[str]
    main: str | None
    below: bool
    page_scrolls: bool


@dataclass
class KioskWalk:
    """A touch-only walk through the kiosk page (see the module docstring)."""

    page: object
    base: str
    shots_dir: Path | None = None
    tag: str = ""
    #: Called with (walk, screen name) on every audited screen (e.g. to run axe-core there).
    on_screen: object = None
    taps: int = 0
    screens: list[ScreenAudit] = field(default_factory=list)
    _keys: list[int] = field(default_factory=lambda: [0])

    def __post_init__(self):
        """Count key presses that reach any page of this walk (installed before the page's own script)."""
        self.base = self.base.rstrip("/")
        self.page.expose_function("__dermkioskKey", lambda: self._keys.__setitem__(0, self._keys[0] + 1))
        self.page.add_init_script("document.addEventListener('keydown', () => window.__dermkioskKey(), true);")

    @property
    def keystrokes(self) -> int:
        """Key presses the page received during the walk."""
        return self._keys[0]

    # ---------------------------------------------------------------- primitives
    def tap(self, target) -> None:
        """Tap a selector or locator (counted)."""
        loc = self.page.locator(target) if isinstance(target, str) else target
        loc.tap()
        self.taps += 1

    def audit(self, name: str) -> ScreenAudit:
        """Audit the current screen (targets, main action) and screenshot it."""
        self.page.wait_for_load_state("domcontentloaded")
        got = self.page.evaluate(AUDIT_JS)
        audit = ScreenAudit(name, got["url"], got["small"], got["main"], got["below"], got["pageScrolls"])
        self.screens.append(audit)
        if self.on_screen is not None:
            self.on_screen(self, name)
        if self.shots_dir is not None:
            self.shots_dir.mkdir(parents=True, exist_ok=True)
            self.page.screenshot(path=str(self.shots_dir / f"kiosk_{self.tag}_{len(self.screens):02d}_{name}.png"))
        return audit

    def pad(self, text: str, scope: str = "form") -> None:
        """Tap ``text`` on the screen's digit pad (into the pad's current field)."""
        for ch in text:
            key = "back" if ch == "\b" else ch
            self.tap(self.page.locator(f"{scope} .pad [data-key='{key}']"))

    def keyboard(self, text: str) -> None:
        """Tap ``text`` on the on-screen letter keyboard (into the focused field)."""
        kbd = self.page.locator("#kbd")
        kbd.wait_for(state="visible")
        for ch in text:
            if ch.isalpha() and (ch.islower() != (kbd.locator("[data-key='shift']").inner_text() == "ABC")):
                self.tap(kbd.locator("[data-key='shift']"))
            self.tap(kbd.locator(f"[data-key='{ch}']"))
        self.tap(kbd.locator("[data-key='done']"))

    def choose(self, name: str, value: str) -> None:
        """Tap the choice button (radio or checkbox) ``name=value``."""
        self.tap(self.page.locator(f"input[name='{name}'][value='{value}']"))

    def next(self, selector: str = "#next") -> None:
        """Tap the screen's main button and wait for the next page."""
        with self.page.expect_navigation():
            self.tap(selector)

    # ---------------------------------------------------------------- screens
    def sign_in(self, staff_id: str, pin: str) -> None:
        """From the roster: tap the name, the PIN on the pad, Sign in."""
        self.page.goto(self.base + "/")
        self.audit("signin")
        self.next(f"[data-staff='{staff_id}']")
        self.audit("pin")
        self.pad(pin)
        self.next("#signin")

    def details(self, p: PatientEntry) -> None:
        """New appointment, then patient, skin type, referral and consents screens."""
        self.audit("start")
        self.next("#new-appointment")
        self.patient(p)
        self.next()
        self.audit("skin")
        self.choose("fitzpatrick", p.fitzpatrick)
        self.next()
        self.referral(p)
        self.next()
        self.consents(p.consents)
        self.next()

    def patient(self, p: PatientEntry) -> None:
        """Type the NHS number and date of birth on the pad and tap the sex (the screen stays open)."""
        self.audit("patient")
        self.tap("#f-nhs_number")
        self.pad(p.nhs_number.replace(" ", ""))
        self.tap("#f-date_of_birth")
        self.pad(p.date_of_birth)
        self.choose("sex", p.sex)

    def referral(self, p: PatientEntry) -> None:
        """Reference (pad, or the letter keyboard for a local one), date, practice and route."""
        self.audit("referral")
        ref = p.reference.replace(" ", "")
        if ref.isdigit():
            self.tap("#f-reference")
            self.pad(ref)
        else:
            self.tap("#ref-mode")
            self.keyboard(ref)
        if p.referral_date:
            self.tap("#f-referral_date")
            self.pad(p.referral_date)
        else:
            self.tap("[data-today='f-referral_date']")
        quick = self.page.locator(f"input[name='practice_ods'][value='{p.practice_ods}']")
        if quick.count():
            self.tap(quick)
        else:
            self.tap("#f-practice_other")
            self.keyboard(p.practice_ods)
        if not self.page.locator(f"input[name='route'][value='{p.route}']").is_checked():
            self.choose("route", p.route)

    def consents(self, answers: tuple[bool, bool, bool]) -> None:
        """Yes or no to photography, AI analysis, teaching."""
        self.audit("consents")
        for name, yes in zip(("photography", "ai_analysis", "teaching"), answers):
            self.choose(name, "yes" if yes else "no")

    def add_lesion(self, lesion: LesionEntry) -> None:
        """From the lesions list: add a lesion on the body map, then its size and history (back to the list)."""
        if "/shoot/" in self.page.url:
            self.next("#to-lesions")
        self.audit("lesions")
        self.next("#add-lesion")
        self.audit("site")
        self.tap(f"svg[data-side='{lesion.side}'] .region[data-region='{lesion.region}']")
        if lesion.detail:
            self.tap(f".detail-chips:not([hidden]) [data-detail='{lesion.detail}']")
        if lesion.added_reason:
            self.choose("added_reason", lesion.added_reason)
        self.next()
        self.audit("about")
        if lesion.size_mm:
            self.tap("#f-size_mm")
            self.pad(lesion.size_mm)
        for item in lesion.history:
            self.choose(item, "yes")
        for item in lesion.checklist:
            self.choose(f"cl_{item}", "yes")
        self.next()

    def open_photos(self) -> int:
        """Go to the next lesion still to photograph (from the list, or from the last lesion's screen)."""
        if "/shoot/" in self.page.url:
            self.next("#next-lesion")
        else:
            self.audit("lesions_ready")
            self.next("#photograph")
        return int(re.search(r"/lesions/(\d+)/shoot/", self.page.url).group(1))

    def photograph(self, index: int, views=VIEWS, reason: str = "site-hard-to-reach") -> list[str]:
        """Take each view (the screen moves on by itself when a shot passes); a failed shot is sent with
        ``reason``. Returns the quality verdicts seen ("passed"/"failed")."""
        verdicts = []
        for view in views:
            if f"/lesions/{index}/shoot/{view}" not in self.page.url:
                self.tap(f"#tabs [data-view='{view}']")
                self.page.wait_for_url(f"**/lesions/{index}/shoot/{view}")
            if not verdicts:
                self.audit(f"capture_{view}")
            self.tap("#capture")                  # posted in place: the panel is busy until it is swapped
            self.page.wait_for_selector("#panel:not([aria-busy])", timeout=30_000)
            failed = self.page.locator(f"#tabs [data-view='{view}'].done").count() == 0
            verdicts.append("failed" if failed else "passed")
            if failed:
                self.audit(f"failed_{view}")
                self.tap("#override summary")
                self.tap(f"#override button[value='{reason}']")
                self.page.wait_for_selector(f"#tabs [data-view='{view}'].done", timeout=30_000)
        self.audit("lesion_done")
        return verdicts

    def review_and_submit(self) -> str:
        """Review grid -> submit; returns the text of the screen that follows."""
        if "/review" not in self.page.url:
            self.next("#review")
        self.audit("review")
        self.next("#submit")
        self.audit("after_submit")
        return self.page.locator("main").inner_text()

    def referral_walk(self, staff_id: str, pin: str, patient: PatientEntry, lesions: list[LesionEntry],
                      views=VIEWS) -> dict:
        """Sign in and walk a whole referral to its submit: every lesion first, then their photographs.

        Returns ``per_lesion`` (taps to add and photograph each lesion), ``submit_taps`` and ``final``
        (the text of the screen after submit)."""
        self.sign_in(staff_id, pin)
        self.details(patient)
        per_lesion = []
        for lesion in lesions:
            start = self.taps
            self.add_lesion(lesion)
            per_lesion.append(self.taps - start)
        for i in range(len(lesions)):
            start = self.taps
            index = self.open_photos()
            self.photograph(index, views)
            per_lesion[i] += self.taps - start
        start = self.taps
        text = self.review_and_submit()
        return {"per_lesion": per_lesion, "submit_taps": self.taps - start, "final": text}

    def failures(self) -> dict:
        """Screens with targets under 44 px, or whose main action is below the fold."""
        return {"small": {s.name: s.small for s in self.screens if s.small},
                "below": [s.name for s in self.screens if s.below]}
