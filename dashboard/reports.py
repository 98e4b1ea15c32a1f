"""The dermatologist's report on each lesion of a referral: signing, second reads, addenda, the sign-off hook.

A report is **signed on submit** (reader and the centre's clock) and never
edited afterwards (SQLite triggers refuse it): what follows is an addendum. A
report names a diagnosis from the ISIC diagnosis hierarchy (``isic-metadata``),
a management and free text.

Second reads, by the rules of the ``[reading]`` configuration
(:class:`dashboard.readingconfig.ReadingConfig`): a cancer-tier lesion the first
reader discharges; a first read in another tier than the classifier's; a
discharge of a patient with skin type V-VI; and a random audit share. The
second reader does not see the first read until theirs is signed; if the two
disagree (management, or malignant / indeterminate / benign), a third read by
the named lead (or, without one, by any third dermatologist) settles it.

Every signature raises the referral key's version in the same transaction
(:func:`dashboard.store.reports.bump_version`): a form built on an older
version (two readers at once, a replayed form) is refused and changes
nothing. Before anything is written the reader must hold the referral's claim
(:func:`dashboard.claims.require_claim`). When a referral's reading becomes
final, the view runs the sign-off listeners (:mod:`dashboard.readhooks`: letters, the outcome to
the hub, the PACS); an addendum after that runs the amendment listeners (the GP letter made again).
"""

from __future__ import annotations

import functools
import logging
import random
import sqlite3
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone

from isic_metadata.diagnosis_hierarchical import DiagnosisEnum
from markupsafe import Markup, escape

from wire import outcome
from wire.referral import UNVALIDATED_SKIN_TYPES

from . import claims
from .readingconfig import ReadingConfig
from .store import reports as table
from .store import summary
from .store.schema import transaction

log = logging.getLogger(__name__)

#: Management codes and wording: the wire contract's, so the outcome sent to the hub cannot drift from them.
MANAGEMENT = outcome.MANAGEMENT
#: The re-image reason travels to the hub's kiosk: at most this long, no patient identifier.
MAX_REASON = 500
KINDS = {"first": "First read", "second": "Second read", "third": "Third read"}
STATES = {"to-read": "To read", "second-read": "Second read needed", "third-read": "Third read needed",
          "signed": "Signed", "waiting": "Waiting for lesions"}
#: The classifier's tier a reader's diagnosis falls in (by the hierarchy's first level).
TIER_OF_DIAGNOSIS = {"Malignant": "cancer", "Indeterminate": "pre-cancer", "Benign": "benign"}
DIAGNOSES = frozenset(d.value for d in DiagnosisEnum)
MAX_TEXT = 4000


class ReportError(ValueError):
    """A report or addendum was refused; ``str()`` says why, for a person. Nothing was written."""


class ClaimRefused(ReportError):
    """The reader does not hold the referral's claim (another reader does, or theirs ran out): nothing written."""


class StaleForm(ReportError):
    """The form was made before someone else signed on this referral (or it was sent before): nothing written."""


@dataclass(frozen=True)
class Signed:
    """What :func:`sign` did: the report's id and kind, why a second read is needed (None: not), and whether the
    referral's reading became final with it."""

    report_id: int
    kind: str
    second_read: str | None
    completed: bool


@functools.cache
def diagnosis_groups() -> list[tuple[str, list[tuple[str, str]]]]:
    """The ISIC hierarchy for a ``<select>``: ``(group label, [(value, label), ...])`` by its first two levels."""
    groups: dict[str, list[tuple[str, str]]] = {}
    for d in DiagnosisEnum:
        levels = d.value.split(":")
        group = " › ".join(levels[:2])
        label = " › ".join(levels[2:]) if len(levels) > 2 else f"{levels[-1]} (unspecified)"
        groups.setdefault(group, []).append((d.value, label))
    return list(groups.items())


@functools.cache
def _options_html() -> str:
    return "".join(f'<optgroup label="{escape(group)}">'
                   + "".join(f'<option value="{escape(v)}">{escape(label)}</option>' for v, label in options)
                   + "</optgroup>" for group, options in diagnosis_groups())


