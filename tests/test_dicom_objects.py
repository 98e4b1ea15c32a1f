"""DICOM objects of a signed referral (dashboard.dicom): every object passes dciodvfy (dicom3tools) without
errors; the right SOP class per view; the kiosk's JPEG carried byte for byte; patient, study, series, coded
anatomy and equipment as the issue says; UIDs (and whole files) the same on a second export."""

from __future__ import annotations

import hashlib
import subprocess

import cv2
import numpy as np
import pydicom
import pytest
from pydicom.encaps import generate_fragmented_frames

from dashboard import dicom
from dashboard.dicom import codes, jpeg
from dashboard.exportfacts import ExportRefused, export_facts
from isic_metadata.fields import AnatomSiteGeneralEnum
from tests.hospital_kit import open_store, signed_referral


@pytest.fixture
def store(tmp_path):
    s = open_store(tmp_path)
    yield s
    s.close()


def frame_bytes(ds) -> bytes:
    return b"".join(next(generate_fragmented_frames(ds.PixelData)))


def unpadded(frame: bytes) -> bytes:
    """The JPEG stream of a frame: DICOM pads an odd-length fragment with one 0x00 after the EOI marker."""
    return frame[:-1] if frame.endswith(b"\xff\xd9\x00") else frame


def test_every_object_passes_dciodvfy_without_errors(store, tmp_path):
    key, cases = signed_referral(store, seed=41, lesions=2)
    paths = dicom.write_referral(dicom.build_referral(export_facts(store.conn, store.images_dir, key)), tmp_path / "o")
    assert len(paths) == 6
    for path in paths:
        r = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True, timeout=60)
        errors = [line for line in (r.stdout + r.stderr).splitlines() if line.startswith("Error")]
        assert errors == [], f"{path.name}: {errors}"
        assert "DermoscopicPhotographyImage" in r.stderr or "VLPhotographicImage" in r.stderr


def test_objects_carry_the_referral_and_the_jpeg_unchanged(store, tmp_path):
    key, cases = signed_referral(store, seed=42, lesions=2)
    facts = export_facts(store.conn, store.images_dir, key)
    paths = dicom.write_referral(dicom.build_referral(facts), tmp_path / "o")
    objs = [pydicom.dcmread(p) for p in paths]
    header, images = cases[0]
    study = {ds.StudyInstanceUID for ds in objs}
    assert len(study) == 1
    assert len({ds.SeriesInstanceUID for ds in objs}) == 6  # one series per lesion and view
    by_sha = {}
    for (h, ims) in cases:
        for meta, data in zip(h.images, ims):
            by_sha[meta.sha256] = (h, meta, data)
    seen = set()
    for ds in objs:
        assert ds.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.4.50"  # JPEG Baseline
        assert ds.PhotometricInterpretation == "YBR_FULL_422" and ds.SamplesPerPixel == 3
        data = unpadded(frame_bytes(ds))
        h, meta, original = by_sha[hashlib.sha256(data).hexdigest()]
        assert data == original  # byte for byte: no re-encoding
        seen.add(meta.sha256)
        if meta.view == "dermoscopic":
            assert (ds.SOPClassUID, ds.Modality) == ("1.2.840.10008.5.1.4.1.1.77.1.7", "DMS")
        else:
            assert (ds.SOPClassUID, ds.Modality) == ("1.2.840.10008.5.1.4.1.1.77.1.4", "XC")
        assert ds.PatientID == h.patient.nhs_number and ds.IssuerOfPatientID == "NHS"
        assert ds.IssuerOfPatientIDQualifiersSequence[0].UniversalEntityID == "2.16.840.1.113883.2.1.4.1"
        assert ds.PatientBirthDate == h.patient.date_of_birth.strftime("%Y%m%d")
        assert ds.PatientSex == {"female": "F", "male": "M"}[h.patient.sex]
        assert str(ds.PatientName) == ""  # the kiosk captures no name
        assert ds.AccessionNumber == h.referral.reference
        assert ds.StudyDate == h.referral.referral_date.strftime("%Y%m%d")
        who = ds.ReferringPhysicianIdentificationSequence[0]
        assert who.PersonIdentificationCodeSequence[0].CodeValue == h.referral.practice_ods
        region, modifier = codes.site_code(h.lesion.location.site, h.lesion.location.detail)
        assert ds.AnatomicRegionSequence[0].CodeValue == region[0]
        assert ds.ImageLaterality == codes.IMAGE_LATERALITY[h.lesion.location.laterality]
        assert ds.AcquisitionDateTime.startswith(meta.captured_at.strftime("%Y%m%d%H%M%S"))
        assert (ds.Manufacturer, ds.DeviceSerialNumber, ds.SoftwareVersions) == ("DermKiosk", h.device_id,
                                                                                 h.software_version)
        assert h.patient.nhs_number not in ds.SOPInstanceUID + ds.StudyInstanceUID
    assert seen == set(by_sha)


def test_a_second_export_is_identical(store, tmp_path):
    key, _ = signed_referral(store, seed=43, lesions=1)
    first = dicom.write_referral(dicom.build_referral(export_facts(store.conn, store.images_dir, key)), tmp_path / "a")
    second = dicom.write_referral(dicom.build_referral(export_facts(store.conn, store.images_dir, key)),
                                  tmp_path / "b")
    assert [p.name for p in first] == [p.name for p in second]
    assert [p.read_bytes() for p in first] == [p.read_bytes() for p in second]
    # a different referral gets different UIDs
    other, _ = signed_referral(store, seed=44, lesions=1)
    third = dicom.write_referral(dicom.build_referral(export_facts(store.conn, store.images_dir, other)),
                                 tmp_path / "c")
    assert not {p.name for p in first} & {p.name for p in third}


def test_unsigned_and_unknown_referrals_are_refused(store):
    from dashboard import sample
    cases = sample.make_referral(45, lesions=1)
    store.save_case(*cases[0])
    with pytest.raises(ExportRefused, match="not signed off yet"):
        export_facts(store.conn, store.images_dir, str(cases[0][0].referral.referral_id))
    with pytest.raises(ExportRefused, match="no referral"):
        export_facts(store.conn, store.images_dir, "6f1c2a52-59b8-4f7e-9d8e-2f1f0b0f6a11")


def test_every_isic_site_has_a_snomed_code_and_joined_regions_are_refined():
    for site in AnatomSiteGeneralEnum:
        region, _ = codes.site_code(site.value)
        assert region[1] == "SCT" and region[0].isdigit()
    assert codes.site_code("palms/soles", "left palm")[0][2] == "Skin of palm of hand"
    assert codes.site_code("palms/soles", "right heel")[0][2] == "Skin of foot"
    assert codes.site_code("palms/soles", "")[0] == codes.SKIN
    assert codes.site_code("lateral torso")[1][2] == "Lateral"
    with pytest.raises(ValueError, match="no SNOMED CT code"):
        codes.site_code("elbow")


def test_jpeg_that_dicom_cannot_carry_unchanged_is_refused():
    img = np.full((64, 64, 3), 128, np.uint8)
    ok, prog = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_PROGRESSIVE, 1])
    with pytest.raises(jpeg.JpegError, match="progressive"):
        jpeg.inspect(prog.tobytes())
    ok, grey = cv2.imencode(".jpg", img[:, :, 0])
    assert jpeg.inspect(grey.tobytes()).photometric == "MONOCHROME2"
    with pytest.raises(jpeg.JpegError, match="not a JPEG"):
        jpeg.inspect(b"\x89PNG....")
