"""All training sources together: reading, lesion-grouped splits, and a small packed copy for a GPU machine.

    python -m models.sources pack --data ../shared/data --out .devdata/pack.npz   # ~50 MB, never committed

``../shared/data`` holds ``ham10000/`` (one 224-px image per lesion) and ``isic-more/`` (the rest of
HAM10000 at 200x150, BCN20000 at 84x84, ISIC 2017 at 256x256, a few ISIC 2019 MSK images at 84x84;
the square ones squashed from their originals). :func:`read_sources` returns one :class:`Record` per
image with its source and lesion; :func:`split_grouped` splits by lesion, stratified by source and
diagnosis; :func:`pack` re-encodes every image small (WebP) into one ``.npz`` so that the whole set
travels to a GPU machine, and :func:`decode_pack` turns it back into a uint8 array there.

The pack holds the images themselves: it lives under ``.devdata/`` (git-ignored) and must never be
committed (the data's licences and the project's rules).
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from models.data import ALIASES, LABELS

#: Source names; ``ham10000`` covers both ``ham10000/`` and the HAM10000 images in ``isic-more/``.
SOURCES = ("ham10000", "isic2019-bcn", "isic2017", "isic2019-msk")
#: Sources whose images were squashed from a wider original to a square.
SQUASHED = ("isic2019-bcn", "isic2017", "isic2019-msk")
#: Leave-one-source-out folds: what is left out together (MSK's 133 images go with ISIC 2017's MSK ones).
LOSO_FOLDS = {"ham10000": ("ham10000",), "isic2019-bcn": ("isic2019-bcn",),
              "isic2017": ("isic2017", "isic2019-msk")}


@dataclass(frozen=True)
class Record:
    """One labelled image of one source."""

    path: Path
    isic_id: str
    label: int
    group: str
    source: str


def read_sources(root: Path | str) -> list[Record]:
    """Every usable image of ``root/ham10000`` and ``root/isic-more`` (sorted by id within each folder)."""
    root = Path(root)
    out = []
    for folder in ("ham10000", "isic-more"):
        with open(root / folder / "metadata.csv", newline="") as fh:
            for row in csv.DictReader(fh):
                code = ALIASES.get((row.get("diagnosis") or "").strip().lower())
                path = root / folder / "images" / f"{row['isic_id']}.jpg"
                if code is None or not path.exists():
                    continue
                out.append(Record(path, row["isic_id"], LABELS.index(code), row.get("lesion_id") or row["isic_id"],
                                  row.get("source") or "ham10000"))
    return out


def split_grouped(groups, labels, strata, fractions=(0.70, 0.15, 0.15), seed: int = 0) -> dict[str, np.ndarray]:
    """Split indices into train/val/test by group (a lesion's images on one side), stratified by ``strata``.

    ``strata`` (e.g. source) and the label of a group's first image define the stratum; within each
    the groups are ordered by a seeded hash, so the split is deterministic and independent of order.
    """
    first: dict[str, int] = {}
    members: dict[str, list[int]] = {}
    for i, g in enumerate(groups):
        first.setdefault(g, i)
        members.setdefault(g, []).append(i)
    by_stratum: dict[tuple, list[str]] = {}
    for g, i in first.items():
        by_stratum.setdefault((strata[i], int(labels[i])), []).append(g)
    out = {"train": [], "val": [], "test": []}
    for key in sorted(by_stratum):
        gs = sorted(by_stratum[key], key=lambda g: hashlib.sha256(f"{seed}:{g}".encode()).hexdigest())
        n = len(gs)
        n_val = round(n * fractions[1])
        n_test = round(n * fractions[2])
        if n >= 3:
            n_val, n_test = max(1, n_val), max(1, n_test)
        for name, sel in (("val", gs[:n_val]), ("test", gs[n_val:n_val + n_test]), ("train", gs[n_val + n_test:])):
            for g in sel:
                out[name].extend(members[g])
    return {k: np.array(sorted(v), dtype=np.int64) for k, v in out.items()}


def _encode(path: Path, source: str, max_side: int, quality: int) -> bytes:
    """The image re-encoded as WebP, its longer side at most ``max_side`` (aspect ratio kept)."""
    from PIL import Image

    with Image.open(path) as im:
        im = im.convert("RGB")
        w, h = im.size
        f = max_side / max(w, h)
        if f < 1:
            im = im.resize((max(1, round(w * f)), max(1, round(h * f))), Image.BOX)
        buf = io.BytesIO()
        im.save(buf, format="WEBP", quality=quality, method=6)
        return buf.getvalue()


def pack(data: Path, out: Path, max_side: int = 160, quality: int = 80, small_quality: int = 85,
         limit: int = 0, threads: int = 0) -> dict:
    """Write every image of ``read_sources(data)`` into ``out`` (.npz: bytes, offsets, metadata).

    Images of 84 px keep their size (``small_quality``); larger ones are shrunk to ``max_side``.
    """
    recs = read_sources(data)
    if limit:
        recs = [recs[i] for i in np.random.default_rng(0).choice(len(recs), limit, replace=False)]

    def enc(r: Record) -> bytes:
        return _encode(r.path, r.source, max_side, small_quality if r.source in ("isic2019-bcn", "isic2019-msk")
                       else quality)

    with ThreadPoolExecutor(threads or os.cpu_count() or 2) as ex:
        blobs = list(ex.map(enc, recs))
    offsets = np.cumsum([0] + [len(b) for b in blobs]).astype(np.int64)
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez(out, data=np.frombuffer(b"".join(blobs), np.uint8), offsets=offsets,
             isic_id=np.array([r.isic_id for r in recs]), label=np.array([r.label for r in recs], np.int64),
             group=np.array([r.group for r in recs]), source=np.array([r.source for r in recs]),
             labels=np.array(LABELS))
    by_src = {s: int(sum(len(b) for b, r in zip(blobs, recs) if r.source == s)) for s in SOURCES}
    return {"images": len(recs), "bytes": int(offsets[-1]), "bytes_by_source": by_src}


def to_square(rgb: np.ndarray, source: str, size: int) -> np.ndarray:
    """A packed image as the training canvas: ``size`` x ``size`` RGB.

    Wider-than-square images (HAM10000's 4:3) give their centre square, as the kiosk's frames do;
    the square (squashed) ones are kept whole, their aspect left to the training augmentation
    (random anisotropic scaling) rather than guessed.
    """
    return to_canvas(rgb, size)


def to_canvas(rgb: np.ndarray, size: int, box=None, colour: str = "none") -> np.ndarray:
    """An RGB image as the model's ``size`` x ``size`` canvas, the kiosk's way (``edge.classifier``).

    ``box`` (x0, y0, side): the square to take, e.g. the kiosk's lesion square
    (``edge.classifier.lesion_square``, stored per pack image by ``models.canvas boxes``); None: the
    centre square. Then the kiosk's resize (area down, bilinear up) and its colour constancy
    (``edge.colour.apply_colour``: ``none`` or ``shades-of-gray``), the same functions in the same order.
    """
    import cv2

    from edge.colour import apply_colour

    h, w = rgb.shape[:2]
    if box is None:
        s = min(h, w)
        box = ((w - s) // 2, (h - s) // 2, s)
    x0, y0, s = (int(v) for v in box)
    if not (s > 0 and 0 <= x0 and 0 <= y0 and x0 + s <= w and y0 + s <= h):
        raise ValueError(f"crop box {box} does not lie inside a {w}x{h} image")
    sq = rgb[y0:y0 + s, x0:x0 + s]
    if s != size:
        sq = cv2.resize(sq, (size, size), interpolation=cv2.INTER_AREA if s > size else cv2.INTER_LINEAR)
    return np.ascontiguousarray(apply_colour(np.ascontiguousarray(sq), colour))


def pack_meta(path: Path | str) -> dict:
    """The metadata arrays of a pack (isic_id, label, group, source, labels), without decoding images."""
    z = np.load(path)
    return {k: z[k] for k in ("isic_id", "label", "group", "source", "labels")}


def decode_pack(path: Path | str, size: int, threads: int = 0, indices=None, boxes=None,
                colour: str = "none") -> tuple[np.ndarray, dict]:
    """Decode a pack (or only its images at ``indices``) into uint8 (N, size, size, 3) RGB, and its metadata.

    ``boxes``: (N_pack, 3) squares (x0, y0, side) per pack image (``models.canvas.load_boxes``), else
    the centre square; ``colour``: the colour constancy of :func:`to_canvas`.
    """
    import cv2

    z = np.load(path)
    data, off = z["data"], z["offsets"]
    meta = {k: z[k] for k in ("isic_id", "label", "group", "source", "labels")}
    idx = np.arange(len(off) - 1) if indices is None else np.asarray(indices)
    out = np.empty((len(idx), size, size, 3), np.uint8)

    def dec(j: int) -> None:
        i = idx[j]
        bgr = cv2.imdecode(data[off[i]:off[i + 1]], cv2.IMREAD_COLOR)
        out[j] = to_canvas(bgr[:, :, ::-1], size, None if boxes is None else boxes[i], colour)

    cv2.setNumThreads(1)
    with ThreadPoolExecutor(threads or os.cpu_count() or 2) as ex:
        list(ex.map(dec, range(len(idx))))
    return out, meta


def pack_training_images(path: Path | str, n: int, seed: int, size: int, crop: str = "centre",
                         colour: str = "none", boxes: Path | str = ".devdata/lesion_boxes.npz") -> np.ndarray:
    """``n`` canvases (uint8 NHWC RGB) drawn (seeded) from the lesion-grouped training split of a pack.

    ``crop`` (centre or lesion: the squares in ``boxes``) and ``colour``: the model's canvas.
    """
    m = pack_meta(path)
    train = split_grouped(m["group"].astype(str), m["label"], m["source"].astype(str), seed=0)["train"]
    pick = np.sort(np.random.default_rng(seed).choice(train, size=min(n, len(train)), replace=False))
    box = None
    if crop == "lesion":
        from models.canvas import load_boxes

        box = load_boxes(boxes, m["isic_id"])
    return decode_pack(path, size, indices=pick, boxes=box, colour=colour)[0]


def main(argv=None) -> None:
    """CLI: ``pack``."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    pk = sub.add_parser("pack", help="re-encode every image into one .npz for a GPU machine")
    pk.add_argument("--data", default="../shared/data")
    pk.add_argument("--out", default=".devdata/pack.npz")
    pk.add_argument("--max-side", type=int, default=160)
    pk.add_argument("--quality", type=int, default=80)
    pk.add_argument("--small-quality", type=int, default=85)
    pk.add_argument("--limit", type=int, default=0)
    a = p.parse_args(argv)
    if a.cmd == "pack":
        print(pack(Path(a.data), Path(a.out), a.max_side, a.quality, a.small_quality, a.limit))


if __name__ == "__main__":
    main()
