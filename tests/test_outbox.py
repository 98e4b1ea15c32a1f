"""Outbox: atomic storage, the state machine, ack-only deletion, ordering, disk-full refusal."""

from __future__ import annotations

import errno
import os
import sqlite3
import uuid
from datetime import datetime, timedelta, timezone

import cv2
import numpy as np
import pytest

from edge.outbox import CaseDataError, DiskFullError, Outbox
from tests.smallfs import mounted_tmpfs
from wire.codec import decode_case, sha256_hex
from wire.messages import CaseHeader, ImageMeta

REFERRAL = "REF-PATIENT-0042"


def jpeg(seed: int, size: int = 96) -> bytes:
    """A small, unique JPEG made from noise."""
    rng = np.random.default_rng(seed)
    img = rng.integers(0, 255, (size, size, 3), dtype=np.uint8)
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 90])
    assert ok
    return buf.tobytes()


def make_case(images: list[bytes], referral: str = REFERRAL) -> CaseHeader:
    """A valid case header for these images (seq 0: the outbox assigns the real one)."""
    now = datetime.now(timezone.utc)
    views = ["dermoscopic", "close-up", "regional"]
    return CaseHeader(
        case_id=uuid.uuid4(), referral_ref=referral, lesion_id="L1", body_site="anterior torso",
        site="site-a", device_id="kiosk-1", created_at=now, seq=0, software_version="t",
        model_version="m", images=[
            ImageMeta(view=views[i % 3], captured_at=now, sha256=sha256_hex(d), length=len(d), width=96, height=96)
            for i, d in enumerate(images)
        ],
    )


def test_submit_writes_files_named_by_hash_and_assigns_increasing_seq(tmp_path):
    ob = Outbox(tmp_path)
    imgs = [jpeg(1), jpeg(2)]
    h1 = ob.submit(make_case(imgs), imgs)
    h2 = ob.submit(make_case([jpeg(3)]), [jpeg(3)])
    assert 0 < h1.seq < h2.seq
    assert ob.get(str(h1.case_id)).state == "queued"
    names = sorted(p.name for p in ob.images_dir.iterdir())
    assert names == sorted(f"{sha256_hex(d)}.jpg" for d in [*imgs, jpeg(3)])
    assert not any(REFERRAL in p.name for p in tmp_path.rglob("*"))
    header, got = decode_case(ob.payload(str(h1.case_id)))
    assert header.seq == h1.seq and got == imgs and header.referral_ref == REFERRAL
    ob.close()
    # seq keeps growing after a reopen, and after every earlier case is purged
    ob = Outbox(tmp_path)
    for h in (h1, h2):
        ob.mark_delivered(str(h.case_id))
    h3 = ob.submit(make_case([jpeg(4)]), [jpeg(4)])
    assert h3.seq > h2.seq


def test_sqlite_is_wal_with_full_sync(tmp_path):
    ob = Outbox(tmp_path)
    assert ob._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert ob._db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL


def test_state_machine_and_ack_only_deletion(tmp_path):
    ob = Outbox(tmp_path, retention_s=0)
    imgs = [jpeg(10)]
    cid = str(ob.submit(make_case(imgs), imgs).case_id)
    path = ob.image_path(sha256_hex(imgs[0]))
    assert ob.mark_sent(cid) and ob.get(cid).state == "sent" and ob.get(cid).attempts == 1
    assert ob.mark_sent(cid) and ob.get(cid).attempts == 2   # PUBACK of a resend
    assert path.exists()                                      # PUBACK alone deletes nothing
    assert ob.purge_due(datetime.now(timezone.utc) + timedelta(days=999)) == 0
    assert path.exists()
    assert ob.mark_delivered(cid, "stored")
    assert ob.get(cid).state == "purged" and not path.exists()
    with pytest.raises(KeyError):                             # the referral reference is forgotten too
        ob.header(cid)
    assert not ob.mark_delivered(cid) and not ob.mark_sent(cid) and not ob.mark_rejected(cid, "x")
    assert ob.queue_depth() == 0


