"""The case store: round trip, idempotence, content-addressed images, quarantine, atomic writes."""

from __future__ import annotations

import os
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dashboard import sample
from dashboard.store import Store, _atomic_write
from wire import codec
from wire.messages import (BODY_SITES, LABELS, VIEWS, CaseHeader, Classification, ImageMeta, Quality,
                           QualityCheck, Status)

ids = st.from_regex(r"[a-z0-9][a-z0-9-]{0,31}", fullmatch=True)
times = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1),
                     timezones=st.sampled_from([timezone.utc, timezone(timedelta(hours=2))]))
text = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=64)
probability = st.floats(0.0, 1.0, allow_nan=False)


@st.composite
def classifications(draw):
    labels = draw(st.lists(st.sampled_from(LABELS), min_size=1, unique=True))
    return Classification(probabilities={lab: draw(probability) for lab in labels},
                          risk=draw(st.sampled_from(["cancer", "pre-cancer", "benign"])),
                          model=draw(st.text(min_size=1, max_size=100)))


qualities = st.builds(Quality, ok=st.booleans(), checks=st.dictionaries(
    st.text(min_size=1, max_size=20),
    st.builds(QualityCheck, value=st.none() | st.floats(allow_nan=False, allow_infinity=False),
              ok=st.booleans(), message=st.text(max_size=50)), max_size=4))


@st.composite
def cases(draw):
    blobs = draw(st.lists(st.binary(min_size=1, max_size=2048), min_size=1, max_size=4, unique=True))
    images = [ImageMeta(view=draw(st.sampled_from(VIEWS)), captured_at=draw(times), sha256=codec.sha256_hex(b),
                        # the same bytes always have the same size: derive it from them
                        length=len(b), width=1 + b[0] * 37 % 8000, height=1 + b[-1] * 29 % 6000,
                        quality=draw(st.none() | qualities), classification=draw(st.none() | classifications()))
              for b in blobs]
    header = CaseHeader(case_id=draw(st.uuids()), referral_ref=draw(text), lesion_id=draw(text),
                        body_site=draw(st.sampled_from(BODY_SITES)), site=draw(ids), device_id=draw(ids),
                        created_at=draw(times), seq=draw(st.integers(0, 2**62)),
                        software_version=draw(st.text(min_size=1, max_size=64)),
                        model_version=draw(st.text(min_size=1, max_size=100)), images=images,
                        classification=draw(st.none() | classifications()), note=draw(st.text(max_size=200)))
    return header, blobs


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path / "c.db", tmp_path / "images", tmp_path / "quarantine")
    yield s
    s.close()


@pytest.fixture(scope="module")
def shared_store(tmp_path_factory):
    d = tmp_path_factory.mktemp("roundtrip")
    s = Store(d / "c.db", d / "images", d / "quarantine")
    yield s
    s.close()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=cases())
def test_round_trip(shared_store, case):
    header, blobs = case
    header = header.model_copy(update={"case_id": uuid.uuid4()})  # examples share one database
    assert shared_store.save_case(header, blobs).status == "stored"
    back, data = shared_store.load_case(header.case_id)
    assert back == header
    assert data == blobs
    assert shared_store.save_case(header, blobs).status == "duplicate"


def test_idempotent_and_conflict(store):
    header, images = sample.make_case(1)
    first = store.save_case(header, images)
    again = store.save_case(header, images, received_at=first.received_at + timedelta(hours=1))
    assert (first.status, again.status) == ("stored", "duplicate")
    assert again.received_at == first.received_at  # the first receipt counts
    changed = header.model_copy(update={"note": "something else"})
    assert store.save_case(changed, images).status == "conflict"
    assert store.count_cases() == 1
    assert store.conn.execute("SELECT count(*) FROM case_images").fetchone()[0] == len(images)


def test_images_content_addressed_and_shared(store):
    shared = sample.make_jpeg(5)
    h1, i1 = sample.make_case(2, images=[shared, sample.make_jpeg(6)])
    h2, i2 = sample.make_case(3, images=[shared])
    store.save_case(h1, i1)
    store.save_case(h2, i2)
    sha = codec.sha256_hex(shared)
    path = store.image_path(sha)
    assert path == store.images_dir / sha[:2] / f"{sha}.jpg" and path.read_bytes() == shared
    assert store.conn.execute("SELECT count(*) FROM images").fetchone()[0] == 2
    assert sorted(p.name for p in store.images_dir.rglob("*") if p.is_file()) == sorted(
        f"{codec.sha256_hex(b)}.jpg" for b in (shared, i1[1]))


