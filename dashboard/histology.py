"""Histology back from the pathology lab, per lesion: entered on the referral page (dermatologists), on the
histology page of a referral found by its reference (admins and dermatologists), or imported from a CSV.

A result names the diagnosis from the ISIC hierarchy (``isic-metadata``'s
``DiagnosisEnum``), benign / malignant / indeterminate (it must agree with the
diagnosis's first level), the ISIC confirm type (``DiagnosisConfirmTypeEnum``),
the date of the pathology report and its reference. Results are append-only:
entering one for a lesion that has one records a correction, and the latest
stands. Every result and every import is audited (:mod:`dashboard.audit`).

CSV import (a pathology system's export; UTF-8, header row, columns in any order,
names case-insensitive):

========================  ==========================================================================
``referral_reference``    the referral's reference as on the request (e-RS UBRN or the GP's reference)
``lesion_id``             the lesion's id on the referral (``L1``, ``L2``, ...)
``diagnosis``             an ISIC hierarchy value, e.g. ``Benign:Benign melanocytic proliferations:Nevus``
``benign_malignant``      ``benign`` / ``malignant`` / ``indeterminate`` (optional: taken from the diagnosis)
``confirm_type``          an ISIC confirm type (optional: ``histopathology``)
``report_date``           ``YYYY-MM-DD``
``report_reference``      the pathology report's reference
========================  ==========================================================================

Rows that name no stored lesion are listed back as *unmatched*, rows naming a
lesion already given in the file or identical to the result it has as
*duplicates*, and rows with a wrong value as *invalid* with what to fix: none is
dropped silently, and the good rows are stored together in one transaction.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from datetime import date, datetime, timezone

from isic_metadata.diagnosis_hierarchical import DiagnosisEnum
from isic_metadata.fields import DiagnosisConfirmTypeEnum

from . import audit
from .store import histology as table
from .store.schema import transaction

DIAGNOSES = frozenset(d.value for d in DiagnosisEnum)
CONFIRM_TYPES = tuple(c.value for c in DiagnosisConfirmTypeEnum)
BENIGN_MALIGNANT = ("benign", "malignant", "indeterminate")
_CLASS_OF_TOP = {"Benign": "benign", "Malignant": "malignant", "Indeterminate": "indeterminate"}
CSV_COLUMNS = ("referral_reference", "lesion_id", "diagnosis", "benign_malignant", "confirm_type", "report_date",
               "report_reference")
REQUIRED_COLUMNS = ("referral_reference", "lesion_id", "diagnosis", "report_date", "report_reference")
MAX_REF = 64
MAX_IMPORT_BYTES = 5 * 1024 * 1024


class HistologyError(ValueError):
    """A result was refused; ``str()`` says what to fix. Nothing was written."""


@dataclass
class ImportResult:
    """What an import did: rows stored, and the rows not stored with why (line numbers as in the file)."""

    stored: list[dict] = field(default_factory=list)
    duplicates: list[dict] = field(default_factory=list)
    unmatched: list[dict] = field(default_factory=list)
    invalid: list[dict] = field(default_factory=list)

    def summary(self) -> str:
        """One line for a person and the audit log."""
        return (f"{len(self.stored)} stored, {len(self.duplicates)} duplicate, {len(self.unmatched)} unmatched, "
                f"{len(self.invalid)} invalid")


def benign_malignant_of(diagnosis: str) -> str:
    """``benign`` / ``malignant`` / ``indeterminate`` by the diagnosis's first level."""
    return _CLASS_OF_TOP[diagnosis.split(":")[0]]