def diagnosis_options(selected: str | None = None) -> Markup:
    """The ``<optgroup>``/``<option>`` elements of the hierarchy (built once: 418 options), ``selected`` marked."""
    html = _options_html()
    if selected and selected in DIAGNOSES:
        mark = f'value="{escape(selected)}"'
        html = html.replace(mark + ">", mark + " selected>", 1)
    return Markup(html)


def diagnosis_name(value: str) -> str:
    """A diagnosis as a person reads it: its levels joined by ``›``."""
    return " › ".join(value.split(":"))


def diagnosis_tier(value: str) -> str:
    """The classifier tier of a diagnosis (``cancer`` / ``pre-cancer`` / ``benign``)."""
    return TIER_OF_DIAGNOSIS[value.split(":")[0]]


def settings_of(config) -> ReadingConfig:
    """The reading settings from the app's ``READING`` config value (defaults when unset)."""
    return config if isinstance(config, ReadingConfig) else ReadingConfig.model_validate(config or {})


# --- states -----------------------------------------------------------------------------------------------

def reads_by_case(reports: list[dict]) -> dict[str, dict[str, dict]]:
    """``{case_id: {kind: report}}`` from :func:`dashboard.store.reports.reports_for` rows."""
    out: dict[str, dict[str, dict]] = {}
    for r in reports:
        out.setdefault(r["case_id"], {})[r["kind"]] = r
    return out


def lesion_state(reads: dict[str, dict]) -> str:
    """``to-read``, ``second-read``, ``third-read`` or ``signed`` from one lesion's signed reads."""
    first, second = reads.get("first"), reads.get("second")
    if first is None:
        return "to-read"
    if first["second_read"] and second is None:
        return "second-read"
    if second is not None and not second["agrees"] and "third" not in reads:
        return "third-read"
    return "signed"


def final_read(reads: dict[str, dict]) -> dict | None:
    """The read that stands for a signed lesion: the third if there is one, else the first (None if not final)."""
    if lesion_state(reads) != "signed":
        return None
    return reads.get("third") or reads["first"]


def next_kind(reads: dict[str, dict], user: str, settings: ReadingConfig) -> str:
    """The read ``user`` may sign now on this lesion; ``ReportError`` says why none."""
    state = lesion_state(reads)
    if state == "to-read":
        return "first"
    if state == "second-read":
        if reads["first"]["reader"] == user:
            raise ReportError("You signed the first read of this lesion: its second read must be another "
                              "dermatologist's.")
        return "second"
    if state == "third-read":
        readers = {reads["first"]["reader"], reads["second"]["reader"]}
        if settings.lead and user != settings.lead:
            raise ReportError(f"The first and second reads disagree: the lead, {settings.lead}, settles it.")
        if user in readers:
            raise ReportError("The first and second reads disagree: a third dermatologist settles it.")
        return "third"
    raise ReportError("This lesion's report is signed and cannot be changed: add an addendum instead.")


def blind_to_first(reads: dict[str, dict], user: str) -> bool:
    """Whether ``user`` must not yet see the first read: a second read is due and ``user`` did not sign the first."""
    return lesion_state(reads) == "second-read" and reads["first"]["reader"] != user


def visible_reads(reads: dict[str, dict], user: str) -> list[dict]:
    """The signed reads ``user`` may see now, in order (none while they owe a blind second read)."""
    if blind_to_first(reads, user):
        return []
    return [reads[k] for k in KINDS if k in reads]


def second_read_reasons(case: dict, fitzpatrick: str | None, diagnosis: str, management: str,
                        settings: ReadingConfig, rng: random.Random | None = None) -> list[str]:
    """Why a first read needs a second (empty: it does not)."""
    reasons = []
    if settings.second_read_cancer_discharge and case.get("risk") == "cancer" and management == "discharge":
        reasons.append("cancer-tier lesion discharged")
    if settings.second_read_tier_disagreement and case.get("risk") and diagnosis_tier(diagnosis) != case["risk"]:
        reasons.append(f"reader's tier ({diagnosis_tier(diagnosis)}) differs from the classifier's ({case['risk']})")
    if settings.second_read_skin_type_discharge and fitzpatrick in UNVALIDATED_SKIN_TYPES and management == "discharge":
        reasons.append(f"discharge of skin type {fitzpatrick}")
    if not reasons and settings.audit_share > 0 and (rng or random.SystemRandom()).random() < settings.audit_share:
        reasons.append("random audit")
    return reasons


