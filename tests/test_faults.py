"""Fault suite, short: a handful of trials of bench/faults.py with real processes and real faults.

The kiosk (``python -m edge run``) and the ingest (``python -m dashboard ingest``) run as
processes over Mosquitto with the repository's TLS configuration; each trial photographs a
referral of 1-3 lesions through the kiosk pages and kills the kiosk, the ingest or the broker at a random point.
``make bench-faults`` runs 200 trials. The checker itself is shown to catch a lost and a
doubled case by altering the centre's database afterwards.
"""

from __future__ import annotations

import sqlite3
import uuid

import pytest

from bench.faults import DEVICE, FAULTS, MODEL_DIR, NHS_NUMBER, FaultSuite

pytestmark = pytest.mark.skipif(not (MODEL_DIR / "manifest.json").exists(), reason="no model in models/lesion")


def test_every_fault_kind_loses_and_doubles_nothing(tmp_path):
    suite = FaultSuite(tmp_path / "faults", tls=True, seed=5, log=print)
    try:
        suite.start()
        tally = suite.run(0)
        for fault in FAULTS:                         # each kind of fault at least once, at random points
            original = suite.rng.choice
            suite.rng.choice = lambda seq, f=fault: f if seq is FAULTS else original(seq)
            suite.trial(0, tally)
            suite.trial(0, tally)
            suite.rng.choice = original
        for i in range(4):
            suite.trial(i, tally)
        suite.check(tally)
    finally:
        suite.close()
    assert tally.problems == []
    assert tally.captured >= 10 and tally.confirmed >= 8
    assert tally.lost == 0 and tally.duplicated == 0 and tally.delivered == tally.captured
    assert set(tally.faults) == set(FAULTS)
    # the patient's NHS number and the referral references never reach a log or a file name
    logs = "".join(p.read_text(errors="replace") for p in (tmp_path / "faults").glob("*.log"))
    names = " ".join(str(p) for p in (tmp_path / "faults").rglob("*"))
    assert (tmp_path / "faults" / "kiosk.log").stat().st_size > 0
    for needle in (NHS_NUMBER, "FAULT-0"):
        assert needle not in logs and needle not in names

    # the checker is not blind: a case removed from the centre is lost, a second row for a seq doubled
    db = sqlite3.connect(suite.centre / "centre.db")
    with db:
        victim, seq = db.execute("SELECT case_id, seq FROM cases ORDER BY seq LIMIT 1").fetchone()
        columns = [r[1] for r in db.execute("PRAGMA table_info(cases)") if r[1] != "case_id"]
        db.execute(f"INSERT INTO cases (case_id, {', '.join(columns)}) SELECT ?, {', '.join(columns)} FROM cases"
                   " WHERE case_id = ?", (str(uuid.uuid4()), victim))
        other = db.execute("SELECT case_id FROM cases WHERE seq != ? AND device = ? LIMIT 1", (seq, DEVICE)).fetchone()[0]
        db.execute("DELETE FROM case_images WHERE case_id = ?", (other,))
        db.execute("DELETE FROM cases WHERE case_id = ?", (other,))
    db.close()
    suite.check(tally)
    assert tally.lost == 1 and tally.duplicated >= 1
