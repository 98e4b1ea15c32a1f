"""The image sources the quality gate is measured on, each split into a fit part and a score part.

    from bench.quality_sources import SOURCES, load_source

Sources (``../shared/data``, see its README): ``ph2`` (PH2, 765x572 full frames, lesion masks),
``isic2017`` (``isic-more`` rows of source isic2017, 256x256 squashed from about 4:3),
``ham10000-masks`` (600x450 HAM10000 originals with the 150 expert masks) and ``ham10000``
(224x224 centre squares). Each image is brought to a kiosk-like still: the long side 1600 px,
a squashed square unsquashed to 4:3, a centre square kept square.

Any other clinic's photographs can be measured the same way: ``folder:PATH`` names a folder of image files
(``folder_items``), each kept at its own shape, with a lesion mask where one lies beside it (``FOLDER_MASKS``).

The split into ``fit`` (reference colour, thresholds) and ``score`` (every figure printed) is by
a hash of the image id, so it does not move with the evaluation's seed or with the folder's
order: a figure on ``score`` never saw its images while anything was fitted.
Nothing here writes images or anything derived from them.
"""

from __future__ import annotations

import csv
import hashlib
import random
from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

DEFAULT_DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
SOURCES = ("ph2", "isic2017", "ham10000-masks", "ham10000")
#: Sources outside the gate's bench (no thresholds were set on them): BCN20000's 84-px squares hold
#: colour but not sharpness or framing; the built-in colour reference is pooled over it too.
HELD_OUT = ("bcn20000",)
LONG_SIDE = 1600
#: ``folder:PATH``: a folder of another clinic's photographs as a source (``folder_items``).
FOLDER = "folder:"
#: The files of a folder source: JPEG, PNG, and the originals some dermatoscopes save (BMP, as PH2's were; TIFF; WebP),
#: except lesion masks (``FOLDER_MASKS``).
FOLDER_TYPES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
#: A folder file's lesion mask (255 = lesion), found as ``<stem><suffix>.png`` beside it, or in a ``masks`` folder beside
#: it or beside its folder: PH2's ``_lesion``, HAM10000's ``_expert``, the ISIC challenges' ``_segmentation``.
FOLDER_MASKS = ("_mask", "_lesion", "_expert", "_segmentation")
#: A folder file wider than this is graded as if brought to this width: blur is graded in a source's own pixels, and 3 of
#: a 12 MP original's (4000 px across) blur a fifth as much of the view as 3 of PH2's (765 px, the widest files here).
FOLDER_NATIVE = 765
EXIF_ORIENTATION = 0x0112


@dataclass(frozen=True)
class Item:
    """One image of a source: where it is, its expert mask if any, and how to bring it to a still."""

    source: str
    key: str
    image: Path
    mask: Path | None
    size: tuple[int, int]  # width, height of the kiosk-like still
    native: int  # width of the source image (unsquashed): blur is graded in its pixels
    #: the still's pixels to one of the pixels glare is graded in (``bench.quality_degrade``): 1 for the 1600-px stills
    #: and the bench's files; a folder's file judged as it is and wider than ``FOLDER_NATIVE`` more (``as_file``)
    glare_scale: float = 1.0


def part_of(key: str) -> str:
    """``"fit"`` or ``"score"``: a fixed half of every source by a hash of the image id."""
    return "fit" if hashlib.sha256(key.encode()).digest()[0] < 128 else "score"


def folder_items(source: str) -> list[Item]:
    """The files of a folder source (``source``: ``FOLDER`` + its path), sorted by name: JPEG, PNG, BMP, TIFF and WebP
    (``FOLDER_TYPES``), each its own key (its name without the extension), brought to a still of ``LONG_SIDE`` with its
    own shape, its blur graded in its own pixels up to ``FOLDER_NATIVE``, and its mask where there is one
    (``FOLDER_MASKS``). Only the files' headers are read here."""
    folder = Path(source[len(FOLDER):]).expanduser()
    if not folder.is_dir():
        raise SystemExit(f"{source}: no such folder")
    items = []
    for path in sorted(folder.iterdir()):
        if path.suffix.lower() not in FOLDER_TYPES or path.stem.endswith(FOLDER_MASKS):
            continue
        try:
            with Image.open(path) as img:
                w, h = img.size
                if img.getexif().get(EXIF_ORIENTATION, 1) in (5, 6, 7, 8):  # stored turned: OpenCV reads it upright
                    w, h = h, w
        except OSError:
            continue  # not an image after all: left out, as a clinic's stray file would be
        scale = LONG_SIDE / max(w, h)
        items.append(Item(source, path.stem, path, folder_mask(path), (round(w * scale), round(h * scale)),
                          min(w, FOLDER_NATIVE)))
    return items


