"""The store's schema version 2: referral -> lesions -> images, v1 cases beside them, and older databases migrated."""

from __future__ import annotations

import sqlite3
from datetime import datetime, timedelta, timezone

import pytest

from dashboard import sample
from dashboard.store import Store, schema, summary
from wire.referral import CaseHeaderV2


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path / "c.db", tmp_path / "images", tmp_path / "quarantine")
    yield s
    s.close()


def test_v2_case_round_trips_through_its_columns_referral_and_image_rows(store):
    """load_case rebuilds the header from the stored structure (not from the kept JSON): nothing is lost."""
    cases = sample.make_referral(5, lesions=2, override=True, fitzpatrick="V")
    for header, images in cases:
        assert store.save_case(header, images).status == "stored"
    for header, images in cases:
        back, data = store.load_case(header.case_id)
        assert isinstance(back, CaseHeaderV2)
        assert back == header and data == images
    header, images = cases[0]
    assert store.save_case(header, images).status == "duplicate"
    assert store.save_case(header.model_copy(update={"note": "x"}), images).status == "conflict"


def test_referral_row_groups_its_lesions(store):
    t0 = datetime(2026, 2, 1, 9, tzinfo=timezone.utc)
    cases = sample.make_referral(6, lesions=3)
    # lesions arrive out of order and in two batches
    store.save_cases([(cases[2][0], cases[2][1], t0 + timedelta(minutes=3))])
    store.save_cases([(h, ims, t0 + timedelta(minutes=i)) for i, (h, ims) in enumerate(cases[:2])])
    rid = str(cases[0][0].referral.referral_id)
    ref = store.get_referral(rid)
    h = cases[0][0]
    assert (ref["reference"], ref["reference_kind"], ref["practice_ods"], ref["route"], ref["lesion_count"]) == (
        h.referral.reference, h.referral.reference_kind, h.referral.practice_ods, h.referral.route, 3)
    assert (ref["nhs_number"], ref["date_of_birth"], ref["sex"], ref["fitzpatrick"]) == (
        h.patient.nhs_number, h.patient.date_of_birth.isoformat(), h.patient.sex, h.patient.fitzpatrick)
    assert ref["consents"] == h.consents and ref["photographer"] == h.photographer
    assert ref["first_received_at"] == t0.isoformat()
    assert ref["last_received_at"] == (t0 + timedelta(minutes=3)).isoformat()
    assert ref["mismatch"] == 0
    lesions = store.referral_cases(rid)
    assert [(c["lesion_index"], c["lesion_id"]) for c in lesions] == [(1, "L1"), (2, "L2"), (3, "L3")]
    assert store.get_referral("not-a-uuid") is None


def test_case_columns_lesion_ai_full_review_and_image_overrides(store):
    [(fitz5, i1)] = sample.make_referral(7, fitzpatrick="V")
    [(declined, i2)] = sample.make_referral(8, ai=False)
    [(plain, i3)] = sample.make_referral(9, override=True)
    v1, i4 = sample.make_case(10)
    for h, ims in ((fitz5, i1), (declined, i2), (plain, i3), (v1, i4)):
        store.save_case(h, ims)
    row = lambda h: store.get_case(h.case_id)  # noqa: E731
    assert (row(fitz5)["full_review"], row(fitz5)["ai"], row(fitz5)["schema_version"]) == (1, "done", 2)
    assert (row(declined)["full_review"], row(declined)["ai"], row(declined)["risk"]) == (1, "declined", None)
    assert (row(plain)["full_review"], row(v1)["full_review"], row(v1)["schema_version"], row(v1)["ai"]) == (
        0, 0, 1, None)
    c = row(plain)
    assert (c["lesion_index"], c["lesion_id"], c["laterality"], c["site_detail"]) == (
        1, "L1", plain.lesion.location.laterality, plain.lesion.location.detail)
    assert c["lesion_history"] == plain.lesion.history
    assert c["seven_point"] == plain.lesion.history.seven_point_score
    [over] = [im for im in c["images"] if im["override_reason"]]
    assert (over["view"], over["shot"], over["override_reason"], over["override_by"]) == (
        "close-up", 2, "patient-could-not-stay-still", plain.photographer)
    assert all(im["shot"] is None for im in row(v1)["images"])


def test_a_case_disagreeing_with_its_referral_sets_mismatch(store):
    (h1, i1), (h2, i2) = sample.make_referral(11, lesions=2)
    other = h2.model_copy(update={"patient": h2.patient.model_copy(update={"nhs_number": sample.synthetic_nhs_number(99)})})
    store.save_cases([(h1, i1, datetime.now(timezone.utc)), (other, i2, datetime.now(timezone.utc))])
    assert store.get_referral(str(h1.referral.referral_id))["mismatch"] == 1