def test_case_row_not_committed_when_an_image_write_fails(store, monkeypatch):
    from dashboard.store import files as store_mod

    header, images = sample.make_case(4)
    calls = []
    real = store_mod._write_temp

    def failing(path, data):
        calls.append(path)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        return real(path, data)

    monkeypatch.setattr(store_mod, "_write_temp", failing)
    with pytest.raises(OSError):
        store.save_case(header, images)
    assert not store.has_case(header.case_id)
    assert not [p for p in store.images_dir.rglob("*") if p.is_file()], "a temp or final file was left"
    monkeypatch.undo()
    assert store.save_case(header, images).status == "stored"  # the retry completes it


def syncs_failing(store, monkeypatch, fail_at: set[int], events: list) -> None:
    """Make the store's syncfs calls number ``fail_at`` (1-based) fail with EIO; record every call."""
    import ctypes

    real = store.fs_sync._syncfs
    n = [0]

    def syncfs(fd):
        n[0] += 1
        events.append(("sync", n[0]))
        if n[0] in fail_at:
            ctypes.set_errno(5)
            return -1
        return real(fd)

    monkeypatch.setattr(store.fs_sync, "_syncfs", syncfs)


@pytest.mark.skipif(not __import__("dashboard.store").store.GROUP_COMMIT, reason="no syncfs here")
def test_group_commit_order_temp_files_sync_renames_sync_then_rows(store, monkeypatch):
    """A batch: every image to a temp file, one syncfs, the renames, one syncfs, then the rows."""
    from dashboard.store import files as store_mod

    events = []
    syncs_failing(store, monkeypatch, set(), events)
    real_temp, real_replace = store_mod._write_temp, os.replace
    monkeypatch.setattr(store_mod, "_write_temp", lambda p, d: (events.append(("temp", Path(p).name)), real_temp(p, d))[1])
    monkeypatch.setattr(store_mod.os, "replace", lambda a, b: (events.append(("rename", Path(b).name)),
                                                             real_replace(a, b))[1])
    store.conn.set_trace_callback(lambda sql: events.append(("sql", sql.split()[0])) if sql.startswith(
        ("BEGIN", "COMMIT")) else None)
    batch = [sample.make_case(20 + i, n_images=3) for i in range(4)]
    now = datetime.now(timezone.utc)
    assert [r.status for r in store.save_cases([(h, ims, now) for h, ims in batch])] == ["stored"] * 4
    kinds = [k for k, _ in events]
    n = sum(len(ims) for _, ims in batch)
    assert kinds == ["temp"] * n + ["sync"] + ["rename"] * n + ["sync", "sql", "sql"], kinds
    assert not list(store.images_dir.rglob(f"{store_mod.TMP_PREFIX}*"))
    for h, ims in batch:
        assert store.load_case(h.case_id)[1] == ims
    events.clear()
    h, ims = batch[0]
    assert store.save_cases([(h, ims, now)])[0].status == "duplicate"  # nothing written, nothing synced
    assert [k for k, _ in events if k != "sql"] == []
    # a new case whose images are all in place already (left by a process that died before its sync #2):
    # nothing written, one sync so that their names are durable before the row commits
    h2 = h.model_copy(update={"case_id": uuid.uuid4()})
    events.clear()
    assert store.save_cases([(h2, ims, now)])[0].status == "stored"
    assert [k for k, _ in events] == ["sync", "sql", "sql"]


