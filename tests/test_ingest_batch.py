"""Batched ingest: several messages in one commit keep each message's own outcome and ack."""

from __future__ import annotations

import uuid

from dashboard import sample
from dashboard.ingest import Ingest, check_case, handle_cases
from dashboard.store import Store, utcnow
from tests.test_ingest import Kiosk, centre_config
from wire import codec, topics

TOPIC = topics.topic("site-1", "kiosk-1", topics.CASE)


def test_one_batch_mixed_outcomes(tmp_path):
    store = Store(tmp_path / "c.db", tmp_path / "images", tmp_path / "q")
    shared = sample.make_jpeg(7)
    a, a_frame = sample.make_frame(1, images=[shared, sample.make_jpeg(8)])
    a2 = a.model_copy(update={"note": "changed"})
    c, c_frame = sample.make_frame(2, images=[shared])
    payloads = [a_frame, a_frame, codec.encode_case(a2, sample.make_case(1, images=[shared, sample.make_jpeg(8)])[1]),
                b"junk", c_frame]
    checked = [check_case(TOPIC, p, utcnow()) for p in payloads]
    out = handle_cases(store, checked, {})
    assert [out[i].label for i in range(5)] == ["stored", "duplicate", "quarantined", "quarantined", "stored"]
    assert [out[i].ack.status if out[i].ack else None for i in range(5)] == [
        "stored", "duplicate", "rejected", None, "stored"]
    assert out[2].ack.reason == "case id already stored with different content"
    assert store.count_cases() == 2
    assert store.conn.execute("SELECT count(*) FROM images").fetchone()[0] == 2
    assert len(store.list_quarantine()) == 2
    # A retry with the same outcomes dict does nothing more.
    handle_cases(store, checked, out)
    assert len(store.list_quarantine()) == 2
    store.close()


def test_backlog_after_restart_is_acked_per_case(broker, tmp_path):
    config = centre_config(broker, tmp_path)
    ing = Ingest(config).start()
    assert ing.wait_ready(10)
    ing.stop()
    kiosk = Kiosk(broker, db_path=tmp_path / "centre.db")
    frames = [sample.make_frame(300 + i, case_id=uuid.uuid4()) for i in range(30)]
    for _, f in frames:
        kiosk.publish(f)
    kiosk.publish(frames[0][1])  # a duplicate inside the backlog
    kiosk.publish(b"garbage")
    ing = Ingest(config).start()
    try:
        acks = [kiosk.ack() for _ in range(31)]
        assert kiosk.no_ack(0.3)
        statuses = {}
        for a in acks:
            statuses.setdefault(a.case_id, []).append(a.status)
        assert statuses[frames[0][0].case_id] == ["stored", "duplicate"]
        assert all(statuses[h.case_id] == ["stored"] for h, _ in frames[1:])
        assert all(kiosk.seen_in_db_at_ack.values())
        assert ing.stats["quarantined"] == 1
    finally:
        ing.stop()
        kiosk.close()


def test_a_poison_case_is_quarantined_alone(broker, tmp_path, monkeypatch):
    """An unexpected error while storing one case quarantines that case; the rest of its batch is stored."""
    real = Store.save_cases

    def save_cases(self, batch, staged=None):
        if any(h.note == "poison" for h, _, _ in batch):
            raise RuntimeError("a bug")
        return real(self, batch, staged)

    monkeypatch.setattr(Store, "save_cases", save_cases)
    config = centre_config(broker, tmp_path)
    ing = Ingest(config).start()
    assert ing.wait_ready(10)
    ing.stop()
    kiosk = Kiosk(broker)
    good = [sample.make_frame(400 + i, case_id=uuid.uuid4()) for i in range(5)]
    h, ims = sample.make_case(410)
    poison = h.model_copy(update={"note": "poison"})
    for _, f in good[:2]:
        kiosk.publish(f)
    kiosk.publish(codec.encode_case(poison, ims))
    for _, f in good[2:]:
        kiosk.publish(f)
    ing = Ingest(config).start()
    try:
        acks = {a.case_id: a for a in (kiosk.ack() for _ in range(6))}
        assert acks[poison.case_id].status == "rejected"
        assert acks[poison.case_id].reason == "internal error: RuntimeError"
        assert all(acks[g.case_id].status == "stored" for g, _ in good)
        assert ing.stats["internal-errors"] == 1 and ing._worker.is_alive()
    finally:
        ing.stop()
        kiosk.close()