def agrees(first: dict, diagnosis: str, management: str) -> bool:
    """Whether a second read agrees with the first: the same management and the same top level of diagnosis."""
    return first["management"] == management and diagnosis_tier(first["diagnosis"]) == diagnosis_tier(diagnosis)


def referral_states(conn: sqlite3.Connection, key: str, case_ids: list[str], expected: int) -> dict:
    """Per lesion its state, and the referral's: ``waiting`` (lesions missing), else its least advanced lesion's."""
    reads = reads_by_case(table.reports_for(conn, key))
    lesions = {cid: lesion_state(reads.get(cid, {})) for cid in case_ids}
    order = ("to-read", "second-read", "third-read", "signed")
    status = min(lesions.values(), key=order.index) if lesions else "to-read"
    if status == "signed" and len(case_ids) < expected:
        status = "waiting"
    return {"lesions": lesions, "status": status}


def worklist_status(reads: dict[str, dict[str, dict]], case_ids: list[str], final: bool,
                    settings: ReadingConfig) -> tuple[str, str | None]:
    """The worklist's status for a referral (:data:`dashboard.store.summary.STATUSES`) and whom it waits for."""
    if final:
        finals = [final_read(reads.get(c, {})) for c in case_ids]
        return ("re-image" if any(f["management"] == outcome.REIMAGE for f in finals) else "reported"), None
    states = [lesion_state(reads.get(c, {})) for c in case_ids]
    for state in ("to-read", "second-read", "third-read"):
        if state in states:
            return state, (settings.lead if state == "third-read" else None)
    return "to-read", None  # every stored lesion signed, the others not yet received


# --- writes -------------------------------------------------------------------------------------------------

def _now(now: datetime | None) -> str:
    return (now or datetime.now(timezone.utc)).isoformat()


def _require_claim(conn: sqlite3.Connection, key: str, user: str) -> None:
    try:
        claims.require_claim(key, user, conn=conn)
    except claims.ClaimError as exc:
        raise ClaimRefused(str(exc)) from exc


def _form_version(form_version) -> int:
    try:
        return int(form_version)
    except (TypeError, ValueError):
        raise StaleForm("The form has no valid version: reload the referral and sign again.") from None


@contextmanager
def _new_version(conn: sqlite3.Connection, key: str, user: str, expected_version: int, at: datetime):
    """``user``'s claim checked, then one transaction in which the referral's form version moves on from
    ``expected_version`` (StaleForm for a stale or replayed form); what the caller writes joins it."""
    _require_claim(conn, key, user)
    with transaction(conn):
        try:
            table.bump_version(conn, key, expected_version, at)
        except table.StaleVersion:
            raise StaleForm(_stale_message(conn, key)) from None
        yield


def _stale_message(conn: sqlite3.Connection, key: str) -> str:
    rows = table.reports_for(conn, key)
    if rows:
        last = rows[-1]
        return (f"Not signed: this referral changed after you opened it ({last['reader']} signed a report at "
                f"{last['signed_at'][:19].replace('T', ' ')} UTC), or this form was already sent. Nothing was "
                "overwritten: read the referral as it is now and sign again if still needed.")
    return "Not signed: this form is out of date or was already sent. Reload the referral and sign again."