# The tables as the release before schema version 2 made them (dashboard/store.py at cb36617).
V1_TABLES = """
CREATE TABLE cases (case_id TEXT PRIMARY KEY, device TEXT NOT NULL, site TEXT NOT NULL, seq INTEGER NOT NULL,
    referral_ref TEXT NOT NULL, lesion_id TEXT NOT NULL, body_site TEXT NOT NULL, created_at TEXT NOT NULL,
    received_at TEXT NOT NULL, software_version TEXT NOT NULL, model_version TEXT NOT NULL, risk TEXT,
    probabilities TEXT, classification_model TEXT, note TEXT NOT NULL DEFAULT '', image_count INTEGER NOT NULL,
    header TEXT NOT NULL, header_sha256 TEXT NOT NULL, status TEXT NOT NULL DEFAULT 'new');
CREATE INDEX cases_received ON cases (received_at DESC);
CREATE TABLE images (sha256 TEXT PRIMARY KEY, size INTEGER NOT NULL, width INTEGER NOT NULL,
    height INTEGER NOT NULL, stored_at TEXT NOT NULL);
CREATE TABLE case_images (case_id TEXT NOT NULL REFERENCES cases(case_id), position INTEGER NOT NULL,
    sha256 TEXT NOT NULL REFERENCES images(sha256), view TEXT NOT NULL, captured_at TEXT NOT NULL, quality TEXT,
    classification TEXT, PRIMARY KEY (case_id, position));
"""


def test_an_older_database_is_migrated_and_keeps_its_cases(tmp_path):
    db = tmp_path / "old.db"
    old = sqlite3.connect(db)
    old.executescript(V1_TABLES)
    header, images = sample.make_case(12)
    old.execute("INSERT INTO cases (case_id, device, site, seq, referral_ref, lesion_id, body_site, created_at, "
                "received_at, software_version, model_version, image_count, header, header_sha256) "
                "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (str(header.case_id), header.device_id, header.site, header.seq, header.referral_ref,
                 header.lesion_id, header.body_site.value, header.created_at.isoformat(),
                 datetime.now(timezone.utc).isoformat(), header.software_version, header.model_version, 0,
                 header.model_dump_json(), "x"))
    old.commit()
    old.close()
    s = Store(db, tmp_path / "images")
    try:
        assert s.conn.execute("PRAGMA user_version").fetchone()[0] == schema.LAYOUT_VERSION
        have = {r[1] for r in s.conn.execute("PRAGMA table_info(cases)")}
        assert {c for c, _ in schema.ADDED_COLUMNS["cases"]} <= have
        assert s.get_case(header.case_id)["schema_version"] == 1  # the old row got the column's default
        assert s.get_case(header.case_id)["full_review"] == 0
        # the worklist's summary was built for the old case: a one-lesion referral keyed by its case id
        row = summary.get(s.conn, str(header.case_id))
        assert (row["reference"], row["lesions_received"], row["status"], row["schema_version"]) == \
            (header.referral_ref, 1, "to-read", 1)
        cases = sample.make_referral(13, lesions=2)
        assert [r.status for r in s.save_cases([(h, ims, datetime.now(timezone.utc)) for h, ims in cases])] == [
            "stored", "stored"]
        assert s.load_case(cases[1][0].case_id)[0] == cases[1][0]
        assert schema.migrate(s.conn) == []  # a second run adds nothing
    finally:
        s.close()


def test_one_batch_of_v2_cases_is_one_insert_per_table(store):
    """No query per case: a batch of 12 lesion cases commits with one INSERT per table.

    Counted at the connection's ``execute`` (what the store asks for), not by SQLite's trace, which repeats a
    statement each time one of its triggers runs (the worklist's per-status counts)."""
    batch = [c for seed in range(20, 24) for c in sample.make_referral(seed, lesions=3)]
    statements = []

    class Counting:
        def __init__(self, conn):
            self.conn = conn

        def execute(self, sql, *args):
            statements.append(sql.split()[0:3])
            return self.conn.execute(sql, *args)

        def __getattr__(self, name):
            return getattr(self.conn, name)

    real = store.conn
    store.conn = Counting(real)
    now = datetime.now(timezone.utc)
    try:
        assert [r.status for r in store.save_cases([(h, ims, now) for h, ims in batch])] == ["stored"] * 12
    finally:
        store.conn = real
    inserts = [" ".join(s[:3]) for s in statements if s[0] == "INSERT"]
    assert sorted(inserts) == sorted(["INSERT INTO cases", "INSERT OR IGNORE", "INSERT INTO case_images",
                                      "INSERT INTO referrals", "INSERT INTO referral_summary",
                                      "INSERT INTO devices"]), inserts
    assert store.conn.execute("SELECT count(*) FROM referrals").fetchone()[0] == 4
