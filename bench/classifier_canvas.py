"""Benchmark: does the shipped int8 model do better with another input canvas, without retraining?

    .venv/bin/python bench/classifier_canvas.py [--data ../shared/data] [--pack .devdata/pack.npz] [--threads 1]

Runs the kiosk's own :class:`edge.classifier.Classifier` (the committed model) with its manifest's
``input.crop`` and ``input.colour`` switched: centre or lesion square, no colour constancy or Shades
of Gray (``edge.colour``), on

- PH2 (full frames, the clinic the model never saw): melanoma-vs-naevus AUC;
- the lesion-grouped validation split of every training source (the pack, ``models.sources``),
  per source: melanoma-vs-rest AUC. The lesion squares of pack images are the kiosk's, computed on
  the packed image (``.devdata/lesion_boxes.npz``, ``python -m models.canvas boxes``).

Each variant's difference from the shipped canvas (centre square, no colour constancy) comes with
its paired-bootstrap 95 % interval on the same images. Writes ``bench/out/classifier_canvas.json``.
Only a variant better on the sources the model did not train on (PH2) and no worse elsewhere would
be worth shipping; the figures are the evidence either way.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from edge.classifier import DEFAULT_MODEL_DIR, Classifier  # noqa: E402
from models.data import LABELS  # noqa: E402
from models.evaluate_v2 import auc, paired_auc_ci  # noqa: E402

VARIANTS = {"centre": ("centre-square", "none"), "centre+sog": ("centre-square", "shades-of-gray"),
            "lesion": ("lesion-square", "none"), "lesion+sog": ("lesion-square", "shades-of-gray")}
MEL, NV = LABELS.index("mel"), LABELS.index("nv")


def probs(clf: Classifier, bgrs, crop: str, colour: str) -> np.ndarray:
    """Melanoma probabilities of the kiosk's classifier with ``crop`` and ``colour`` set."""
    clf.manifest.input.crop, clf.manifest.input.colour = crop, colour
    return np.array([clf.probabilities(b)[MEL] for b in bgrs])


def compare(pos: np.ndarray, base: np.ndarray, other: np.ndarray) -> dict:
    """AUC of ``other``, and its difference from ``base`` with the paired bootstrap interval."""
    return {"auc": round(auc(pos, other), 4), "minus_shipped": paired_auc_ci(pos, base, other, boots=1000)}


def ph2(clf: Classifier, data: Path) -> dict:
    """Every variant on PH2's full frames (melanoma vs naevus)."""
    import cv2

    rows = [r for r in csv.DictReader(open(data / "ph2" / "metadata.csv")) if r["ham_code"] in ("mel", "nv")]
    frames = [cv2.imread(str(data / "ph2" / "images" / f"{r['image_id']}.jpg")) for r in rows]
    pos = np.array([r["ham_code"] == "mel" for r in rows])
    p = {k: probs(clf, frames, *v) for k, v in VARIANTS.items()}
    return {"n": len(rows), "melanoma": int(pos.sum()),
            **{k: compare(pos, p["centre"], v) for k, v in p.items()}}


def validation(clf: Classifier, pack: Path, boxes_path: Path, threads: int) -> dict:
    """The centre, centre+SoG and lesion variants per source on the pack's validation split."""
    from models.canvas import load_boxes
    from models.sources import decode_pack, pack_meta, split_grouped

    m = pack_meta(pack)
    src = m["source"].astype(str)
    val = split_grouped(m["group"].astype(str), m["label"], src, seed=0)["val"]
    boxes = load_boxes(boxes_path, m["isic_id"])
    y, s = m["label"][val], src[val]
    p = {}
    for name, (crop, colour) in (("centre", ("centre", "none")), ("centre+sog", ("centre", "shades-of-gray")),
                                 ("lesion", ("lesion", "none"))):
        rgb = decode_pack(pack, 224, threads, indices=val, boxes=boxes if crop == "lesion" else None,
                          colour=colour)[0]
        # the canvases are made already: the classifier takes them whole, as they are
        p[name] = probs(clf, [np.ascontiguousarray(x[:, :, ::-1]) for x in rgb], "centre-square", "none")
    out = {}
    for source in ["all", *np.unique(s)]:
        k = np.ones(len(y), bool) if source == "all" else s == source
        pos = y[k] == MEL
        if 0 < pos.sum() < k.sum():
            out[source] = {"n": int(k.sum()), "melanoma": int(pos.sum()),
                           **{v: compare(pos, p["centre"][k], p[v][k]) for v in p}}
    return out


def main() -> None:
    """Print and write the figures."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="../shared/data")
    ap.add_argument("--pack", default=".devdata/pack.npz")
    ap.add_argument("--boxes", default=".devdata/lesion_boxes.npz")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--skip-validation", action="store_true", help="PH2 only (seconds instead of minutes)")
    a = ap.parse_args()
    clf = Classifier(DEFAULT_MODEL_DIR, threads=a.threads)
    t0 = time.time()
    res = {"model": clf.version, "ph2": ph2(clf, Path(a.data))}
    print(json.dumps({"ph2": res["ph2"]}, indent=1), flush=True)
    if not a.skip_validation:
        res["validation"] = validation(clf, Path(a.pack), Path(a.boxes), a.threads)
        print(json.dumps({"validation": res["validation"]}, indent=1), flush=True)
    res["seconds"] = round(time.time() - t0, 1)
    out = Path("bench/out/classifier_canvas.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=2) + "\n")
    print(f"wrote {out} in {res['seconds']} s")


if __name__ == "__main__":
    main()