def sign(conn: sqlite3.Connection, key: str, case: dict, expected_lesions: int, user: str, form_version,
         diagnosis: str, management: str, text: str, settings: ReadingConfig, *, fitzpatrick: str | None = None,
         case_ids: list[str] | None = None, now: datetime | None = None, rng: random.Random | None = None) -> Signed:
    """Sign ``user``'s report on one lesion (``case``, a stored case dict) of referral ``key``.

    ``form_version`` is the referral's version the form was built on; ``case_ids`` all the referral's stored
    lesions (for whether the reading became final). Raises :class:`ReportError` (or :class:`StaleForm`) with a
    message for the reader; then nothing was written.
    """
    diagnosis = (diagnosis or "").strip()
    text = (text or "").strip()
    if not diagnosis:
        raise ReportError("Choose a diagnosis: the report is not signed without one.")
    if diagnosis not in DIAGNOSES:
        raise ReportError("The diagnosis is not one of the ISIC diagnosis hierarchy's: choose it from the list.")
    if management not in MANAGEMENT:
        raise ReportError("Choose the management: " + ", ".join(MANAGEMENT.values()).lower() + ".")
    if len(text) > MAX_TEXT:
        raise ReportError(f"The free text is longer than {MAX_TEXT} characters ({len(text)}).")
    if management == outcome.REIMAGE:
        if not text:
            raise ReportError("Say why the lesion must be re-imaged: the hub's photographer sees your reason.")
        if len(text) > MAX_REASON:
            raise ReportError(f"The reason for re-imaging goes to the hub: at most {MAX_REASON} characters "
                              f"({len(text)}).")
        try:
            outcome.refuse_identifiers(text, "The reason for re-imaging")
        except ValueError as exc:
            raise ReportError(f"{exc}: it is sent to the hub's kiosk. Remove it.") from None
    expected_version = _form_version(form_version)
    at = _now(now)
    with _new_version(conn, key, user, expected_version, at):
        reads = reads_by_case(table.reports_for(conn, key))
        mine = reads.get(case["case_id"], {})
        kind = next_kind(mine, user, settings)
        row = {"referral_key": key, "case_id": case["case_id"], "kind": kind, "reader": user, "diagnosis": diagnosis,
               "management": management, "text": text, "signed_at": at}
        reasons = []
        if kind == "first":
            reasons = second_read_reasons(case, fitzpatrick, diagnosis, management, settings, rng)
            row["second_read"] = "; ".join(reasons) or None
        elif kind == "second":
            row["agrees"] = int(agrees(mine["first"], diagnosis, management))
        report_id = table.insert_report(conn, row)
        reads.setdefault(case["case_id"], {})[kind] = dict(row, id=report_id)
        ids = case_ids or [case["case_id"]]
        final = len(ids) >= expected_lesions and all(lesion_state(reads.get(c, {})) == "signed" for c in ids)
        completed = final and table.mark_completed(conn, key, at)
        status, assigned = worklist_status(reads, ids, final, settings)
        summary.set_status(conn, key, status, assigned_to=assigned, at=now)
    return Signed(report_id, kind, row.get("second_read"), completed)


def add_addendum(conn: sqlite3.Connection, key: str, case_id: str, user: str, form_version, text: str,
                 now: datetime | None = None) -> int:
    """Add ``user``'s addendum to the lesion's latest signed report that they may see; return its id.

    Refused (``ReportError``) for a lesion with no signed report, while ``user`` owes a blind second read,
    without the claim, for an empty or too long text, or on a stale or replayed form.
    """
    text = (text or "").strip()
    if not text:
        raise ReportError("Write the addendum's text.")
    if len(text) > MAX_TEXT:
        raise ReportError(f"The addendum is longer than {MAX_TEXT} characters ({len(text)}).")
    expected_version = _form_version(form_version)
    reads = reads_by_case(table.reports_for(conn, key)).get(case_id, {})
    if not reads:
        raise ReportError("This lesion has no signed report yet: an addendum only follows a signed report. "
                          "Sign the report first.")
    if blind_to_first(reads, user):
        raise ReportError("Sign your own (second) read first: the first read stays hidden until then.")
    at = _now(now)
    with _new_version(conn, key, user, expected_version, at):
        latest = [reads[k] for k in KINDS if k in reads][-1]
        return table.insert_addendum(conn, latest["id"], user, text, at)


def referral_signed(conn: sqlite3.Connection, key: str) -> bool:
    """Whether the referral's reading is final (every lesion signed, second and third reads included)."""
    return table.completed_at(conn, key) is not None


def final_outcome(conn: sqlite3.Connection, key: str) -> list[dict]:
    """Per signed lesion the read that stands: case id, diagnosis, management, text, reader, signed_at; in case
    order of signing. Empty until something is final."""
    out = []
    for case_id, reads in reads_by_case(table.reports_for(conn, key)).items():
        final = final_read(reads)
        if final is not None:
            row = conn.execute("SELECT lesion_id FROM cases WHERE case_id = ?", (case_id,)).fetchone()
            out.append({k: final[k] for k in ("case_id", "diagnosis", "management", "text", "reader", "signed_at")}
                       | {"lesion_id": row[0] if row else "", "diagnosis_name": diagnosis_name(final["diagnosis"]),
                          "addenda": [a for r in reads.values() for a in r["addenda"]]})
    return out

