"""Claims on referrals (dashboard.claims) over a real SQLite file: one holder at a time, refused readers told who
holds it, release and take-over, expiry, and every change in the audit log; and the referral summary the
worklist reads (dashboard.store.summary), kept by the ingest's own batch transaction."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone

import pytest

from dashboard import audit, claims, sample
from dashboard.store import Store, summary

T0 = datetime(2026, 4, 2, 9, 0, tzinfo=timezone.utc)


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path / "c.db", tmp_path / "images")
    audit.ensure_schema(s.conn)
    yield s
    s.close()


def _referral(store, seed, **kw):
    cases = sample.make_referral(seed, **kw)
    store.save_cases([(h, ims, T0) for h, ims in cases])
    return str(cases[0][0].referral.referral_id)


def _actions(store):
    return [(a, actor, target, detail) for a, actor, target, detail in store.conn.execute(
        "SELECT action, actor, target, detail FROM audit_log ORDER BY id")]


def test_one_holder_others_refused_then_take_over_and_release(store):
    key = _referral(store, 1, lesions=2)
    mine = claims.claim(store.conn, key, "dr.a", minutes=20, now=T0)
    assert mine.held_by("dr.a") and mine.expires_at == T0 + timedelta(minutes=20)
    # renewing one's own claim keeps its start, moves its end, and is not audited again
    again = claims.claim(store.conn, key, "dr.a", minutes=20, now=T0 + timedelta(minutes=5))
    assert again.claimed_at == T0 and again.expires_at == T0 + timedelta(minutes=25)
    with pytest.raises(claims.ClaimError) as refused:
        claims.claim(store.conn, key, "dr.b", now=T0 + timedelta(minutes=6))
    assert refused.value.claim.holder == "dr.a"
    assert str(refused.value).startswith("dr.a is reading this referral (claimed until 09:25 UTC)")
    assert claims.require_claim(key, "dr.a", conn=store.conn, now=T0 + timedelta(minutes=6)).holder == "dr.a"
    with pytest.raises(claims.ClaimError, match="dr.a holds this referral now"):
        claims.require_claim(key, "dr.b", conn=store.conn, now=T0 + timedelta(minutes=6))
    with pytest.raises(claims.ClaimError, match="Only dr.a, who holds this referral, can release it"):
        claims.release(store.conn, key, "dr.b", now=T0 + timedelta(minutes=7))
    taken = claims.take_over(store.conn, key, "dr.b", minutes=20, now=T0 + timedelta(minutes=8))
    assert taken.holder == "dr.b"
    with pytest.raises(claims.ClaimError, match="dr.b holds this referral now"):
        claims.require_claim(key, "dr.a", conn=store.conn, now=T0 + timedelta(minutes=9))
    claims.release(store.conn, key, "dr.b", now=T0 + timedelta(minutes=10))
    assert claims.holder(store.conn, key, now=T0 + timedelta(minutes=10)) is None
    with pytest.raises(claims.ClaimError, match="no longer hold"):
        claims.require_claim(key, "dr.b", conn=store.conn, now=T0 + timedelta(minutes=10))
    assert [(a, who) for a, who, _, _ in _actions(store)] == [
        ("claim.take", "dr.a"), ("claim.refused", "dr.b"), ("claim.takeover", "dr.b"), ("claim.release", "dr.b")]
    assert _actions(store)[2][3] == "from dr.a (held until 2026-04-02T09:25:00+00:00)"
    assert {t for _, _, t, _ in _actions(store)} == {key}  # named by the referral's UUID only
    assert audit.verify_chain(store.conn) is None


def test_a_claim_runs_out(store):
    key = _referral(store, 2)
    claims.claim(store.conn, key, "dr.a", minutes=20, now=T0)
    assert claims.holder(store.conn, key, now=T0 + timedelta(minutes=19, seconds=59)).holder == "dr.a"
    assert claims.holder(store.conn, key, now=T0 + timedelta(minutes=20)) is None
    assert claims.claim(store.conn, key, "dr.b", now=T0 + timedelta(minutes=21)).holder == "dr.b"
    assert claims.mine(store.conn, "dr.b", now=T0 + timedelta(minutes=22)) == [key]
    assert claims.mine(store.conn, "dr.a", now=T0 + timedelta(minutes=22)) == []


def test_unknown_referral_is_refused(store):
    with pytest.raises(claims.ClaimError, match="no such referral"):
        claims.claim(store.conn, "6f1c1d9e-1111-4222-8333-444455556666", "dr.a")
    with pytest.raises(claims.ClaimError, match="no such referral"):
        claims.take_over(store.conn, "../etc/passwd", "dr.a")


def test_two_readers_at_once_get_one_claim(tmp_path, store):
    key = _referral(store, 3)
    results, barrier = {}, threading.Barrier(2)

    def reader(name):
        s = Store(tmp_path / "c.db", tmp_path / "images")
        try:
            barrier.wait()
            results[name] = claims.claim(s.conn, key, name, now=T0).holder
        except claims.ClaimError as exc:
            results[name] = exc.claim.holder
        finally:
            s.close()

    threads = [threading.Thread(target=reader, args=(n,)) for n in ("dr.a", "dr.b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(results.values())) == 1  # both see the same single holder
    assert store.conn.execute("SELECT count(*) FROM claims").fetchone()[0] == 1


def test_summary_groups_lesions_most_severe_tier_and_full_review(store):
    cases = sample.make_referral(4, lesions=3)
    risks = ["benign", "pre-cancer", "benign"]
    cases = [(h.model_copy(update={"classification": h.classification.model_copy(update={"risk": r})}), ims)
             for (h, ims), r in zip(cases, risks)]
    # two lesions in one batch, the third in a later one (one INSERT per table each time)
    store.save_cases([(h, ims, T0) for h, ims in cases[:2]])
    key = str(cases[0][0].referral.referral_id)
    row = summary.get(store.conn, key)
    assert (row["rank"], row["tier_rank"], row["lesions_received"], row["lesion_count"]) == (2, 1, 2, 3)
    assert row["referral_date"] == cases[0][0].referral.referral_date.isoformat()
    assert row["nhs_number"] == cases[0][0].patient.nhs_number and row["status"] == "to-read"
    store.save_cases([(cases[2][0], cases[2][1], T0 + timedelta(hours=1))])
    row = summary.get(store.conn, key)
    assert row["lesions_received"] == 3 and row["last_received_at"] > row["first_received_at"]
    store.save_cases([(cases[2][0], cases[2][1], T0 + timedelta(hours=2))])  # a duplicate changes nothing
    assert summary.get(store.conn, key)["lesions_received"] == 3
    # skin type V: a benign-looking lesion still ranks as a full review, never benign
    [(fitz, ims)] = sample.make_referral(5, fitzpatrick="VI")
    fitz = fitz.model_copy(update={"classification": fitz.classification.model_copy(update={"risk": "benign"})})
    store.save_case(fitz, ims)
    row = summary.get(store.conn, str(fitz.referral.referral_id))
    assert (row["rank"], row["tier_rank"], row["fitz_v_vi"], row["full_review"]) == (1, 2, 1, 1)
    [(declined, ims)] = sample.make_referral(6, ai=False)
    store.save_case(declined, ims)
    row = summary.get(store.conn, str(declined.referral.referral_id))
    assert (row["rank"], row["tier_rank"], row["ai_declined"]) == (1, 3, 1)


def test_status_moves_and_a_late_lesion_reopens_a_reported_referral(store):
    cases = sample.make_referral(7, lesions=2)
    store.save_cases([(cases[0][0], cases[0][1], T0)])
    key = str(cases[0][0].referral.referral_id)
    with pytest.raises(ValueError, match="status must be one of"):
        summary.set_status(store.conn, key, "done")
    summary.set_status(store.conn, key, "second-read", assigned_to="dr.lead", at=T0)
    assert (summary.get(store.conn, key)["closed"], summary.get(store.conn, key)["assigned_to"]) == (0, "dr.lead")
    summary.set_status(store.conn, key, "reported", at=T0 + timedelta(days=3))
    row = summary.get(store.conn, key)
    assert (row["status"], row["closed"], row["status_at"]) == ("reported", 1, "2026-04-05T09:00:00+00:00")
    store.save_cases([(cases[1][0], cases[1][1], T0 + timedelta(days=4))])
    row = summary.get(store.conn, key)
    assert (row["status"], row["closed"], row["lesions_received"]) == ("to-read", 0, 2)
    with pytest.raises(KeyError):
        summary.set_status(store.conn, "6f1c1d9e-1111-4222-8333-444455556666", "reported")


def test_status_counts_kept_by_triggers_match_a_recount(store):
    """The tabs' counts (summary_counts, kept by triggers) always equal a count over the summary table."""
    def recount():
        return dict(store.conn.execute("SELECT status, count(*) FROM referral_summary GROUP BY status").fetchall())

    cases = sample.make_referral(8, lesions=2)
    store.save_cases([(cases[0][0], cases[0][1], T0)])
    keys = [_referral(store, seed) for seed in (9, 10, 11)] + [str(cases[0][0].referral.referral_id)]
    assert summary.status_counts(store.conn) == recount() == {"to-read": 4}
    summary.set_status(store.conn, keys[0], "second-read")
    summary.set_status(store.conn, keys[1], "reported")
    summary.set_status(store.conn, keys[3], "reported")
    summary.set_status(store.conn, keys[3], "reported")  # no change, no double count
    assert summary.status_counts(store.conn) == recount() == {"to-read": 1, "second-read": 1, "reported": 2}
    store.save_cases([(cases[1][0], cases[1][1], T0)])  # a late lesion reopens keys[3] through the upsert
    assert summary.status_counts(store.conn) == recount() == {"to-read": 2, "second-read": 1, "reported": 1}
    from dashboard.store import schema

    store.conn.execute("PRAGMA user_version = 3")  # a layout-3 database: recounted by the migration
    store.conn.execute("DELETE FROM summary_counts")
    schema.migrate(store.conn)
    assert summary.status_counts(store.conn) == recount()
