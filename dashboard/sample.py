"""Synthetic cases built with the real wire contract, for tests, benchmarks and demo seeding.

The JPEGs are generated (a skin-toned field with a brown, irregular blob), so
nothing here derives from patient data.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

import cv2
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
        q = Quality(ok=True, checks={
            "sharpness": QualityCheck(value=round(120.0 + seed % 50, 1), ok=True, message="sharp"),
            "exposure": QualityCheck(value=0.52, ok=True, message="well exposed"),
        })
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