def test_retention_keeps_delivered_images_until_due(tmp_path):
    ob = Outbox(tmp_path, retention_s=3600)
    imgs = [jpeg(20)]
    cid = str(ob.submit(make_case(imgs), imgs).case_id)
    ob.mark_delivered(cid, "duplicate")
    assert ob.get(cid).state == "delivered" and ob.get(cid).reason == "duplicate"
    assert ob.purge_due() == 0 and ob.image_path(sha256_hex(imgs[0])).exists()
    assert ob.purge_due(datetime.now(timezone.utc) + timedelta(hours=2)) == 1
    assert ob.get(cid).state == "purged" and not ob.image_path(sha256_hex(imgs[0])).exists()


def test_rejected_keeps_files_and_can_be_requeued(tmp_path):
    ob = Outbox(tmp_path)
    imgs = [jpeg(30)]
    cid = str(ob.submit(make_case(imgs), imgs).case_id)
    assert ob.mark_rejected(cid, "centre: schema mismatch")
    case = ob.get(cid)
    assert case.state == "rejected" and case.reason == "centre: schema mismatch"
    assert ob.image_path(sha256_hex(imgs[0])).exists()
    assert ob.purge_due(datetime.now(timezone.utc) + timedelta(days=999)) == 0
    assert ob.pending(10) == []
    assert ob.requeue(cid) and [c.case_id for c in ob.pending(10)] == [cid]


def test_shared_image_file_survives_purge_of_one_case(tmp_path):
    ob = Outbox(tmp_path)
    shared = jpeg(40)
    a = str(ob.submit(make_case([shared]), [shared]).case_id)
    b = str(ob.submit(make_case([shared, jpeg(41)]), [shared, jpeg(41)]).case_id)
    ob.mark_delivered(a)
    assert ob.image_path(sha256_hex(shared)).exists()
    assert decode_case(ob.payload(b))[1][0] == shared
    ob.mark_delivered(b)
    assert list(ob.images_dir.iterdir()) == []


def test_pending_in_seq_order_with_exclusions(tmp_path):
    ob = Outbox(tmp_path)
    ids = [str(ob.submit(make_case([jpeg(50 + i)]), [jpeg(50 + i)]).case_id) for i in range(5)]
    ob.mark_sent(ids[1])
    ob.mark_delivered(ids[2])
    assert [c.case_id for c in ob.pending(10)] == [ids[0], ids[1], ids[3], ids[4]]
    assert [c.case_id for c in ob.pending(2, exclude={ids[0]})] == [ids[1], ids[3]]


def test_row_commit_failure_leaves_no_case_and_no_new_file(tmp_path, monkeypatch):
    ob = Outbox(tmp_path)
    keep = [jpeg(60)]
    kept = str(ob.submit(make_case(keep), keep).case_id)
    imgs = [jpeg(61), keep[0]]

    def boom(*a, **k):
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(ob, "_tx", boom)
    with pytest.raises(sqlite3.OperationalError):
        ob.add(make_case(imgs), imgs)
    monkeypatch.undo()
    assert ob.counts()["queued"] == 1
    assert sorted(p.name for p in ob.images_dir.iterdir()) == [f"{sha256_hex(keep[0])}.jpg"]
    assert decode_case(ob.payload(kept))[1] == keep


def test_crash_between_files_and_commit_is_cleaned_and_captured_is_released(tmp_path):
    ob = Outbox(tmp_path)
    imgs = [jpeg(70)]
    header = ob.add(make_case(imgs), imgs)                    # captured, not yet released
    (ob.images_dir / "deadbeef.jpg").write_bytes(b"orphan")   # a file whose row never committed
    (ob.images_dir / ".abc.1.ff.tmp").write_bytes(b"half")    # a temp file cut short
    ob.close()
    ob = Outbox(tmp_path)
    assert ob.gc_orphans(grace_s=3600) == 0                   # young files are left alone (another writer)
    assert ob.gc_orphans(grace_s=-1) == 2
    assert ob.release_captured() == 1
    assert ob.get(str(header.case_id)).state == "queued"
    assert ob.image_path(sha256_hex(imgs[0])).exists()


def test_image_file_altered_on_disk_is_detected(tmp_path):
    ob = Outbox(tmp_path)
    imgs = [jpeg(80)]
    cid = str(ob.submit(make_case(imgs), imgs).case_id)
    ob.image_path(sha256_hex(imgs[0])).write_bytes(b"rotten")
    with pytest.raises(CaseDataError, match="does not match"):
        ob.payload(cid)
    ob.image_path(sha256_hex(imgs[0])).unlink()
    with pytest.raises(CaseDataError, match="missing"):
        ob.payload(cid)


