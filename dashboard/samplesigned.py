"""Signed demo referrals: generated referrals (:func:`dashboard.sample.make_referral`) stored and signed off.

For ``python -m dashboard sample --signed`` (so the DICOM and FHIR exports can be tried on a fresh
machine) and for tests. Each referral is stored as the ingest would store it, claimed by the reader,
and every lesion signed through the reading service (:func:`dashboard.reports.sign`, with the claim and
the version check) with a read that agrees with the classifier's tier, so no second read is due; the
claim is then released. The NHS numbers are from the synthetic range, never issued to anyone.
"""

from __future__ import annotations

from . import claims, reports, sample
from .readingconfig import ReadingConfig
from .store import reports as report_table

#: A standing read per classifier tier: (ISIC diagnosis, management, free text).
READ_OF_TIER = {
    "cancer": ("Malignant:Malignant melanocytic proliferations (Melanoma):Melanoma Invasive", "urgent-2ww",
               "Atypical network and regression: urgent suspected-cancer referral."),
    "pre-cancer": ("Indeterminate:Indeterminate epidermal proliferations:Solar or actinic keratosis", "biopsy",
                   "Scaly erythematous patch: biopsy to exclude SCC in situ."),
    "benign": ("Benign:Benign melanocytic proliferations:Nevus", "discharge",
               "Regular network, symmetric: benign naevus. Safety-netting advice given."),
}


def sign_referral(conn, key: str, reader: str, *, reads: dict[str, tuple[str, str, str]] | None = None) -> None:
    """Sign every stored lesion of referral ``key`` as ``reader`` (claim, sign, release).

    ``reads`` overrides the read per case id; by default each lesion gets :data:`READ_OF_TIER` of its
    classifier tier (benign without one).
    """
    settings = ReadingConfig(audit_share=0.0)
    rows = conn.execute("SELECT case_id, risk FROM cases WHERE referral_id=? OR case_id=? ORDER BY lesion_index",
                        (key, key)).fetchall()
    expected = conn.execute("SELECT lesion_count FROM referrals WHERE referral_id=?", (key,)).fetchone()
    case_ids = [r[0] for r in rows]
    claims.claim(conn, key, reader)
    try:
        for case_id, risk in rows:
            diagnosis, management, text = (reads or {}).get(case_id) or READ_OF_TIER[risk or "benign"]
            case = {"case_id": case_id, "risk": risk}
            reports.sign(conn, key, case, expected[0] if expected else 1, reader, report_table.version(conn, key),
                         diagnosis, management, text, settings, case_ids=case_ids)
    finally:
        claims.release(conn, key, reader)


def seed_signed(store, count: int, *, first_seed: int = 700, reader: str = "dr.demo", lesions: int = 2,
                site: str = "site-1", device: str = "kiosk-1") -> list[str]:
    """Store and sign ``count`` generated referrals; return their referral keys (a seed already stored is skipped
    when already signed, so running it twice adds nothing twice)."""
    keys = []
    for seed in range(first_seed, first_seed + count):
        cases = sample.make_referral(seed, lesions=lesions, site=site, device=device)
        for header, images in cases:
            store.save_case(header, images)
        key = str(cases[0][0].referral.referral_id)
        if not reports.referral_signed(store.conn, key):
            sign_referral(store.conn, key, reader)
        keys.append(key)
    return keys
