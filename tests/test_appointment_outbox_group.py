"""The outbox stores a referral's cases as one group: all of them or none, and each group key once."""

from __future__ import annotations

import os
import uuid
from datetime import datetime, timezone

import pytest

from edge.camera.synth import encode_jpeg, lesion_image
from edge.outbox import DuplicateGroupError, Outbox
from tests.appointment_kit import synthetic_nhs_number
from wire.codec import decode_case, sha256_hex
from wire.messages import Quality
from wire.referral import (BodyLocation, CaseHeaderV2, ConsentRecord, Consents, Lesion, Patient, Referral,
                           ShotMeta)


def case(referral_id, index: int, count: int, jpegs: list[bytes], case_id=None) -> CaseHeaderV2:
    """A v2 case of lesion ``index`` of ``count`` with these images (dermoscopic first)."""
    now = datetime.now(timezone.utc)
    consent = ConsentRecord(given=True, at=now, by="ph-alex")
    views = ["dermoscopic", "close-up", "regional"]
    return CaseHeaderV2(
        case_id=case_id or uuid.uuid4(),
        referral=Referral(referral_id=referral_id, reference="123456789012", reference_kind="ubrn",
                          referral_date="2026-11-20", practice_ods="A81001", route="gp-referral", lesion_count=count),
        patient=Patient(nhs_number=synthetic_nhs_number(), date_of_birth="1950-02-01", sex="male", fitzpatrick="II"),
        consents=Consents(photography=consent, ai_analysis=consent, teaching=consent), photographer="ph-alex",
        lesion=Lesion(index=index, label=f"L{index}", location=BodyLocation(site="head/neck", laterality="left")),
        site="hub-t", device_id="kiosk-t", created_at=now, seq=0, software_version="t", model_version="m",
        images=[ShotMeta(view=views[i], captured_at=now, sha256=sha256_hex(j), length=len(j), width=64, height=48,
                         quality=Quality(ok=True)) for i, j in enumerate(jpegs)],
        ai="failed")


def jpeg(seed: int) -> bytes:
    return encode_jpeg(lesion_image(64, 48, seed=seed))


def test_a_group_is_stored_whole_queued_and_in_order(tmp_path):
    rid = uuid.uuid4()
    with Outbox(tmp_path / "ob", min_free_bytes=0) as ob:
        group = [(case(rid, 1, 2, [jpeg(1), jpeg(2)]), [jpeg(1), jpeg(2)]), (case(rid, 2, 2, [jpeg(3)]), [jpeg(3)])]
        stored = ob.add_group(group, group_key="k" * 64, group_id=str(rid))
        assert [h.seq for h in stored] == [1, 2] and ob.counts()["queued"] == 2
        back, images = decode_case(ob.payload(str(stored[1].case_id)))
        assert back == stored[1] and images == [jpeg(3)]
        assert ob.group_submitted_at("k" * 64) is not None and ob.group_submitted_at("x" * 64) is None
        # the same key again: refused, nothing stored
        again = [(case(rid, 1, 1, [jpeg(4)]), [jpeg(4)])]
        with pytest.raises(DuplicateGroupError):
            ob.add_group(again, group_key="k" * 64)
        assert ob.counts()["queued"] == 2 and not ob.image_path(sha256_hex(jpeg(4))).exists()


def test_a_group_that_fails_part_way_stores_nothing_and_leaves_no_file(tmp_path):
    rid = uuid.uuid4()
    with Outbox(tmp_path / "ob", min_free_bytes=0) as ob:
        [first] = ob.add_group([(case(rid, 1, 1, [jpeg(1)]), [jpeg(1)])])
        files_before = sorted(os.listdir(ob.images_dir))
        # lesion 2's case reuses a stored case id: its row fails after lesion 1's row was written
        bad = [(case(rid, 1, 2, [jpeg(5)]), [jpeg(5)]), (case(rid, 2, 2, [jpeg(6)], case_id=first.case_id), [jpeg(6)])]
        with pytest.raises(Exception, match="UNIQUE"):
            ob.add_group(bad, group_key="g" * 64)
        assert ob.counts()["queued"] == 1 and len(ob.cases()) == 1
        assert sorted(os.listdir(ob.images_dir)) == files_before
        assert ob.group_submitted_at("g" * 64) is None           # the key was rolled back too
        # and the images must match their headers before anything is written
        with pytest.raises(ValueError, match="does not match"):
            ob.add_group([(case(rid, 1, 1, [jpeg(7)]), [jpeg(8)])])
        assert sorted(os.listdir(ob.images_dir)) == files_before
