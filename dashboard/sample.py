"""Synthetic cases built with the real wire contract, for tests, benchmarks and demo seeding.

The JPEGs are generated (a skin-toned field with a brown, irregular blob), so
nothing here derives from patient data. Version-2 cases (:func:`make_referral`)
carry synthetic NHS numbers only: from the range the NHS set aside for tests
(``nhs_number.REGION_SYNTHETIC``: 900 000 0000 - 999 999 9999), never issued to anyone.
"""

from __future__ import annotations

import random
import uuid
from datetime import date, datetime, timedelta, timezone

import cv2
import nhs_number
import numpy as np

from wire import codec
from wire.messages import LABELS, Classification, CaseHeader, ImageMeta, Quality, QualityCheck, TIER_OF_LABEL

_TIER_THRESHOLDS = {"cancer": 0.3, "pre-cancer": 0.4}


def make_jpeg(seed: int = 0, width: int = 640, height: int = 480, quality: int = 90, noise: float = 6.0) -> bytes:
    """A lesion-like JPEG: skin background, a dark irregular blob, some texture; same seed, same bytes."""
    rng = np.random.default_rng(seed)
    img = np.empty((height, width, 3), np.float32)
    img[:] = (150 + rng.integers(-15, 15), 170 + rng.integers(-15, 15), 215 + rng.integers(-15, 10))  # BGR skin
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    cx, cy = width * rng.uniform(0.4, 0.6), height * rng.uniform(0.4, 0.6)
    ang = np.arctan2(yy - cy, xx - cx)
    r = min(width, height) * rng.uniform(0.18, 0.3)
    wobble = 1 + 0.15 * np.sin(3 * ang + rng.uniform(0, 6)) + 0.08 * np.sin(7 * ang + rng.uniform(0, 6))
    dist = np.hypot(xx - cx, yy - cy) / (r * wobble)
    blob = np.clip(1.2 - dist, 0, 1)[..., None]
    lesion = np.array([40 + rng.integers(0, 30), 60 + rng.integers(0, 30), 100 + rng.integers(0, 40)], np.float32)
    img = img * (1 - blob) + lesion * blob
    img += rng.normal(0, noise, img.shape).astype(np.float32)
    ok, buf = cv2.imencode(".jpg", np.clip(img, 0, 255).astype(np.uint8), [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    return buf.tobytes()


def make_jpeg_of_size(target_bytes: int, seed: int = 0) -> bytes:
    """A generated JPEG close to ``target_bytes`` long (texture grows until the size is reached)."""
    width, height = 1600, 1200
    noise = 4.0
    data = make_jpeg(seed, width, height, 92, noise)
    while len(data) < target_bytes * 0.95 and noise < 200:
        noise *= 1.15 if len(data) > target_bytes * 0.7 else 1.6
        data = make_jpeg(seed, width, height, 92, noise)
    return data


def make_classification(seed: int = 0, model: str = "lesion-test-1") -> Classification:
    """Plausible classifier output with the contract's labels and risk tiers."""
    rng = np.random.default_rng(seed)
    p = rng.dirichlet(np.ones(len(LABELS)) * 0.6)
    probs = {lab: round(float(v), 4) for lab, v in zip(LABELS, p)}
    risk = "benign"
    for tier in ("cancer", "pre-cancer"):
        if sum(v for lab, v in probs.items() if TIER_OF_LABEL[lab] == tier) >= _TIER_THRESHOLDS[tier]:
            risk = tier
            break
    return Classification(probabilities=probs, risk=risk, model=model)


#: What the kiosk's quality gate says of a blurred still (``edge.quality.MESSAGES["focus"]`` at a sharpness of
#: 12 % against the default limit 35 %): the sample cases carry the gate's own check names and words, as real
#: ones do (``tests/test_quality_words.py`` holds the two together).
BLURRED = ("Image is blurred (sharpness 12% of this kiosk's normal, needs 35%): hold the dermatoscope still, check "
           "the focus and tap again")


def gate_result(blurred: bool, sharpness: float = 0.94) -> Quality:
    """A dermoscopic quality result as the kiosk's gate sends it: every check passed, or focus failed (blurred)."""
    checks = {"fov": QualityCheck(value=1.0, ok=True, message="ok"),
              "focus": QualityCheck(value=0.12, ok=False, message=BLURRED) if blurred
              else QualityCheck(value=sharpness, ok=True, message="ok"),
              "shake": QualityCheck(value=0.82, ok=True, message="ok"),
              "exposure": QualityCheck(value=212.0, ok=True, message="ok"),
              "clipping": QualityCheck(value=0.0, ok=True, message="ok"),
              "glare": QualityCheck(value=0.0012, ok=True, message="ok"),
              "colour": QualityCheck(value=1.4, ok=True, message="ok"),
              "lesion": QualityCheck(value=0.08, ok=True, message="ok"),
              "framing": QualityCheck(value=0.0, ok=True, message="ok")}
    return Quality(ok=not blurred, checks=checks)


def make_case(seed: int = 0, *, site: str = "site-1", device: str = "kiosk-1", n_images: int = 2,
              images: list[bytes] | None = None, seq: int | None = None,
              case_id: uuid.UUID | None = None) -> tuple[CaseHeader, list[bytes]]:
    """A complete, valid case header and its JPEG bytes (generated unless ``images`` is given)."""
    if images is None:
        images = [make_jpeg(seed * 31 + i) for i in range(n_images)]
    views = ("dermoscopic", "close-up", "regional")
    t0 = datetime(2026, 1, 1, tzinfo=timezone.utc) + timedelta(minutes=seed)
    metas = []
    for i, data in enumerate(images):
        arr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        h, w = arr.shape[:2] if arr is not None else (480, 640)
        q = gate_result(False, sharpness=round(0.8 + (seed % 50) / 100, 2))
        metas.append(ImageMeta(view=views[i % 3], captured_at=t0 + timedelta(seconds=i), sha256=codec.sha256_hex(data),
                               length=len(data), width=w, height=h, quality=q,
                               classification=make_classification(seed * 7 + i) if i == 0 else None))
    header = CaseHeader(
        case_id=case_id or uuid.uuid5(uuid.NAMESPACE_URL, f"dermkiosk-sample-case-{seed}"),
        referral_ref=f"REF{seed:06d}", lesion_id=f"L{seed % 9 + 1}", body_site="posterior torso",
        site=site, device_id=device, created_at=t0, seq=seed if seq is None else seq,
        software_version="0.1.0", model_version="lesion-test-1",
        images=metas, classification=metas[0].classification,
    )
    return header, images


def make_frame(seed: int = 0, **kw) -> tuple[CaseHeader, bytes]:
    """A case as the kiosk would publish it: its header and the encoded frame."""
    header, images = make_case(seed, **kw)
    return header, codec.encode_case(header, images)


def synthetic_nhs_number(seed: int) -> str:
    """A valid NHS number from the synthetic (never issued) range; the same seed gives the same number."""
    state = random.getstate()  # nhs-number draws from the module-level generator
    try:
        random.seed(f"dermkiosk-nhs-{seed}")
        return nhs_number.generate(for_region=nhs_number.REGION_SYNTHETIC)[0]
    finally:
        random.setstate(state)


#: Lesions the samples cycle through: (ISIC site, laterality, finer label, size in mm).
SAMPLE_LESIONS = (("posterior torso", "left", "left scapula", 7.0), ("upper extremity", "right", "right forearm", 4.5),
                  ("head/neck", "midline", "forehead", None), ("lower extremity", "left", "left shin", 12.0),
                  ("anterior torso", "right", "right upper chest", 5.0))


def make_referral(seed: int = 0, *, lesions: int = 1, site: str = "site-1", device: str = "kiosk-1",
                  fitzpatrick: str = "II", ai: bool = True, override: bool = False, seq: int | None = None,
                  nhs: str | None = None, reference: str | None = None, photographer: str = "ph.demo",
                  images_per_lesion: int = 3, taken_at: datetime | None = None, referred_days_before: int = 12):
    """A whole v2 referral: one ``(CaseHeaderV2, images)`` per lesion, all sharing the referral and patient.

    ``ai=False``: the patient refused AI analysis (no classification, ``ai="declined"``);
    ``override=True``: the first lesion's close-up failed the quality gate and was sent with a reason.
    ``taken_at``: when the kiosk photographed it (default a fixed day, so that tests are reproducible);
    the referral is dated ``referred_days_before`` days earlier.
    """
    from wire.referral import (BodyLocation, CaseHeaderV2, ConsentRecord, Consents, History, Lesion, Override,
                               Patient, Referral, ShotMeta)

    rng = np.random.default_rng(seed)
    t0 = taken_at or datetime(2026, 1, 5, 9, tzinfo=timezone.utc) + timedelta(hours=seed)
    ref = reference or f"{100000000000 + seed * 7919:012d}"
    referral = Referral(referral_id=uuid.uuid5(uuid.NAMESPACE_URL, f"dermkiosk-sample-referral-{seed}"),
                        reference=ref, reference_kind="ubrn" if ref.isdigit() else "local",
                        referral_date=(t0 - timedelta(days=referred_days_before)).date(), practice_ods=f"A8{1000 + seed % 9000:04d}",
                        route="gp-referral" if seed % 4 else "direct-to-hub", lesion_count=lesions)
    patient = Patient(nhs_number=nhs or synthetic_nhs_number(seed),
                      date_of_birth=date(1940 + seed % 60, 1 + seed % 12, 1 + seed % 28),
                      sex=("female", "male")[seed % 2], fitzpatrick=fitzpatrick)
    consents = Consents(photography=ConsentRecord(given=True, at=t0, by=photographer),
                        ai_analysis=ConsentRecord(given=ai, at=t0 + timedelta(seconds=20), by=photographer),
                        teaching=ConsentRecord(given=bool(seed % 2), at=t0 + timedelta(seconds=40), by=photographer))
    views = ("dermoscopic", "close-up", "regional")
    out = []
    for n in range(1, lesions + 1):
        where, side, detail, size = SAMPLE_LESIONS[(seed + n - 1) % len(SAMPLE_LESIONS)]
        history = History(changed=bool(rng.integers(0, 2)), bleeding=False, itching=bool(rng.integers(0, 2)),
                          new=n == 1, duration=("1-3-months", "3-12-months", "over-1-year")[(seed + n) % 3],
                          checklist={"change_in_size": n == 1, "irregular_shape": bool(seed % 2),
                                     "irregular_colour": False, "diameter_7mm": bool(size and size >= 7)})
        lesion = Lesion(index=n, label=f"L{n}", location=BodyLocation(site=where, laterality=side, detail=detail,
                                                                      map_side="back" if "posterior" in where else
                                                                      "front", map_x=0.4, map_y=0.3 + 0.1 * n),
                        size_mm=size, history=history)
        images = [make_jpeg(seed * 131 + n * 11 + i) for i in range(images_per_lesion)]
        t = t0 + timedelta(minutes=5 * n)
        metas = []
        for i, data in enumerate(images):
            failed = override and n == 1 and views[i % 3] == "close-up"
            q = gate_result(failed)
            ov = Override(reason="patient-could-not-stay-still", by=photographer, at=t + timedelta(seconds=i)) \
                if failed else None
            metas.append(ShotMeta(view=views[i % 3], captured_at=t + timedelta(seconds=i),
                                  sha256=codec.sha256_hex(data), length=len(data), width=640, height=480, quality=q,
                                  classification=make_classification(seed * 7 + n) if ai and i == 0 else None,
                                  shot=2 if failed else 1, override=ov))
        out.append((CaseHeaderV2(
            case_id=uuid.uuid5(uuid.NAMESPACE_URL, f"dermkiosk-sample-referral-{seed}-lesion-{n}"),
            referral=referral, patient=patient, consents=consents, photographer=photographer, lesion=lesion,
            site=site, device_id=device, created_at=t, seq=(seed * 10 if seq is None else seq) + n - 1,
            software_version="0.2.0", model_version="lesion-test-1", images=metas,
            ai="done" if ai else "declined", classification=metas[0].classification), images))
    return out


def make_case_v2(seed: int = 0, **kw):
    """One v2 case (lesion 1 of a one-lesion referral) and its JPEG bytes; keywords as :func:`make_referral`."""
    return make_referral(seed, **kw)[0]