def folder_mask(image: Path) -> Path | None:
    """The lesion mask of a folder source's file ``image`` (``FOLDER_MASKS``), or None."""
    for where in (image.parent, image.parent / "masks", image.parent.parent / "masks"):
        for suffix in FOLDER_MASKS:
            path = where / f"{image.stem}{suffix}.png"
            if path.is_file():
                return path
    return None


def as_file(item: Item, width: int, height: int) -> Item:
    """``item`` judged as the file it is, ``width`` x ``height`` (``bench.quality_native_degraded``): the still is the
    file, blur and glare graded in its pixels; a folder's file wider than ``FOLDER_NATIVE`` as if brought to that width
    (blur over as much of the view, glare spots as large in it, as on PH2's files)."""
    if item.source.startswith(FOLDER) and width > FOLDER_NATIVE:
        return replace(item, size=(width, height), native=FOLDER_NATIVE, glare_scale=width / FOLDER_NATIVE)
    return replace(item, size=(width, height), native=width)


def _items(source: str, data: Path) -> list[Item]:
    if source.startswith(FOLDER):
        return folder_items(source)
    if source == "ph2":
        ids = [r["image_id"] for r in csv.DictReader((data / "ph2" / "metadata.csv").open())]
        return [Item(source, i, data / "ph2" / "images" / f"{i}.jpg", data / "ph2" / "masks" / f"{i}_lesion.png",
                     (1600, 1196), 765) for i in ids]
    if source == "isic2017":
        rows = [r for r in csv.DictReader((data / "isic-more" / "metadata.csv").open()) if r["source"] == "isic2017"]
        return [Item(source, r["isic_id"], data / "isic-more" / "images" / f"{r['isic_id']}.jpg", None, (1600, 1200), 341)
                for r in rows]
    if source == "ham10000-masks":
        folder = data / "ham10000-masks"
        return [Item(source, p.stem, p, folder / f"{p.stem}_expert.png", (1600, 1200), 600)
                for p in sorted(folder.glob("ISIC_*.jpg"))]
    if source == "ham10000":
        folder = data / "ham10000" / "images"
        return [Item(source, p.stem, p, None, (1200, 1200), 224) for p in sorted(folder.glob("*.jpg"))]
    if source == "bcn20000":  # 84-px squares: colour, not sharpness or framing
        rows = [r for r in csv.DictReader((data / "isic-more" / "metadata.csv").open()) if r["source"] == "isic2019-bcn"]
        return [Item(source, r["isic_id"], data / "isic-more" / "images" / f"{r['isic_id']}.jpg", None, (1200, 1200), 84)
                for r in rows]
    raise ValueError(f"unknown source {source!r}: use one of {', '.join(SOURCES + HELD_OUT)}, or {FOLDER}PATH")


def load_source(source: str, part: str, n: int | None, seed: int, data: Path = DEFAULT_DATA) -> list[Item]:
    """Up to ``n`` items of ``source``'s ``part`` ("fit", "score" or "all"), sampled with ``seed``."""
    items = _items(source, data)
    if part != "all":
        items = [it for it in items if part_of(it.key) == part]
    items = [it for it in items if it.image.exists()]
    if not items:
        raise SystemExit(f"no images for source {source}" + ("" if source.startswith(FOLDER) else f" under {data}"))
    if n is not None and n < len(items):
        items = random.Random(f"{source}:{seed}").sample(items, n)
    return items


def still(item: Item) -> np.ndarray:
    """The item's image as a BGR kiosk-like still (``item.size``, bicubic)."""
    img = cv2.imread(str(item.image), cv2.IMREAD_COLOR)
    if img is None:
        raise SystemExit(f"cannot read {item.image}")
    return cv2.resize(img, item.size, interpolation=cv2.INTER_CUBIC)


def mask(item: Item) -> np.ndarray | None:
    """The expert lesion mask at the still's size (bool), or None where the source has none."""
    if item.mask is None or not item.mask.exists():
        return None
    m = cv2.imread(str(item.mask), cv2.IMREAD_GRAYSCALE)
    return None if m is None else cv2.resize(m, item.size, interpolation=cv2.INTER_NEAREST) > 127