def validate(diagnosis: str, benign_malignant: str, confirm_type: str, report_date: str, report_ref: str,
             *, today: date | None = None) -> dict:
    """The result's fields checked and normalised; :class:`HistologyError` names the first field to fix."""
    diagnosis = (diagnosis or "").strip()
    if diagnosis not in DIAGNOSES:
        raise HistologyError(f"diagnosis: {diagnosis!r} is not in the ISIC diagnosis hierarchy; choose one such as "
                             "'Malignant:Malignant melanocytic proliferations (Melanoma):Melanoma Invasive'" if diagnosis else "diagnosis: choose one")
    implied = benign_malignant_of(diagnosis)
    benign_malignant = (benign_malignant or "").strip().lower() or implied
    if benign_malignant not in BENIGN_MALIGNANT:
        raise HistologyError(f"benign_malignant: one of {', '.join(BENIGN_MALIGNANT)}, not {benign_malignant!r}")
    if benign_malignant != implied:
        raise HistologyError(f"benign_malignant: {benign_malignant!r} contradicts the diagnosis, which is "
                             f"{implied}; correct one of them")
    confirm_type = (confirm_type or "").strip() or "histopathology"
    if confirm_type not in CONFIRM_TYPES:
        raise HistologyError(f"confirm_type: one of {', '.join(CONFIRM_TYPES)}, not {confirm_type!r}")
    try:
        day = date.fromisoformat((report_date or "").strip())
    except ValueError:
        raise HistologyError(f"report_date: a date as YYYY-MM-DD, not {report_date!r}") from None
    if day > (today or date.today()):
        raise HistologyError(f"report_date: {day.isoformat()} is in the future")
    report_ref = (report_ref or "").strip()
    if not report_ref:
        raise HistologyError("report_reference: the pathology report's reference is required")
    if len(report_ref) > MAX_REF:
        raise HistologyError(f"report_reference: at most {MAX_REF} characters ({len(report_ref)})")
    return {"diagnosis": diagnosis, "benign_malignant": benign_malignant, "confirm_type": confirm_type,
            "reported_on": day.isoformat(), "report_ref": report_ref}


def _same(a: dict, b: dict | None) -> bool:
    keys = ("diagnosis", "benign_malignant", "confirm_type", "reported_on", "report_ref")
    return b is not None and all(a[k] == b[k] for k in keys)


def enter(conn, key: str, case_id: str, user: str, role: str, fields: dict, *, remote_addr: str = "",
          now: datetime | None = None) -> int:
    """Record a result for one lesion of referral ``key`` from the referral page's form; return its id.

    ``fields``: ``diagnosis``, ``benign_malignant``, ``confirm_type``, ``report_date``, ``report_reference``.
    Refused (:class:`HistologyError`) for a lesion not on the referral, a wrong value, or the same result again.
    """
    if table.case_key(conn, case_id) != key:
        raise HistologyError("This lesion is not on this referral: reload the referral page.")
    row = validate(fields.get("diagnosis", ""), fields.get("benign_malignant", ""), fields.get("confirm_type", ""),
                   fields.get("report_date", ""), fields.get("report_reference", ""))
    if _same(row, table.current(conn, case_id)):
        raise HistologyError("This lesion already has exactly this result: nothing to record.")
    at = (now or datetime.now(timezone.utc)).isoformat()
    with transaction(conn):
        rid = table.insert(conn, row | {"case_id": case_id, "referral_key": key, "source": "form", "entered_by": user,
                                        "entered_at": at})
    audit.append(conn, actor=user, role=role, action="histology.enter", target=key,
                 detail=f"lesion {case_id}: {row['benign_malignant']}, {row['diagnosis']}", remote_addr=remote_addr)
    return rid


def parse_csv(data: bytes | str) -> tuple[list[str], list[tuple[int, dict]]]:
    """The header's column names and ``(line number, row)`` pairs; :class:`HistologyError` for an unreadable file."""
    if isinstance(data, bytes):
        if len(data) > MAX_IMPORT_BYTES:
            raise HistologyError(f"The file is larger than {MAX_IMPORT_BYTES // 1024 // 1024} MiB: split it.")
        try:
            data = data.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise HistologyError("The file is not UTF-8 text: export it from the pathology system as UTF-8 CSV.") \
                from None
    reader = csv.DictReader(io.StringIO(data))
    if not reader.fieldnames:
        raise HistologyError("The file is empty: it needs a header row with " + ", ".join(CSV_COLUMNS) + ".")
    names = [(n or "").strip().lower() for n in reader.fieldnames]
    missing = [c for c in REQUIRED_COLUMNS if c not in names]
    if missing:
        raise HistologyError("The header lacks the column(s) " + ", ".join(missing) + "; columns: "
                             + ", ".join(CSV_COLUMNS) + ".")
    unknown = [n for n in names if n not in CSV_COLUMNS]
    if unknown:
        raise HistologyError("Unknown column(s) " + ", ".join(unknown) + "; columns: " + ", ".join(CSV_COLUMNS) + ".")
    reader.fieldnames = names
    rows = []
    for row in reader:
        rows.append((reader.line_num, {k: (v or "").strip() for k, v in row.items() if k is not None}))
    return names, rows