def test_mismatched_images_are_refused(tmp_path):
    ob = Outbox(tmp_path)
    with pytest.raises(ValueError):
        ob.add(make_case([jpeg(90)]), [jpeg(91)])
    assert ob.counts()["captured"] == 0


def test_disk_full_by_free_space_floor_refuses_and_keeps_queue(tmp_path):
    ob = Outbox(tmp_path)
    imgs = [jpeg(100)]
    kept = str(ob.submit(make_case(imgs), imgs).case_id)
    ob.min_free_bytes = ob.free_bytes() + (1 << 30)
    with pytest.raises(DiskFullError, match="Storage is full"):
        ob.submit(make_case([jpeg(101)]), [jpeg(101)])
    assert ob.counts()["queued"] == 1 and decode_case(ob.payload(kept))[1] == imgs
    ob.min_free_bytes = 0
    ob.submit(make_case([jpeg(101)]), [jpeg(101)])           # recovers when space returns
    assert ob.counts()["queued"] == 2


def test_enospc_while_writing_refuses_and_leaves_no_temp(tmp_path, monkeypatch):
    ob = Outbox(tmp_path, min_free_bytes=0)
    imgs = [jpeg(110)]
    ob.submit(make_case(imgs), imgs)
    real_write = os.write

    def full(fd, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "write", full)
    with pytest.raises(DiskFullError):
        ob.submit(make_case([jpeg(111)]), [jpeg(111)])
    monkeypatch.setattr(os, "write", real_write)
    assert sorted(p.name for p in ob.images_dir.iterdir()) == [f"{sha256_hex(imgs[0])}.jpg"]
    assert ob.counts()["queued"] == 1


@pytest.fixture
def small_fs(tmp_path):
    """A 3 MiB tmpfs (needs root); skipped where mounting is not allowed."""
    with mounted_tmpfs(tmp_path / "small", "3m") as mnt:
        yield mnt


@pytest.mark.parametrize("precheck", [True, False], ids=["free-space-check", "real-ENOSPC"])
def test_real_small_filesystem_fills_up_refuses_then_recovers(small_fs, precheck, monkeypatch):
    ob = Outbox(small_fs, min_free_bytes=0)
    if not precheck:   # skip the free-space check so that the write itself hits ENOSPC
        monkeypatch.setattr(ob, "check_space", lambda needed: None)
    rng = np.random.default_rng(0)
    stored, refused = [], None
    for i in range(40):
        big = jpeg(1000 + i, size=300) + rng.bytes(200_000)   # ~0.45 MB each (JPEG + trailing bytes)
        try:
            stored.append((str(ob.submit(make_case([big]), [big]).case_id), big))
        except DiskFullError as exc:
            refused = str(exc)
            break
    assert refused and "not saved" in refused and stored
    assert ("MiB free" in refused) == precheck   # which path refused: the check, or ENOSPC itself
    # every case stored before the refusal is intact, and no temp file is left
    for cid, big in stored:
        assert decode_case(ob.payload(cid))[1] == [big]
    assert not list(ob.images_dir.glob("*.tmp")) and not list(ob.images_dir.glob(".*"))
    # delivering frees space; capture works again
    for cid, _ in stored[:3]:
        ob.mark_delivered(cid)
    small = jpeg(2000)
    ob.submit(make_case([small]), [small])
    assert ob.queue_depth() == len(stored) - 3 + 1


def test_order_follows_seq_not_the_kiosk_clock(tmp_path):
    """A kiosk clock that jumps (to 2099, back to 2001) does not reorder the queue."""
    ob = Outbox(tmp_path)
    ids = []
    for i, year in enumerate((2099, 2001, 2050, 1999)):
        h = make_case([jpeg(300 + i)])
        h = h.model_copy(update={"created_at": h.created_at.replace(year=year)})
        ids.append(str(ob.submit(h, [jpeg(300 + i)]).case_id))
    assert [c.case_id for c in ob.pending(10)] == ids
    seqs = [ob.header(i).seq for i in ids]
    assert seqs == sorted(seqs) and len(set(seqs)) == 4
