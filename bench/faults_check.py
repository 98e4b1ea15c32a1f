"""The fault suite's verdict (bench/faults.py): every case the kiosk committed is at the centre exactly
once (by case id and by the kiosk's seq), with the same image hashes, and each image file hashes to
its name; every lesion the page confirmed is one of those cases."""

from __future__ import annotations

import hashlib
import sqlite3
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Tally:
    """What the suite found."""

    captured: int = 0
    delivered: int = 0
    lost: int = 0
    duplicated: int = 0
    problems: list[str] = field(default_factory=list)
    faults: Counter = field(default_factory=Counter)
    points: Counter = field(default_factory=Counter)
    outcomes: Counter = field(default_factory=Counter)
    confirmed: int = 0
    unconfirmed_committed: int = 0

    def line(self) -> str:
        """The one-line verdict."""
        return f"captured={self.captured} delivered={self.delivered} lost={self.lost} duplicated={self.duplicated}"


def outbox_cases(kiosk_data: Path) -> dict[str, tuple[int, str, list[str]]]:
    """Every case the kiosk ever committed: case_id -> (seq, state, [sha256 by position])."""
    db = sqlite3.connect(f"file:{kiosk_data / 'outbox.sqlite3'}?mode=ro", uri=True, timeout=30)
    try:
        out = {cid: (seq, state, []) for cid, seq, state in db.execute("SELECT case_id, seq, state FROM cases")}
        for cid, sha in db.execute("SELECT case_id, sha256 FROM images ORDER BY case_id, idx"):
            out[cid][2].append(sha)
    finally:
        db.close()
    return out


def check_cases(tally: Tally, kiosk_data: Path, centre: Path, capture_log: list[tuple[str, ...]],
                device: str) -> None:
    """Compare every case the kiosk (data in ``kiosk_data``) committed with the centre's database and
    images in ``centre``, and ``capture_log`` (the view hashes of every lesion the page confirmed);
    fills ``tally``'s captured/delivered/lost/duplicated and problems."""
    kiosk = outbox_cases(kiosk_data)
    by_shas = {tuple(shas): cid for cid, (_, _, shas) in kiosk.items()}
    db = sqlite3.connect(f"file:{centre / 'centre.db'}?mode=ro", uri=True, timeout=30)
    try:
        rows = Counter(cid for (cid,) in db.execute("SELECT case_id FROM cases"))
        seqs = Counter(seq for (seq,) in db.execute("SELECT seq FROM cases WHERE device = ?", (device,)))
        centre_shas: dict[str, list[str]] = {}
        for cid, sha in db.execute("SELECT case_id, sha256 FROM case_images ORDER BY case_id, position"):
            centre_shas.setdefault(cid, []).append(sha)
    finally:
        db.close()
    images_dir = centre / "images"
    problems: list[str] = []
    confirmed = set(capture_log)
    for shas in capture_log:                   # every confirmed lesion is a case in the outbox, same images
        if shas not in by_shas:
            problems.append(f"a lesion confirmed on the page (images {shas[0][:12]}...) is not in the kiosk outbox")
    delivered = 0
    for cid, (seq, state, shas) in kiosk.items():
        if rows.get(cid, 0) == 0:
            problems.append(f"case {cid} (seq {seq}, kiosk state {state}) missing at the centre")
            continue
        if centre_shas.get(cid) != shas:
            problems.append(f"case {cid}: image hashes differ at the centre")
            continue
        bad = [s for s in shas if hashlib.sha256((images_dir / s[:2] / f"{s}.jpg").read_bytes()).hexdigest() != s]
        if bad:
            problems.append(f"case {cid}: image file {bad[0][:12]} does not match its hash")
            continue
        delivered += 1
    duplicated = sum(c - 1 for c in rows.values() if c > 1) + sum(c - 1 for c in seqs.values() if c > 1)
    unknown = set(rows) - set(kiosk)
    if unknown:
        problems.append(f"{len(unknown)} case(s) at the centre that the kiosk never committed")
    tally.captured = len(kiosk)
    tally.delivered = delivered
    tally.lost = len(kiosk) - delivered + sum(1 for s in confirmed if s not in by_shas)
    tally.duplicated = duplicated + len(unknown) + len(capture_log) - len(confirmed)
    tally.unconfirmed_committed = len(set(by_shas) - confirmed)
    tally.problems = problems