@pytest.mark.skipif(not __import__("dashboard.store").store.GROUP_COMMIT, reason="no syncfs here")
@pytest.mark.parametrize("fail_at", [1, 2])
def test_failed_sync_commits_no_row_and_the_retry_syncs_again(store, monkeypatch, fail_at):
    """EIO from syncfs #1 (the bytes) or #2 (the renames): no row, no temp file; the retry syncs before committing."""
    from dashboard.store import files as store_mod

    events = []
    syncs_failing(store, monkeypatch, {fail_at}, events)
    header, images = sample.make_case(30, n_images=3)
    with pytest.raises(OSError) as err:
        store.save_case(header, images)
    assert err.value.errno == 5
    assert not store.has_case(header.case_id)
    assert not list(store.images_dir.rglob(f"{store_mod.TMP_PREFIX}*")), "temp files left behind"
    finals = [store.image_path(codec.sha256_hex(b)) for b in images]
    assert all(p.exists() for p in finals) == (fail_at == 2) and any(p.exists() for p in finals) == (fail_at == 2)
    events.clear()
    assert store.save_case(header, images).status == "stored"
    # after a failed rename sync the files are there, yet their names are synced again before the row commits
    assert events == ([("sync", 3)] if fail_at == 2 else [("sync", 2), ("sync", 3)])
    assert store.load_case(header.case_id)[1] == images


def test_staged_temp_files_are_used_and_always_consumed(store):
    """Temp files written ahead (the ingest's decoders) are renamed into place, or removed when not needed."""
    from dashboard.store import files as store_mod

    header, images = sample.make_case(40, n_images=2)
    files = {codec.sha256_hex(b): b for b in images}
    staged = store_mod.stage_image_files(store.images_dir, files)
    assert set(staged) == set(files) and all(Path(p).name.startswith(store_mod.TMP_PREFIX) for p in staged.values())
    inodes = {sha: os.stat(p).st_ino for sha, p in staged.items()}
    now = datetime.now(timezone.utc)
    assert store.save_cases([(header, images, now)], staged)[0].status == "stored"
    assert staged == {}
    if store_mod.GROUP_COMMIT:  # the staged files themselves became the stored ones
        assert {sha: store.image_path(sha).stat().st_ino for sha in files} == inodes
    again = store_mod.stage_image_files(store.images_dir, files)
    assert again == {}  # already stored: nothing to write
    extra = store_mod.stage_image_files(store.images_dir, {codec.sha256_hex(b"x" * 9): b"x" * 9})
    assert store.save_cases([(header, images, now)], extra)[0].status == "duplicate"
    assert extra == {} and not list(store.images_dir.rglob(f"{store_mod.TMP_PREFIX}*"))


def test_image_files_fsynced_and_renamed_before_each_folder_is_fsynced_once(tmp_path, monkeypatch):
    from dashboard.store import files as store_mod

    events = []
    real_write, real_fsync_dir = store_mod._write_file, store_mod.fsync_dir
    monkeypatch.setattr(store_mod, "_write_file", lambda p, d: (events.append(("file", p)), real_write(p, d))[1])
    monkeypatch.setattr(store_mod, "fsync_dir", lambda f: (events.append(("dir", f)), real_fsync_dir(f))[1])
    images = [b"a" * 10, b"b" * 20, b"c" * 30]
    shas = [codec.sha256_hex(b) for b in images]
    payload = b"x" + b"".join(images)
    views = [memoryview(payload)[1:11], memoryview(payload)[11:31], memoryview(payload)[31:61]]
    store_mod.write_image_files(tmp_path, dict(zip(shas, views)))  # memoryviews, as the ingest passes them
    kinds = [k for k, _ in events]
    assert kinds == ["file"] * 3 + ["dir"] * len({s[:2] for s in shas})  # every file durable before any folder
    assert sorted(f for k, f in events if k == "dir") == sorted({store_mod.image_path(tmp_path, s).parent
                                                                 for s in shas})
    assert [store_mod.image_path(tmp_path, s).read_bytes() for s in shas] == images
    events.clear()
    store_mod.write_image_files(tmp_path, dict(zip(shas, images)))  # all present: nothing written, names synced
    folders = {store_mod.image_path(tmp_path, s).parent for s in shas}
    assert sorted(events) == sorted(("dir", f) for f in folders)


def test_decode_case_views_are_zero_copy_and_verified():
    header, images = sample.make_case(7, n_images=2)
    payload = codec.encode_case(header, images)
    _, views = codec.decode_case(payload, views=True)
    assert all(isinstance(v, memoryview) and v.obj is payload and v.readonly for v in views)
    assert [bytes(v) for v in views] == images == codec.decode_case(payload)[1]
    bad = bytearray(payload)
    bad[-1] ^= 1
    with pytest.raises(codec.FrameError, match="sha256 mismatch"):
        codec.decode_case(bytes(bad), views=True)


