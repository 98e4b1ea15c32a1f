"""Kiosk service with real parts: replay camera, quality gate, the shipped model, outbox, broker."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import cv2
import pytest

from edge.camera.synth import degrade_blur, encode_jpeg, lesion_image
from edge.config import KioskConfig
from edge.outbox import DiskFullError
from edge.service import CaseError, KioskService
from edge.version import software_version
from wire.codec import decode_case
from wire.messages import LABELS, TIERS

ROOT = Path(__file__).resolve().parents[1]
#: The shipped model; DERMKIOSK_TEST_MODEL_DIR tries another (a candidate model) instead.
MODEL_DIR = Path(os.environ.get("DERMKIOSK_TEST_MODEL_DIR", ROOT / "models" / "lesion"))
pytestmark = pytest.mark.skipif(not (MODEL_DIR / "manifest.json").exists(), reason="no model in models/lesion yet")

REF, LESION = "NHS-REF-777123", "LESION-RIGHT-ARM-2"


def config(tmp_path: Path, **kw) -> KioskConfig:
    """A kiosk config on the replay camera with small generated images."""
    data = {
        "device_id": "kiosk-t", "site": "hub-t", "model_dir": str(MODEL_DIR),
        "data_dir": str(tmp_path / "kiosk"), "classifier_threads": 1,
        "camera": {"source": "replay", "replay": {"width": 800, "height": 600, "seed": 3}},
        "retention": {"min_free_mb": 0},
    }
    for k, v in kw.items():
        if isinstance(v, dict) and isinstance(data.get(k), dict):
            data[k] = {**data[k], **v}
        else:
            data[k] = v
    return KioskConfig.model_validate(data)


def test_capture_flow_builds_a_complete_case(tmp_path):
    with KioskService(config(tmp_path), with_link=False) as svc:
        draft = svc.start_case(f"  {REF} ", LESION, "upper extremity")
        derm = svc.capture("dermoscopic")
        close = svc.capture("close-up")
        assert derm.classification is not None and close.classification is None
        c = derm.classification
        assert set(c.probabilities) == set(LABELS) and abs(sum(c.probabilities.values()) - 1) < 0.02
        assert c.risk in TIERS and c.model == svc.classifier.version
        assert derm.quality.checks and close.quality.checks
        header = svc.submit(allow_failed_quality=True)
        assert svc.draft is None
        stored, images = decode_case(svc.outbox.payload(str(header.case_id)))
    assert stored.case_id == draft.case_id and stored.referral_ref == REF and stored.lesion_id == LESION
    assert stored.body_site.value == "upper extremity" and stored.seq >= 1
    assert [m.view for m in stored.images] == ["dermoscopic", "close-up"]
    assert stored.images[0].width == 800 and stored.images[0].height == 600
    assert stored.images[0].captured_at.tzinfo is not None
    assert stored.images[0].quality == derm.quality and stored.images[0].classification == c
    assert stored.classification == c and stored.model_version == c.model
    assert stored.software_version == software_version()
    assert stored.device_id == "kiosk-t" and stored.site == "hub-t"
    assert images == [derm.frame.jpeg, close.frame.jpeg]


def test_input_and_readiness_errors(tmp_path):
    with KioskService(config(tmp_path), with_link=False) as svc:
        with pytest.raises(CaseError, match="Start a case"):
            svc.capture("dermoscopic")
        with pytest.raises(CaseError, match="referral"):
            svc.start_case("", LESION, "head/neck")
        with pytest.raises(CaseError, match="body site"):
            svc.start_case(REF, LESION, "elbow-ish")
        with pytest.raises(CaseError, match="lesion id"):
            svc.start_case(REF, "x" * 65, "head/neck")
        svc.start_case(REF, LESION, "head/neck")
        svc.capture("close-up")
        with pytest.raises(CaseError, match="dermoscopic view first"):
            svc.submit(allow_failed_quality=True)
        with pytest.raises(CaseError, match="Unknown view"):
            svc.capture("selfie")
        assert svc.outbox.counts()["queued"] == 0


def test_failed_quality_blocks_submit_until_retaken(tmp_path):
    folder = tmp_path / "replay"
    folder.mkdir()
    sharp = lesion_image(800, 600, seed=5)
    cv2.imwrite(str(folder / "a_blurred.jpg"), degrade_blur(sharp, 12))
    (folder / "b_sharp.jpg").write_bytes(encode_jpeg(sharp))
    cfg = config(tmp_path, camera={"replay": {"folder": str(folder)}})
    with KioskService(cfg, with_link=False) as svc:
        svc.start_case(REF, LESION, "head/neck")
        bad = svc.capture("dermoscopic")
        assert not bad.quality.ok and not bad.quality.checks["focus"].ok
        assert "blur" in bad.quality.checks["focus"].message.lower()
        with pytest.raises(CaseError, match="Retake the dermoscopic"):
            svc.submit()
        good = svc.capture("dermoscopic")          # retake replaces the view
        assert good.quality.ok, {k: v for k, v in good.quality.checks.items() if not v.ok}
        header = svc.submit()
        assert len(header.images) == 1 and header.images[0].sha256 == good.sha256


def test_threshold_override_changes_the_tier(tmp_path):
    cfg = config(tmp_path, thresholds={"cancer": 1e-9, "pre-cancer": 1e-9})
    with KioskService(cfg, with_link=False) as svc:
        svc.start_case(REF, LESION, "head/neck")
        assert svc.capture("dermoscopic").classification.risk == "cancer"
    cfg = config(tmp_path, thresholds={"cancer": 1.0, "pre-cancer": 1.0})
    with KioskService(cfg, with_link=False) as svc:
        svc.start_case(REF, LESION, "head/neck")
        assert svc.capture("dermoscopic").classification.risk == "benign"


def test_disk_full_refuses_keeps_the_queue_and_the_open_case(tmp_path):
    with KioskService(config(tmp_path), with_link=False) as svc:
        first = svc.capture_case(REF, LESION, "head/neck", ["dermoscopic"])
        svc.start_case(REF, "L2", "head/neck")
        svc.capture("dermoscopic")
        svc.outbox.min_free_bytes = svc.outbox.free_bytes() + (1 << 30)
        with pytest.raises(DiskFullError, match="Storage is full"):
            svc.submit(allow_failed_quality=True)
        assert svc.draft is not None                      # nothing lost: retry when space returns
        assert svc.outbox.counts()["queued"] == 1
        assert decode_case(svc.outbox.payload(str(first.case_id)))[0].case_id == first.case_id
        svc.outbox.min_free_bytes = 0
        svc.submit(allow_failed_quality=True)
        assert svc.outbox.counts()["queued"] == 2


def test_camera_failure_at_start_stops_what_was_started(tmp_path):
    cfg = config(tmp_path, camera={"source": "opencv", "opencv": {"device": str(tmp_path / "no-such-video")}})
    svc = KioskService(cfg)
    with pytest.raises(Exception):
        svc.start()
    assert svc._started == [] and svc.link is None            # the link never started
    with pytest.raises(Exception):
        svc.outbox.counts()                                    # the outbox was closed again


def test_logs_never_contain_patient_identifiers(tmp_path, broker, caplog):
    caplog.set_level(logging.DEBUG)
    cfg = config(tmp_path, broker={"url": broker.url})
    with KioskService(cfg) as svc:
        header = svc.capture_case(REF, LESION, "palms/soles", ["dermoscopic", "regional"])
        svc.start_case(REF, LESION, "head/neck")
        svc.discard()
        deadline = time.monotonic() + 10
        while svc.outbox.get(str(header.case_id)).state != "sent" and time.monotonic() < deadline:
            time.sleep(0.05)
        assert svc.outbox.get(str(header.case_id)).state == "sent"   # no centre here: sent, not deleted
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert str(header.case_id) in text                                # the case id is logged
    assert REF not in text and LESION not in text
