"""Kiosk page by touch: taps per lesion, keystrokes, small targets and screens to scroll (issue 19).

    .venv/bin/python -m bench.kiosk_taps [--size 800x480] [--shots DIR]

Starts the real kiosk service (replay camera, quality gate, the shipped model, the outbox; no
broker link) with its page on a free loopback port, and drives Debian's Chromium through
Playwright with touch emulation (``has_touch``, ``tap()``) through one two-lesion referral with
three views each, from sign-in to submit (tests/kiosk_walk.py: every interaction is a tap on an
on-screen control; key presses reaching the page are counted by a listener in the page).

Figures:
* ``taps_per_lesion``: taps after the appointment's details for one lesion with three views
  (add it on the body map, save, open its photographs, one tap per view), the larger of the two;
* ``keystrokes``: key presses the page received during the whole walk;
* ``targets_under_44px``: controls under 44x44 px on every screen visited (summed over screens);
* ``scroll_to_act``: screens whose main action (``[data-main]``) is below the fold.

Goal: taps_per_lesion <= 12, keystrokes = 0, targets_under_44px = 0, scroll_to_act = 0.
The last line printed is exactly ``taps_per_lesion=N keystrokes=K targets_under_44px=M scroll_to_act=S``.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from edge.service import KioskService  # noqa: E402
from edge.web import WebServer  # noqa: E402
from tests.appointment_kit import PHOTOGRAPHER, PIN, appointment_config, synthetic_nhs_number  # noqa: E402
from tests.kiosk_walk import KioskWalk, LesionEntry, PatientEntry  # noqa: E402
from tests.web import CHROMIUM, CHROMIUM_ARGS  # noqa: E402

PRACTICES = [{"ods": "A81001", "name": "Riverside Surgery"}, {"ods": "B82005", "name": "Hill Street Practice"}]


def main(argv=None) -> int:
    """Walk one two-lesion referral at the kiosk page by touch and print the figures."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", default="800x480", help="panel size WxH (default 800x480)")
    ap.add_argument("--shots", type=Path, default=None, help="save a screenshot of each screen here")
    args = ap.parse_args(argv)
    width, height = (int(v) for v in args.size.split("x"))
    logging.getLogger("werkzeug").setLevel(logging.WARNING)      # no request log lines in the figures

    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory(prefix="kiosk-taps-") as tmp:
        cfg = appointment_config(Path(tmp), appointment={"practices": PRACTICES})
        with KioskService(cfg, with_link=False) as svc:
            server = WebServer(svc, port=0).start()
            try:
                with sync_playwright() as p:
                    browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                    try:
                        page = browser.new_context(viewport={"width": width, "height": height},
                                                   has_touch=True).new_page()
                        walk = KioskWalk(page, server.url, shots_dir=args.shots, tag=f"bench_{args.size}")
                        t0 = time.monotonic()
                        result = walk.referral_walk(
                            PHOTOGRAPHER, PIN, PatientEntry(nhs_number=synthetic_nhs_number(7)),
                            [LesionEntry("front", "arm-left"), LesionEntry("back", "torso")])
                        seconds = time.monotonic() - t0
                    finally:
                        browser.close()
            finally:
                server.stop()
            cases = svc.outbox.queue_depth()

    small = sum(len(s.small) for s in walk.screens)
    below = sum(1 for s in walk.screens if s.below)
    print(f"panel {args.size}, touch; {len(walk.screens)} screens visited; {walk.taps} taps in all, "
          f"{seconds:.1f} s; {cases} cases in the outbox")
    print(f"taps per lesion (add + photograph, three views): {result['per_lesion']}; "
          f"review and submit: {result['submit_taps']} taps")
    for s in walk.screens:
        if s.small or s.below:
            print(f"  {s.name} {s.url}: small targets {s.small}; main action below the fold: {s.below}")
    ok = "Referral saved" in result["final"] and cases == 2
    if not ok:
        print("the referral was NOT saved: " + result["final"][:200], file=sys.stderr)
    print(f"taps_per_lesion={max(result['per_lesion'])} keystrokes={walk.keystrokes} "
          f"targets_under_44px={small} scroll_to_act={below}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