def test_atomic_write_leaves_no_temp_file_on_failure(tmp_path):
    with pytest.raises(TypeError):
        _atomic_write(tmp_path / "x" / "f.jpg", object())  # type: ignore[arg-type]
    assert list((tmp_path / "x").iterdir()) == []
    _atomic_write(tmp_path / "x" / "f.jpg", b"abc")
    assert [p.name for p in (tmp_path / "x").iterdir()] == ["f.jpg"]


def test_list_cases_newest_first_by_centre_clock(store):
    t0 = datetime(2026, 3, 1, tzinfo=timezone.utc)
    # Kiosk clocks disagree with arrival order; the centre's receive time decides.
    for i, minutes in enumerate([5, 1, 9, 3]):
        header, images = sample.make_case(10 + i)
        header = header.model_copy(update={"created_at": t0 - timedelta(days=i * 400)})
        store.save_case(header, images, received_at=t0 + timedelta(minutes=minutes))
    rows = store.list_cases()
    assert [r["received_at"] for r in rows] == sorted((r["received_at"] for r in rows), reverse=True)
    assert [r["seq"] for r in rows] == [12, 10, 13, 11]
    assert [r["seq"] for r in store.list_cases(limit=2, offset=2)] == [13, 11]


def test_quarantine_keeps_payload_named_by_hash(store):
    payload = b"garbage \x00\x01" * 10
    qid = store.quarantine("dermkiosk/v1/s/k/case", "bad magic", payload, device="k", site="s")
    (row,) = store.list_quarantine()
    assert row["id"] == qid and row["reason"] == "bad magic" and row["payload_size"] == len(payload)
    assert row["payload_file"] == f"{codec.sha256_hex(payload)}.bin"
    assert (store.quarantine_dir / row["payload_file"]).read_bytes() == payload


def test_devices_from_status_and_cases(store):
    header, images = sample.make_case(7, site="site-2", device="kiosk-7")
    store.save_case(header, images)
    store.record_status("site-2", Status(device_id="kiosk-7", state="online", software_version="1.2",
                                         model_version="m-3"))
    (dev,) = store.list_devices()
    assert (dev["device"], dev["site"], dev["state"], dev["software_version"]) == ("kiosk-7", "site-2", "online",
                                                                                  "1.2")


def test_sweep_removes_only_old_temp_files(store):
    d = store.images_dir / "ab"
    d.mkdir(parents=True)
    old, new, real = d / ".tmp-old", d / ".tmp-new", d / ("ab" * 32 + ".jpg")
    for p in (old, new, real):
        p.write_bytes(b"x")
    past = time.time() - 3600
    os.utime(old, (past, past))
    assert store.sweep_temp_files(600) == 1
    assert not old.exists() and new.exists() and real.exists()


def test_wal_and_full_sync(store):
    assert store.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert store.conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL


def test_get_case_rejects_non_uuid(store):
    assert store.get_case("../../etc/passwd") is None
    assert store.get_case(uuid.uuid4()) is None


def test_a_batch_larger_than_one_statement_stores_every_row(store):
    """A batch whose rows need several multi-row INSERTs (SQLite's 999-variable limit) stores every case whole."""
    from dashboard import store as store_mod

    import sqlite3

    store.conn.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, store_mod.MAX_SQL_VARIABLES)  # as SQLite < 3.32
    batch = [sample.make_case(100 + i, n_images=3) for i in range(120)]
    width = 35  # columns of a case row: 120 cases need five statements at 28 rows each
    assert 120 * width > 2 * store_mod.MAX_SQL_VARIABLES
    now = datetime.now(timezone.utc)
    assert [r.status for r in store.save_cases([(h, ims, now) for h, ims in batch])] == ["stored"] * 120
    assert store.count_cases() == 120
    assert store.conn.execute("SELECT count(*) FROM case_images").fetchone()[0] == 360
    for h, ims in batch[::17]:
        got, images = store.load_case(h.case_id)
        assert images == ims and got == h
    devices = {h.device_id for h, _ in batch}
    assert {d["device"] for d in store.list_devices()} == devices
