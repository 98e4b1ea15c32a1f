"""Referral outcomes at the kiosk: what the centre decided, and the re-image tasks for the hub's staff.

Two kinds of sealed file under ``<data_dir>/outcomes/`` (AES-256-GCM with the outbox's at-rest key,
bound to their name by the associated data, written to a temp file, fsynced, renamed, folder
fsynced: :mod:`edge.atrest`, :mod:`wire.durable`):

``sent-<referral_id>``
    written at submit (:meth:`OutcomeStore.record_sent`): what the hub needs to recall the patient
    (NHS number, date of birth, the referral's reference) and each lesion's case id, label and site.
    The outcome message carries none of it; this record is how the kiosk knows who a task is for.
``outcome-<referral_id>-<outcome_id>``
    an :class:`wire.outcome.Outcome` received from the centre (:meth:`OutcomeStore.receive`, on the
    link's thread before the broker is acknowledged, so a message is on disk before the broker lets it
    go). The same message twice is kept once.
``done-<referral_id>-<label>``
    a re-image task marked done (who, when).

Names hold the kiosk's own referral UUID, an outcome UUID and a lesion label, never a patient
identifier; so do the log lines. Records older than ``keep_days`` with no open task are removed.
"""

from __future__ import annotations

import json
import logging
import os
import re
import secrets
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from pydantic import ValidationError

from wire.durable import fsync_dir, write_new
from wire.outcome import REIMAGE, LesionOutcome, Outcome, parse_outcome

from .atrest import SealedDataError, Sealer

log = logging.getLogger("edge.outcomes")

#: What the task screen says of a referral's state, by the outbox states of its cases.
STATUS_TEXT = {
    "sending": "Waiting to be sent to the centre",
    "at-centre": "At the centre, waiting to be read",
    "reported": "Read: outcome received",
    "reimage": "Read: new photographs needed",
    "not-sent": "Not sent: call IT",
}
_NAME = re.compile(r"^(sent|outcome|done)-([0-9a-f-]{36})(?:-([0-9a-zA-Z-]+))?$")


@dataclass
class SentLesion:
    """One lesion of a referral this kiosk sent."""

    case_id: str
    label: str
    where: str


@dataclass
class SentReferral:
    """What the kiosk keeps of a referral it sent, to recall the patient (sealed on disk)."""

    referral_id: str
    reference: str
    nhs_number: str
    date_of_birth: str
    submitted_at: str
    photographer: str
    lesions: list[SentLesion] = field(default_factory=list)


@dataclass
class Task:
    """A lesion to photograph again: the reader's reason and who the patient is (signed-in staff only)."""

    referral_id: str
    label: str
    where: str
    reason: str
    signed_by: str
    signed_at: datetime
    sent: SentReferral | None


@dataclass
class ReferralState:
    """One referral on the task screen: its status and, once read, each lesion's outcome."""

    referral_id: str
    status: str
    submitted_at: str
    sent: SentReferral | None
    outcome: Outcome | None
    open_tasks: int = 0

    @property
    def status_text(self) -> str:
        """The status in words."""
        return STATUS_TEXT[self.status]


