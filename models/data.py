"""Reading an ISIC-format folder and splitting it by lesion.

An ISIC-format folder is what an ISIC Archive download made with isic-cli
looks like: ``images/<isic_id>.jpg`` and ``metadata.csv`` with at least the
columns ``isic_id`` and ``diagnosis`` (HAM10000 codes or ISIC's names, mapped
below), optionally ``lesion_id`` so that all images of a lesion land in the
same split.
"""

from __future__ import annotations

import csv
import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

LABELS = ("akiec", "bcc", "bkl", "df", "mel", "nv", "scc", "vasc")
#: The labels of the first model (HAM10000 alone: no ``scc``; ISIC's SCC was folded into ``akiec``).
LABELS_V1 = ("akiec", "bcc", "bkl", "df", "mel", "nv", "vasc")

#: ISIC Archive diagnosis names (and common synonyms) -> HAM10000 codes.
ALIASES = {
    "actinic keratosis": "akiec", "ak": "akiec", "akiec": "akiec",
    "bowen's disease": "akiec",
    "squamous cell carcinoma": "scc", "scc": "scc",
    "basal cell carcinoma": "bcc", "bcc": "bcc",
    "seborrheic keratosis": "bkl", "solar lentigo": "bkl", "lichenoid keratosis": "bkl",
    "pigmented benign keratosis": "bkl", "bkl": "bkl",
    "dermatofibroma": "df", "df": "df",
    "melanoma": "mel", "mel": "mel",
    "nevus": "nv", "nv": "nv",
    "vascular lesion": "vasc", "vasc": "vasc",
}


@dataclass(frozen=True)
class Item:
    """One labelled image."""

    path: Path
    label: int
    group: str


def read_isic_folder(root: Path | str) -> list[Item]:
    """Read ``root/metadata.csv`` and ``root/images/``; skip rows with an unknown diagnosis or no image."""
    root = Path(root)
    items = []
    with open(root / "metadata.csv", newline="") as fh:
        for row in csv.DictReader(fh):
            dx = (row.get("diagnosis") or row.get("diagnosis_1") or row.get("dx") or "").strip().lower()
            code = ALIASES.get(dx)
            path = root / "images" / f"{row['isic_id']}.jpg"
            if code is None or not path.exists():
                continue
            items.append(Item(path, LABELS.index(code), row.get("lesion_id") or row["isic_id"]))
    if not items:
        raise SystemExit(f"{root}: no usable images (need images/<isic_id>.jpg and metadata.csv)")
    return items


def split(items: list[Item], fractions=(0.70, 0.15, 0.15), seed: int = 0) -> dict[str, list[int]]:
    """Stratified split by lesion group into train/val/test index lists (deterministic for a seed)."""
    groups: dict[str, list[int]] = {}
    for i, it in enumerate(items):
        groups.setdefault(it.group, []).append(i)
    by_label: dict[int, list[str]] = {}
    for g, idx in groups.items():
        # a lesion's label: its most severe image label is rare; take the first image's label
        by_label.setdefault(items[idx[0]].label, []).append(g)
    out = {"train": [], "val": [], "test": []}
    for lab, gs in sorted(by_label.items()):
        gs = sorted(gs, key=lambda g: hashlib.sha256(f"{seed}:{g}".encode()).hexdigest())
        n = len(gs)
        n_val = max(1, round(n * fractions[1]))
        n_test = max(1, round(n * fractions[2]))
        parts = {"val": gs[:n_val], "test": gs[n_val:n_val + n_test], "train": gs[n_val + n_test:]}
        for name, sel in parts.items():
            for g in sel:
                out[name].extend(groups[g])
    return {k: sorted(v) for k, v in out.items()}


def load_rgb(path: Path, size: int) -> np.ndarray:
    """Decode an image to RGB uint8 ``size`` x ``size`` (centre square, area-resized)."""
    from PIL import Image

    with Image.open(path) as im:
        im = im.convert("RGB")
        w, h = im.size
        s = min(w, h)
        im = im.crop(((w - s) // 2, (h - s) // 2, (w - s) // 2 + s, (h - s) // 2 + s))
        if s != size:
            im = im.resize((size, size), Image.BILINEAR if s < size else Image.BOX)
        return np.asarray(im, dtype=np.uint8)


def jpeg(rgb: np.ndarray, quality: int) -> np.ndarray:
    """Re-encode a uint8 RGB image as JPEG at ``quality`` (OpenCV/libjpeg, 4:2:0 chroma) and decode it again."""
    import cv2

    ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(rgb[:, :, ::-1]), [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return np.ascontiguousarray(cv2.imdecode(buf, cv2.IMREAD_COLOR)[:, :, ::-1])


def jpeg_roundtrip(images: np.ndarray, rng: np.random.Generator, p: float,
                   quality: tuple[int, int] = (30, 90)) -> np.ndarray:
    """Re-encode each of a batch of uint8 RGB images (N, H, W, 3) as JPEG with probability ``p``.

    Training augmentation for images that reach the model from other sources after a second,
    stronger compression (quality drawn uniformly from ``quality``); the shipped model, trained
    without it, loses melanoma AUC 0.10 at quality 40 (models/lesion/report/robustness.md).
    Returns a new array; the others are copied unchanged.
    """
    out = images.copy()
    for i in np.flatnonzero(rng.random(len(images)) < p):
        out[i] = jpeg(images[i], int(rng.integers(quality[0], quality[1] + 1)))
    return out
