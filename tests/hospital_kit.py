"""Helpers for the hospital hand-over tests: a real SQLite centre store with referrals signed through the
reading service (:mod:`dashboard.samplesigned`, which claims and signs with :func:`dashboard.reports.sign`)."""

from __future__ import annotations

from dashboard import ensure_schema, sample, samplesigned
from dashboard.store import Store
from dashboard.store import exports, handover


def open_store(tmp_path) -> Store:
    """A centre store in ``tmp_path`` with the dashboard's, the hand-over's and the exports' tables."""
    store = Store(tmp_path / "c.db", tmp_path / "images")
    ensure_schema(store.conn)
    handover.ensure_schema(store.conn)
    exports.ensure_schema(store.conn)
    return store


def signed_referral(store, seed: int = 41, lesions: int = 2, reader: str = "dr.sign", **kw) -> tuple[str, list]:
    """Store a generated referral and sign every lesion as ``reader``; return its key and the (header, images)."""
    cases = sample.make_referral(seed, lesions=lesions, **kw)
    for header, images in cases:
        store.save_case(header, images)
    key = str(cases[0][0].referral.referral_id)
    samplesigned.sign_referral(store.conn, key, reader)
    return key, cases


def add_addendum(store, key: str, case_id: str, user: str, text: str) -> None:
    """Add an addendum through the reading service (claim, add, release)."""
    from dashboard import claims, reports
    from dashboard.store import reports as report_table

    claims.claim(store.conn, key, user)
    try:
        reports.add_addendum(store.conn, key, case_id, user, report_table.version(store.conn, key), text)
    finally:
        claims.release(store.conn, key, user)