class OutcomeStore:
    """The sealed outcome files of one kiosk (thread-safe: the link thread writes, the page reads)."""

    def __init__(self, data_dir: Path | str, sealer: Sealer, device_id: str, keep_days: float = 90.0):
        """Keep the files in ``<data_dir>/outcomes``; accept only outcomes addressed to ``device_id``."""
        self.root = Path(data_dir) / "outcomes"
        self.root.mkdir(parents=True, exist_ok=True)
        self.sealer = sealer
        self.device_id = device_id
        self.keep_s = keep_days * 86400
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ files
    def _write(self, name: str, data: bytes) -> None:
        tmp = self.root / f".{name}.{secrets.token_hex(4)}.tmp"
        try:
            write_new(tmp, self.sealer.seal(data, name.encode()), 0o600)
            os.replace(tmp, self.root / name)
            fsync_dir(self.root)
        finally:
            tmp.unlink(missing_ok=True)

    def _read(self, name: str) -> bytes | None:
        try:
            return self.sealer.open((self.root / name).read_bytes(), name.encode())
        except FileNotFoundError:
            return None
        except SealedDataError:
            log.error("outcome file %s does not open (altered, or another key): ignored", name)
            return None

    def _names(self) -> list[tuple[str, str, str | None, Path]]:
        out = []
        for path in self.root.iterdir():
            m = _NAME.match(path.name)
            if m:
                out.append((m.group(1), m.group(2), m.group(3), path))
        return out

    # ------------------------------------------------------------------ writing
    def record_sent(self, referral_id, reference: str, nhs_number: str, date_of_birth: str, photographer: str,
                    lesions: list[SentLesion]) -> None:
        """Keep what the hub needs to recall the patient of a referral just sent (sealed)."""
        rid = str(uuid.UUID(str(referral_id)))
        record = SentReferral(rid, reference, nhs_number, date_of_birth, datetime.now(timezone.utc).isoformat(),
                              photographer, lesions)
        with self._lock:
            self._write(f"sent-{rid}", json.dumps(record, default=lambda o: o.__dict__).encode())

    def receive(self, payload: bytes) -> Outcome | None:
        """Store an outcome message from the centre (the link's handler); None when it is refused (logged)."""
        try:
            outcome = parse_outcome(payload)
        except ValidationError as exc:
            log.warning("ignoring an invalid outcome message: %s", exc.errors()[0].get("msg"))
            return None
        if outcome.device_id != self.device_id:
            log.warning("ignoring outcome %s addressed to another kiosk", outcome.outcome_id)
            return None
        name = f"outcome-{outcome.referral_id}-{outcome.outcome_id}"
        with self._lock:
            if not (self.root / name).exists():
                self._write(name, outcome.model_dump_json().encode())
        log.info("outcome %s for referral %s received: %d lesion(s), %d to re-image", outcome.outcome_id,
                 outcome.referral_id, len(outcome.lesions), len(outcome.reimage))
        return outcome

    def complete(self, referral_id: str, label: str, staff_id: str) -> None:
        """Mark the re-image task of one lesion done (by ``staff_id``); ValueError if there is no such task."""
        rid = str(uuid.UUID(str(referral_id)))
        if not any(t.referral_id == rid and t.label == label for t in self.tasks()):
            raise ValueError("This task is not open any more.")
        with self._lock:
            self._write(f"done-{rid}-{label}", json.dumps(
                {"by": staff_id, "at": datetime.now(timezone.utc).isoformat()}).encode())
        log.info("re-image task of referral %s lesion %s done", rid, label)

    def close_referral_tasks(self, referral_id: str, staff_id: str) -> list[str]:
        """Mark every open re-image task of a referral done (its lesions were photographed again and sent);
        returns their labels."""
        labels = [t.label for t in self.tasks() if t.referral_id == str(referral_id)]
        for label in labels:
            self.complete(referral_id, label, staff_id)
        return labels

    def open_reimage_referral(self, reference: str, nhs_number: str) -> str | None:
        """The referral UUID of an open re-image task whose patient and reference are these, or None."""
        for t in self.tasks():
            if t.sent is not None and t.sent.reference == reference and t.sent.nhs_number == nhs_number:
                return t.referral_id
        return None

    # ------------------------------------------------------------------ reading
    def _load(self) -> tuple[dict[str, SentReferral], dict[str, Outcome], set[tuple[str, str]]]:
        sent: dict[str, SentReferral] = {}
        outcomes: dict[str, Outcome] = {}
        done: set[tuple[str, str]] = set()
        for kind, rid, extra, path in self._names():
            raw = self._read(path.name)
            if raw is None:
                continue
            if kind == "sent":
                d = json.loads(raw)
                d["lesions"] = [SentLesion(**les) for les in d["lesions"]]
                sent[rid] = SentReferral(**d)
            elif kind == "outcome":
                o = Outcome.model_validate_json(raw)
                if rid not in outcomes or o.signed_at >= outcomes[rid].signed_at:
                    outcomes[rid] = o          # an amended outcome replaces the earlier one
            else:
                done.add((rid, extra or ""))
        return sent, outcomes, done

    def tasks(self) -> list[Task]:
        """Open re-image tasks, oldest outcome first."""
        sent, outcomes, done = self._load()
        out = []
        for rid, o in outcomes.items():
            record = sent.get(rid)
            where = {les.label: les.where for les in record.lesions} if record else {}
            for les in o.reimage:
                if (rid, les.label) not in done:
                    out.append(Task(rid, les.label, where.get(les.label, ""), les.reason, o.signed_by,
                                    o.signed_at, record))
        return sorted(out, key=lambda t: (t.signed_at, t.label))

    def task_count(self) -> int:
        """How many re-image tasks are open (shown before sign-in: a number, nothing about a patient)."""
        return len(self.tasks())

    def referrals(self, case_state) -> list[ReferralState]:
        """Every referral sent from here (newest first) with its status; ``case_state(case_id)`` is the
        outbox's state of a case (None when unknown)."""
        sent, outcomes, done = self._load()
        out = []
        for rid in set(sent) | set(outcomes):
            record, outcome = sent.get(rid), outcomes.get(rid)
            open_tasks = sum(1 for les in (outcome.reimage if outcome else []) if (rid, les.label) not in done)
            if outcome is not None:
                status = "reimage" if open_tasks else "reported"
            else:
                states = {case_state(les.case_id) for les in record.lesions}
                status = "not-sent" if "rejected" in states else \
                    "sending" if states & {"captured", "queued", "sent"} else "at-centre"
            out.append(ReferralState(rid, status, record.submitted_at if record else outcome.signed_at.isoformat(),
                                     record, outcome, open_tasks))
        return sorted(out, key=lambda r: r.submitted_at, reverse=True)

    def purge(self, now: float | None = None) -> int:
        """Remove the files of referrals older than ``keep_days`` that have no open task; returns how many."""
        now = time.time() if now is None else now
        open_ids = {t.referral_id for t in self.tasks()}
        removed = 0
        for _, rid, _, path in self._names():
            if rid not in open_ids and now - path.stat().st_mtime > self.keep_s:
                path.unlink(missing_ok=True)
                removed += 1
        return removed


def lesion_text(les: LesionOutcome) -> str:
    """A lesion's outcome as the task screen says it."""
    return les.management_text + (f": {les.reason}" if les.management == REIMAGE else "")
