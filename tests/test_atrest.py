"""Kiosk data at rest: AES-GCM sealed headers and images, the key file, no patient data readable.

The folder test captures cases with the real kiosk service (replay camera, shipped model,
outbox) and then reads every byte the kiosk left in its data folder, SQLite WAL included.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import stat
import uuid
from datetime import datetime, timezone
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.atrest import AtRestError, SealedDataError, Sealer, key_path, load_key
from edge.config import KioskConfig
from edge.outbox import CaseDataError, Outbox
from wire.codec import decode_case, sha256_hex
from wire.messages import CaseHeader, ImageMeta

ROOT = Path(__file__).resolve().parents[1]
MODEL_DIR = Path(os.environ.get("DERMKIOSK_TEST_MODEL_DIR", ROOT / "models" / "lesion"))
REF, LESION = "NHS-REF-4471-AT-REST", "LESION-LEFT-SHIN-9"


def jpeg(seed: int) -> bytes:
    """A small JPEG of noise."""
    img = np.random.default_rng(seed).integers(0, 255, (80, 80, 3), dtype=np.uint8)
    return cv2.imencode(".jpg", img)[1].tobytes()


def case(images: list[bytes], ref: str = REF) -> CaseHeader:
    """A valid case header for these images."""
    now = datetime.now(timezone.utc)
    return CaseHeader(case_id=uuid.uuid4(), referral_ref=ref, lesion_id=LESION, body_site="anterior torso",
                      site="hub-t", device_id="kiosk-t", created_at=now, seq=0, software_version="t",
                      model_version="m",
                      images=[ImageMeta(view="dermoscopic", captured_at=now, sha256=sha256_hex(d), length=len(d),
                                        width=80, height=80) for d in images])


# ---------------------------------------------------------------- the sealer and the key

def test_sealed_blob_opens_only_with_its_key_and_its_name():
    s = Sealer(os.urandom(32))
    blob = s.seal(b"secret", b"image:abc")
    assert b"secret" not in blob and s.seal(b"secret", b"image:abc") != blob   # fresh nonce each time
    assert s.open(blob, b"image:abc") == b"secret"
    with pytest.raises(SealedDataError):
        s.open(blob, b"image:abd")                         # moved to another name
    with pytest.raises(SealedDataError):
        s.open(blob[:-1] + bytes([blob[-1] ^ 1]), b"image:abc")   # altered
    with pytest.raises(SealedDataError):
        Sealer(os.urandom(32)).open(blob, b"image:abc")    # another key
    with pytest.raises(SealedDataError):
        s.open(b"\xff\xd8plain jpeg", b"image:abc")


def test_key_file_is_created_0600_and_reused(tmp_path):
    path = tmp_path / "conf" / "kiosk.key"
    key = load_key(path)
    assert len(key) == 32 and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_key(path) == key
    path.write_text(key.hex() + "\n")                       # hex form is accepted too
    assert load_key(path) == key


def test_key_file_readable_by_others_or_wrong_size_is_refused(tmp_path):
    path = tmp_path / "kiosk.key"
    load_key(path)
    os.chmod(path, 0o644)
    with pytest.raises(AtRestError, match="chmod 600"):
        load_key(path)
    os.chmod(path, 0o600)
    path.write_bytes(b"short")
    with pytest.raises(AtRestError, match="expected 32 bytes"):
        load_key(path)
    with pytest.raises(AtRestError, match="does not exist"):
        load_key(tmp_path / "missing.key", create=False)
    (tmp_path / "a-file").write_text("")
    with pytest.raises(AtRestError, match="cannot create the key file"):
        load_key(tmp_path / "a-file" / "kiosk.key")


def test_key_location_default_and_systemd_credential(tmp_path, monkeypatch):
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    assert key_path(tmp_path / "var" / "kiosk") == (tmp_path / "var" / "kiosk.key").resolve()
    assert key_path(tmp_path / "var" / "kiosk", tmp_path / "k.key") == tmp_path / "k.key"
    creds = tmp_path / "creds"
    creds.mkdir()
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    assert key_path(tmp_path / "data") == (tmp_path / "kiosk.key").resolve()   # no credential: default
    (creds / "kiosk-key").write_bytes(os.urandom(32))
    os.chmod(creds / "kiosk-key", 0o440)                   # systemd sets the credential's mode
    assert key_path(tmp_path / "data") == creds / "kiosk-key"
    assert key_path(tmp_path / "data", tmp_path / "k.key") == creds / "kiosk-key"   # the credential wins
    ob = Outbox(tmp_path / "data")
    assert ob.sealer.open(Sealer(load_key(creds / "kiosk-key")).seal(b"x", b"a"), b"a") == b"x"
    ob.close()
    assert not (tmp_path / "kiosk.key").exists()
    # never created in the credentials folder
    with pytest.raises(AtRestError, match="does not exist"):
        load_key(creds / "other")


# ---------------------------------------------------------------- the outbox

def test_outbox_with_another_key_cannot_read_the_cases(tmp_path):
    imgs = [jpeg(1)]
    ob = Outbox(tmp_path / "data", key_file=tmp_path / "a.key")
    cid = str(ob.submit(case(imgs), imgs).case_id)
    assert decode_case(ob.payload(cid))[1] == imgs
    ob.close()
    ob = Outbox(tmp_path / "data", key_file=tmp_path / "b.key")
    with pytest.raises(CaseDataError):
        ob.payload(cid)
    ob.close()


def test_plaintext_left_by_an_older_version_is_sealed_on_open(tmp_path):
    imgs = [jpeg(2)]
    ob = Outbox(tmp_path / "data")
    header = ob.submit(case(imgs), imgs)
    cid = str(header.case_id)
    # What an older kiosk left: the header as JSON text, the JPEG as it is.
    ob._db.execute("UPDATE cases SET header = ? WHERE case_id = ?", (header.model_dump_json(), cid))
    ob.image_path(sha256_hex(imgs[0])).write_bytes(imgs[0])
    ob.close()
    ob = Outbox(tmp_path / "data")
    assert decode_case(ob.payload(cid))[1] == imgs
    ob.close()
    assert_nothing_readable(tmp_path / "data", [REF.encode(), LESION.encode()])


def assert_nothing_readable(folder: Path, secrets: list[bytes]) -> int:
    """No file in ``folder`` is a JPEG (magic, or decodable by OpenCV) or contains a secret; returns
    how many files were read."""
    files = [p for p in folder.rglob("*") if p.is_file()]
    for p in files:
        data = p.read_bytes()
        assert not data.startswith(b"\xff\xd8"), f"{p} starts like a JPEG"
        if data:
            assert cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR) is None, f"{p} decodes as an image"
        for s in secrets:
            assert s not in data, f"{s!r} in {p}"
            assert s.decode() not in p.name
    return len(files)


# ---------------------------------------------------------------- the real kiosk, then its folder

@pytest.mark.skipif(not (MODEL_DIR / "manifest.json").exists(), reason="no model in models/lesion")
def test_kiosk_data_folder_holds_no_readable_jpeg_and_no_referral_reference(tmp_path, caplog):
    from edge.service import KioskService

    caplog.set_level(logging.DEBUG)
    cfg = KioskConfig.model_validate({
        "device_id": "kiosk-t", "site": "hub-t", "model_dir": str(MODEL_DIR),
        "data_dir": str(tmp_path / "kiosk" / "data"), "classifier_threads": 1,
        "camera": {"source": "replay", "replay": {"width": 640, "height": 480, "seed": 5}},
        "retention": {"min_free_mb": 0},
    })
    assert cfg.web.host == "127.0.0.1"           # the kiosk page listens on loopback by default
    with KioskService(cfg, with_link=False) as svc:
        headers = [svc.capture_case(f"{REF}-{i}", LESION, "palms/soles", ["dermoscopic", "close-up"])
                   for i in range(3)]
        # What is stored still makes whole cases (sealed, not lost).
        for h in headers:
            got, images = decode_case(svc.outbox.payload(str(h.case_id)))
            assert got.referral_ref == h.referral_ref and all(im.startswith(b"\xff\xd8") for im in images)
        data = cfg.data_dir
        assert (data / "outbox.sqlite3-wal").exists()        # the WAL is read too
        n = assert_nothing_readable(data, [REF.encode(), LESION.encode()])
        assert n >= 6 + 3                                   # images, database, WAL, lock
        names = {p.stem for p in (data / "images").iterdir()}
        assert names == {m.sha256 for h in headers for m in h.images}   # named by the plaintext's hash
        with sqlite3.connect(data / "outbox.sqlite3") as db:
            assert {r[0] for r in db.execute("SELECT typeof(header) FROM cases")} == {"blob"}
        # The key lives outside the data folder, readable by the service user only.
        key = tmp_path / "kiosk" / "kiosk.key"
        assert stat.S_IMODE(key.stat().st_mode) == 0o600
        # Delivered: the images are deleted and the header forgotten.
        for h in headers:
            assert svc.outbox.mark_delivered(str(h.case_id), "stored")
        assert list((data / "images").iterdir()) == []
        assert svc.outbox.counts()["purged"] == 3
    assert_nothing_readable(cfg.data_dir, [REF.encode(), LESION.encode()])
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert str(headers[0].case_id) in text and REF not in text and LESION not in text