def import_csv(conn, data: bytes | str, user: str, role: str = "", *, remote_addr: str = "",
               today: date | None = None, now: datetime | None = None) -> ImportResult:
    """Import a pathology CSV (columns: :data:`CSV_COLUMNS`); store the good rows in one transaction and list the
    others back (duplicate, unmatched, invalid) with the reason. The import is audited with its counts."""
    _, rows = parse_csv(data)
    result = ImportResult()
    lesions = table.lesions_by_reference(conn, [r.get("referral_reference", "") for _, r in rows])
    seen: dict[str, int] = {}
    good = []
    for line, r in rows:
        shown = {"line": line, "referral_reference": r.get("referral_reference", ""),
                 "lesion_id": r.get("lesion_id", "")}
        try:
            fields = validate(r.get("diagnosis", ""), r.get("benign_malignant", ""), r.get("confirm_type", ""),
                              r.get("report_date", ""), r.get("report_reference", ""), today=today)
        except HistologyError as exc:
            result.invalid.append(shown | {"reason": str(exc)})
            continue
        match = lesions.get((shown["referral_reference"].upper(), shown["lesion_id"].upper()))
        if match is None:
            result.unmatched.append(shown | {"reason": "no stored lesion has this referral reference and lesion id"})
            continue
        case_id, key = match
        if case_id in seen:
            result.duplicates.append(shown | {"reason": f"the same lesion as line {seen[case_id]}"})
            continue
        seen[case_id] = line
        if _same(fields, table.current(conn, case_id)):
            result.duplicates.append(shown | {"reason": "this lesion already has exactly this result"})
            continue
        good.append((shown, fields | {"case_id": case_id, "referral_key": key}))
    at = (now or datetime.now(timezone.utc)).isoformat()
    if good:
        with transaction(conn):
            for shown, row in good:
                table.insert(conn, row | {"source": "import", "entered_by": user, "entered_at": at})
                result.stored.append(shown | {"referral_key": row["referral_key"]})
    audit.append(conn, actor=user, role=role, action="histology.import", target="csv",
                 detail=result.summary(), remote_addr=remote_addr)
    return result


def find_referrals(conn, reference: str, user: str, role: str, *, remote_addr: str = "") -> list[dict]:
    """The referrals a pathology report's referral reference (e-RS UBRN or the GP's reference; spaces and hyphens
    in it ignored) names, newest first, each ``{key, site, referral_date, lesions}``. :class:`HistologyError` for
    an empty or over-long reference. The search is audited with what it found, never the reference itself."""
    text = (reference or "").strip()
    if not text:
        raise HistologyError("Referral reference: type the reference on the pathology report (the e-RS UBRN or the "
                             "GP's reference).")
    if len(text) > MAX_REF:
        raise HistologyError(f"Referral reference: at most {MAX_REF} characters ({len(text)}).")
    compact = "".join(text.split()).replace("-", "")
    found = table.referrals_by_reference(conn, [text, compact])
    audit.append(conn, actor=user, role=role, action="histology.find",
                 target=found[0]["key"] if len(found) == 1 else "referrals", detail=f"{len(found)} found",
                 remote_addr=remote_addr)
    return found


def referral_lesions(conn, key: str) -> list[dict]:
    """The lesions of referral ``key`` for the histology page (empty when no such referral)."""
    return table.referral_lesions(conn, key)


def lesion_results(conn, key: str) -> dict[str, list[dict]]:
    """Per lesion of referral ``key`` its results, newest (the one that stands) first."""
    return table.for_referral(conn, key)