def staged_files(images_dir) -> list:
    from dashboard.store import TMP_PREFIX

    return sorted(p.name for p in images_dir.rglob(f"{TMP_PREFIX}*"))


def test_check_and_stage_verifies_every_image_from_the_copy_it_writes(tmp_path):
    """The decoders' path: the same verdicts as check_case; temp files for the images not yet stored, each
    holding exactly the bytes that hashed right; none left behind by a refused case."""
    from dashboard.intake import check_and_stage
    from dashboard.store import discard_staged

    store = Store(tmp_path / "c.db", tmp_path / "images", tmp_path / "q")
    h, frame = sample.make_frame(1, images=[sample.make_jpeg_of_size(300_000, seed=1), sample.make_jpeg(8)])
    got = check_and_stage(TOPIC, bytearray(frame), utcnow(), store.images_dir)
    want = check_case(TOPIC, frame, utcnow())
    assert got.reason is None and got.header == want.header and [bytes(v) for v in got.images] == [
        bytes(v) for v in want.images]
    assert set(got.staged) == {m.sha256 for m in h.images} and len(staged_files(store.images_dir)) == 2
    for sha, path in got.staged.items():
        with open(path, "rb") as f:
            assert codec.sha256_hex(f.read()) == sha
    assert handle_cases(store, [got], {})[0].label == "stored" and got.staged == {}
    assert staged_files(store.images_dir) == []
    # Stored already: checked, nothing written again.
    again = check_and_stage(TOPIC, frame, utcnow(), store.images_dir)
    assert again.reason is None and again.staged == {}
    # One flipped byte in the last image: refused with check_case's reason, the first images' temp files removed.
    bad = bytearray(sample.make_frame(2, images=[sample.make_jpeg(20), sample.make_jpeg(21)])[1])
    bad[-1] ^= 1
    refused = check_and_stage(TOPIC, bad, utcnow(), store.images_dir)
    assert refused.reason == check_case(TOPIC, bad, utcnow()).reason == "image 1 sha256 mismatch"
    assert refused.header is None and refused.case_id and staged_files(store.images_dir) == []
    # Anything check_case refuses before the hashes is refused alike.
    for junk in (b"junk", frame[:-5]):
        want = check_case(TOPIC, junk, utcnow()).reason
        assert want and check_and_stage(TOPIC, junk, utcnow(), store.images_dir).reason == want
    discard_staged(got.staged)
    store.close()


def test_check_and_stage_on_a_full_disk_still_verifies(tmp_path):
    """Out of space, the staging stops (nothing left behind) but every image is still checked; the worker
    then writes what is missing itself, retrying and reporting."""
    from dashboard.intake import check_and_stage
    from tests.smallfs import fill, mounted_tmpfs

    with mounted_tmpfs(tmp_path / "fs", "2m") as fs:
        (fs / "images").mkdir()
        fill(fs / "filler")
        images = [sample.make_jpeg_of_size(200_000, seed=s) for s in range(3)]
        _, frame = sample.make_frame(3, images=images)
        ok = check_and_stage(TOPIC, frame, utcnow(), fs / "images")
        assert ok.reason is None and ok.staged == {} and staged_files(fs / "images") == []
        bad = bytearray(frame)
        bad[-1] ^= 1
        assert check_and_stage(TOPIC, bad, utcnow(), fs / "images").reason == "image 2 sha256 mismatch"
