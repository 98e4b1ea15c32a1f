"""What the referral review page shows: every lesion with its views, earlier images, classifier output, history,
quality and the reads the reader may see. Read-only: nothing here writes the store.

A referral key is a referral's UUID (schema version 2: all its lesions) or a
version-1 case's UUID (one lesion, the received date as its referral date).
"""

from __future__ import annotations

import uuid
from datetime import date
from pathlib import Path

from wire.messages import LABEL_NAMES, LABELS, TIER_OF_LABEL

from . import casefacts, reports
from .readingconfig import ReadingConfig
from .store import reports as table

#: The shipped model card (``[reading] model_card`` may name another).
MODEL_CARD = Path(__file__).resolve().parent.parent / "models" / "lesion" / "MODEL_CARD.md"


def normal_key(key: str) -> str | None:
    """The canonical form of a referral key (a UUID), or None when it is not one."""
    try:
        return str(uuid.UUID(str(key)))
    except ValueError:
        return None


def key_of_case(case: dict) -> str:
    """The referral key a stored case belongs to (its referral's UUID, or its own for a version-1 case)."""
    return case.get("referral_id") or case["case_id"]


def resolve(store, key: str) -> dict | None:
    """The referral behind ``key``: ``{key, referral (row or None), cases (stored case dicts), expected}``; None if
    the key names nothing (or names a version-2 case, whose key is its referral's)."""
    key = normal_key(key)
    if key is None:
        return None
    referral = store.get_referral(key)
    if referral is not None:
        cases = [store.get_case(c["case_id"]) for c in store.referral_cases(key)]
        return {"key": key, "referral": referral, "cases": cases, "expected": referral["lesion_count"]}
    case = store.get_case(key)
    if case is None or case.get("referral_id"):
        return None
    return {"key": key, "referral": None, "cases": [case], "expected": 1}


def probability_rows(probabilities: dict[str, float] | None) -> list[dict]:
    """Per-class rows, most probable first: label, name, tier and probability."""
    if not probabilities:
        return []
    rows = [{"label": lab, "name": LABEL_NAMES.get(lab, lab), "tier": TIER_OF_LABEL.get(lab, ""),
             "p": float(probabilities.get(lab, 0.0))} for lab in LABELS if lab in probabilities]
    return sorted(rows, key=lambda r: -r["p"])


def _image(im: dict) -> dict:
    q = im["quality"]
    return {"sha256": im["sha256"], "view": im["view"], "width": im["width"], "height": im["height"],
            "size": im["size"], "shot": im.get("shot"), "captured_at": im["captured_at"],
            "quality": None if q is None else ("passed" if q.ok else "failed"),
            "flags": [] if q is None else [f"{name}: {c.message}" for name, c in q.checks.items() if not c.ok],
            # a check that passed with words of its own, not "ok": one the kiosk did not make (a lesion larger
            # than the view: no skin to judge the colour by), which the reader should know of
            "notes": [] if q is None else [f"{name}: {c.message}" for name, c in q.checks.items()
                                           if c.ok and c.message not in ("", "ok")],
            "override": casefacts.override_text(im), "override_by": im.get("override_by")}


def earlier(conn, referral: dict, case: dict) -> list[dict]:
    """The same lesion's earlier photographs: same patient (NHS number), same site and laterality, earlier
    referrals; each with its date, views and the read that stands (if signed)."""
    found = table.earlier_lesion_cases(conn, referral["nhs_number"], referral["referral_id"], case["body_site"],
                                       case["laterality"], referral["referral_date"])
    out = []
    for e in found:
        images = [dict(zip(("sha256", "view", "width", "height"), r)) for r in conn.execute(
            "SELECT ci.sha256, ci.view, i.width, i.height FROM case_images ci JOIN images i USING (sha256) "
            "WHERE ci.case_id = ? ORDER BY ci.position", (e["case_id"],))]
        final = reports.final_read(reports.reads_by_case(table.reports_for(conn, e["referral_id"]))
                                   .get(e["case_id"], {}))
        out.append(e | {"date": date.fromisoformat(e["referral_date"]).strftime("%d %b %Y"), "images": images,
                        "final": final})
    return out


def lesion_view(conn, resolved: dict, case: dict, reads: dict, user: str, settings: ReadingConfig) -> dict:
    """One lesion's part of the page for ``user``: facts, views, earlier images, classifier rows, reads, form."""
    referral = resolved["referral"]
    try:
        kind, why_not = reports.next_kind(reads, user, settings), None
    except reports.ReportError as exc:
        kind, why_not = None, str(exc)
    return {"case": case, "facts": casefacts.lesion(case) if referral else None,
            "images": [_image(im) for im in case["images"]],
            "earlier": earlier(conn, referral, case) if referral else [],
            "probs": probability_rows(case["probabilities"]),
            "model": case["classification_model"] or case["model_version"],
            "state": reports.lesion_state(reads), "reads": reports.visible_reads(reads, user),
            "blind": reports.blind_to_first(reads, user), "kind": kind, "why_not": why_not,
            "notices": [n for n in casefacts.notices(case, None)]}


def page(store, resolved: dict, user: str, settings: ReadingConfig) -> dict:
    """The whole referral page's context for ``user``."""
    conn = store.conn
    key, referral, cases = resolved["key"], resolved["referral"], resolved["cases"]
    reads = reports.reads_by_case(table.reports_for(conn, key))
    states = reports.referral_states(conn, key, [c["case_id"] for c in cases], resolved["expected"])
    first = cases[0]
    ctx = {"key": key, "referral": referral, "expected": resolved["expected"], "status": states["status"],
           "version": table.version(conn, key), "completed_at": table.completed_at(conn, key),
           "lesions": [lesion_view(conn, resolved, c, reads.get(c["case_id"], {}), user, settings) for c in cases],
           "notices": casefacts.notices({"ai": None}, referral), "reference": first["referral_ref"],
           "received_on": first["received_at"][:10]}
    if referral is not None:
        ctx.update(patient=casefacts.patient(referral), ref=casefacts.referral_lines(referral),
                   consents=casefacts.consents(referral), photographer=first.get("photographer"))
    return ctx


def model_card_text(settings: ReadingConfig) -> tuple[Path, str | None]:
    """The model card's path and text (None when the file is missing)."""
    path = settings.model_card or MODEL_CARD
    try:
        return path, path.read_text(encoding="utf-8")
    except OSError:
        return path, None
