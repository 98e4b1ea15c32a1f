"""Evaluate the second model (all sources, 8 classes): thresholds on mixed-source validation, per-source figures,
leave-one-source-out beside in-distribution, PH2 as the external test, lesion crop vs centre square.

    python -m models.evaluate_v2 --model-dir models/lesion --pack .devdata/pack.npz --runs models/work/gpu1 \
        --data ../shared/data

``--runs`` is what ``models.gpu_run`` wrote (``main.npz``: float probabilities of the main model on the
mixed validation and test splits; ``loso-<S>.npz``: each LOSO model on its left-out source; optionally
``provenance.json``: the report's sentences on where these came from, keys ``float``, ``loso``, ``choice``).
The int8
figures come from the kiosk's own :class:`edge.classifier.Classifier` (same preprocessing) on the pack's
images and, for PH2 and the HAM10000 frames with expert masks, on full frames as a kiosk takes them.
Thresholds are chosen on the int8 outputs of the mixed validation split so that melanoma and malignant
sensitivity reach 0.95 on **every source's** validation images with a bootstrap margin
(:func:`choose_by_source`); test, LOSO and PH2 figures are reported, never used for a choice.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score

from models.data import LABELS
from models.evaluate import CONFIDENCES, TARGET_SENS, TARGET_SPEC
from models.metrics import MALIGNANT, summary
from models.sources import LOSO_FOLDS, decode_pack, pack_meta, split_grouped

MEL = LABELS.index("mel")
NV = LABELS.index("nv")
CANCER = [LABELS.index(x) for x in ("mel", "bcc", "scc")]
PRE = [LABELS.index("akiec")]
MAL = [LABELS.index(x) for x in MALIGNANT]


def referred(p: np.ndarray, t: dict) -> np.ndarray:
    """Which cases land in a non-benign tier under thresholds ``t``."""
    return (p[:, CANCER].sum(1) >= t["cancer"]) | (p[:, PRE].sum(1) >= t["pre-cancer"])


def referral_stats(y: np.ndarray, p: np.ndarray, t: dict) -> dict:
    """Melanoma and malignant sensitivity, benign specificity and referral rate at thresholds ``t``."""
    r = referred(p, t)
    mal = np.isin(y, MAL)
    nan = float("nan")
    return {"n": int(len(y)), "melanoma_sensitivity": float(r[y == MEL].mean()) if (y == MEL).any() else nan,
            "malignant_sensitivity": float(r[mal].mean()) if mal.any() else nan,
            "specificity": float((~r[~mal]).mean()) if (~mal).any() else nan, "referral_rate": float(r.mean())}


def _bound(cancer, pre, y, tp, target) -> float:
    """The largest cancer threshold that keeps melanoma and malignant sensitivity >= ``target``."""
    bound = np.inf
    for pos in (y == MEL, np.isin(y, MAL)):
        e = np.where(pre[pos] >= tp, np.inf, cancer[pos])
        if len(e) == 0:
            continue
        need = int(np.ceil(target * len(e) - 1e-9))
        bound = min(bound, np.sort(e)[::-1][need - 1] if need > 0 else np.inf)
    return float(bound)


def choose_by_source(y, p, src, target=TARGET_SENS, confidence=0.9, boots=300, seed=0) -> dict:
    """Highest-specificity thresholds meeting ``target`` sensitivity on each source, in a ``confidence`` share
    of bootstrap resamples (drawn within each source); sources without melanoma or malignancy add no bound."""
    rng = np.random.default_rng(seed)
    cancer, pre = p[:, CANCER].sum(1), p[:, PRE].sum(1)
    groups = [np.flatnonzero(src == s) for s in np.unique(src)]
    samples = [[g[rng.integers(0, len(g), len(g))] for g in groups] for _ in range(boots)]
    best, best_spec = None, -1.0
    for tp in list(np.unique(np.quantile(pre, np.linspace(0.5, 1.0, 41)))) + [1.01]:
        tcs = np.array([min(_bound(cancer[s], pre[s], y[s], tp, target) for s in smp) for smp in samples])
        tc = float(np.quantile(tcs, 1.0 - confidence, method="lower"))
        tc = tc if np.isfinite(tc) else 1.0
        t = {"cancer": tc, "pre-cancer": float(min(tp, 1.0))}
        spec = referral_stats(y, p, t)["specificity"]
        if spec > best_spec:
            best, best_spec = t, spec
    return {k: round(v - 1e-6, 6) for k, v in best.items()}


def choose_referral(y, p, src) -> tuple[dict, float]:
    """Thresholds with the widest margin whose mixed-validation specificity stays >= ``TARGET_SPEC``."""
    for conf in CONFIDENCES:
        t = choose_by_source(y, p, src, confidence=conf)
        if referral_stats(y, p, t)["specificity"] >= TARGET_SPEC:
            return t, conf
    return choose_by_source(y, p, src, confidence=CONFIDENCES[-1]), CONFIDENCES[-1]


def auc(pos: np.ndarray, score: np.ndarray) -> float:
    """ROC AUC, NaN where one class is missing."""
    return float(roc_auc_score(pos, score)) if 0 < pos.sum() < len(pos) else float("nan")


def aucs(y, p) -> dict:
    """Melanoma-vs-rest and malignant-vs-benign AUC."""
    return {"melanoma_auc": round(auc(y == MEL, p[:, MEL]), 4),
            "malignant_auc": round(auc(np.isin(y, MAL), p[:, MAL].sum(1)), 4)}


def int8_on_images(clf, rgbs) -> np.ndarray:
    """The kiosk classifier's probabilities for RGB images (it takes BGR)."""
    return np.array([clf.probabilities(np.ascontiguousarray(x[:, :, ::-1])) for x in rgbs])


def full_frames(data: Path):
    """PH2 (full frames, labels mel / nv) and the HAM10000 frames that have expert masks: (name, ids, y, BGR list)."""
    import csv

    import cv2

    out = []
    rows = list(csv.DictReader(open(data / "ph2" / "metadata.csv")))
    out.append(("ph2", [r["image_id"] for r in rows], np.array([LABELS.index(r["ham_code"]) for r in rows]),
                [cv2.imread(str(data / "ph2" / "images" / f"{r['image_id']}.jpg")) for r in rows]))
    dx = {r["isic_id"]: r["diagnosis"] for r in csv.DictReader(open(data / "ham10000" / "metadata.csv"))}
    ids = sorted(p.stem for p in (data / "ham10000-masks").glob("ISIC_*.jpg") if p.stem in dx)
    out.append(("ham10000-masks", ids, np.array([LABELS.index(dx[i]) for i in ids]),
                [cv2.imread(str(data / "ham10000-masks" / f"{i}.jpg")) for i in ids]))
    return out


def crop_study(model_dir: Path, data: Path, thresholds: dict, margins=(1.25, 1.5, 2.0), colour: str = "none") -> dict:
    """Centre square vs lesion-centred square on full frames (int8, the kiosk's Classifier, the model's ``colour``)."""
    from edge.classifier import Classifier

    res = {}
    for name, ids, y, frames in full_frames(data):
        res[name] = {"n": len(y), "ids": ids}
        for crop, margin in [("centre-square", None)] + [("lesion-square", m) for m in margins]:
            clf = Classifier(model_dir, threads=2)
            clf.manifest.input.crop = crop
            clf.manifest.input.colour = colour
            if margin:
                clf.manifest.input.crop_margin = margin
            t0 = time.perf_counter()
            p = np.array([clf.probabilities(f) for f in frames])
            ms = (time.perf_counter() - t0) * 1000 / len(frames)
            key = crop if margin is None else f"{crop}-{margin}"
            keep = np.isin(y, [MEL, NV]) if name == "ph2" else np.ones(len(y), bool)
            res[name][key] = {"mel_vs_nv_auc" if name == "ph2" else "melanoma_auc":
                              round(auc(y[keep] == MEL, p[keep, MEL]), 4),
                              **{k: round(v, 4) for k, v in referral_stats(y, p, thresholds).items() if k != "n"},
                              "ms_per_frame": round(ms, 1), "p": p.round(5).tolist()}
        keep = np.isin(y, [MEL, NV]) if name == "ph2" else np.ones(len(y), bool)
        res[name]["lesion_minus_centre_auc_ci95"] = paired_auc_ci(
            y[keep] == MEL, np.array(res[name]["centre-square"]["p"])[keep, MEL],
            np.array(res[name]["lesion-square-1.5"]["p"])[keep, MEL])
    return res


def paired_auc_ci(pos: np.ndarray, a: np.ndarray, b: np.ndarray, boots: int = 2000, seed: int = 0) -> dict:
    """AUC(b) - AUC(a) on the same cases: the difference, its 95 % bootstrap interval and P(diff <= 0)."""
    rng = np.random.default_rng(seed)
    d = []
    for _ in range(boots):
        s = rng.integers(0, len(pos), len(pos))
        if 0 < pos[s].sum() < len(s):
            d.append(roc_auc_score(pos[s], b[s]) - roc_auc_score(pos[s], a[s]))
    lo, hi = np.percentile(d, [2.5, 97.5])
    return {"diff": round(auc(pos, b) - auc(pos, a), 4), "low": round(float(lo), 4), "high": round(float(hi), 4),
            "p_not_better": round(float(np.mean(np.array(d) <= 0)), 3)}


def evaluate(model_dir: Path, pack: Path, runs: Path, data: Path, crop: str = "centre", colour: str = "none",
             boxes: Path = Path(".devdata/lesion_boxes.npz")) -> dict:
    """Everything the report and the manifest need; ``crop`` and ``colour``: the canvas the model was trained on."""
    from edge.classifier import Classifier

    meta = pack_meta(pack)
    box = None
    if crop == "lesion":
        from models.canvas import load_boxes

        box = load_boxes(boxes, meta["isic_id"])
    src_all = meta["source"].astype(str)
    parts = split_grouped(meta["group"].astype(str), meta["label"], src_all, seed=0)
    main = np.load(runs / "main.npz")
    prov = runs / "provenance.json"
    clf = Classifier(model_dir, threads=2)
    clf.manifest.input.crop = "centre-square"  # the pack's images are made into the training canvas below
    clf.manifest.input.colour = "none"
    sets = {}
    for name in ("val", "test"):
        idx = main[f"{name}_idx"]
        assert np.array_equal(idx, parts[name]), "the runs' split is not this pack's split"
        imgs, _ = decode_pack(pack, 224, indices=idx, boxes=box, colour=colour)
        t0 = time.perf_counter()
        p8 = int8_on_images(clf, imgs)
        sets[name] = {"y": main[f"{name}_y"], "src": main[f"{name}_source"].astype(str), "int8": p8,
                      "float": main[f"{name}_p"].astype(np.float32),
                      "ms": (time.perf_counter() - t0) * 1000 / len(idx)}
        if f"{name}_p_tta" in main:  # absent where the float predictions were made without TTA (gpu_run --no-tta)
            sets[name]["float_tta"] = main[f"{name}_p_tta"].astype(np.float32)
    val, test = sets["val"], sets["test"]
    thresholds, conf = choose_referral(val["y"], val["int8"], val["src"])
    res = {"thresholds": thresholds, "threshold_confidence": conf,
           "provenance": json.loads(prov.read_text()) if prov.exists() else {},
           "split": {k: int(len(v)) for k, v in parts.items()},
           "split_by_source": {k: {s: int((src_all[v] == s).sum()) for s in np.unique(src_all)}
                               for k, v in parts.items()}}
    for name, d in sets.items():
        s8, sf = summary(d["y"], d["int8"]), summary(d["y"], d["float"])
        res[name] = {"balanced_accuracy": round(s8["balanced_accuracy"], 4), **aucs(d["y"], d["int8"]),
                     "macro_auc": round(s8["macro_auc"], 4),
                     **{k: round(v, 4) for k, v in referral_stats(d["y"], d["int8"], thresholds).items()},
                     "float_balanced_accuracy": round(sf["balanced_accuracy"], 4),
                     **{f"float_{k}": v for k, v in aucs(d["y"], d["float"]).items()},
                     **({f"float_tta_{k}": v for k, v in aucs(d["y"], d["float_tta"]).items()}
                        if "float_tta" in d else {}),
                     "int8_float_top1_agreement": round(float((d["int8"].argmax(1) == d["float"].argmax(1)).mean()),
                                                        4),
                     "per_class_auc": {k: round(v, 4) for k, v in s8["auc"].items()},
                     "per_class_sensitivity": {k: round(v, 4) for k, v in s8["sensitivity"].items()},
                     "confusion": s8["confusion"]}
        res[name]["per_source"] = {}
        for s in np.unique(d["src"]):
            m = d["src"] == s
            res[name]["per_source"][s] = {**aucs(d["y"][m], d["int8"][m]),
                                          **{k: round(v, 4) for k, v in
                                             referral_stats(d["y"][m], d["int8"][m], thresholds).items()}}
    # leave one source out: the LOSO model on all of S beside the main model on S's val + test
    res["loso"] = {}
    for fold, members in LOSO_FOLDS.items():
        f = runs / f"loso-{fold}.npz"
        if not f.exists():
            continue
        z = np.load(f)
        y, p = z["heldout_y"], z["heldout_p"].astype(np.float32)
        both_y = np.concatenate([val["y"], test["y"]])
        both_p = np.concatenate([val["float"], test["float"]])
        m = np.isin(np.concatenate([val["src"], test["src"]]), members)
        res["loso"][fold] = {"left_out": list(members), "n": int(len(y)), "heldout": aucs(y, p),
                             **({"heldout_tta": aucs(y, z["heldout_p_tta"].astype(np.float32))}
                                if "heldout_p_tta" in z else {}),
                             "heldout_balanced_accuracy": round(summary(y, p)["balanced_accuracy"], 4),
                             "in_distribution": {"n": int(m.sum()), **aucs(both_y[m], both_p[m])}}
    res["crop_study"] = crop_study(model_dir, data, thresholds, colour=colour)
    res["canvas"] = {"crop": crop, "colour": colour}
    res["timing_ms_per_image_eval_loop"] = {"int8": round(test["ms"], 2)}
    res["_sets"] = sets
    return res


def main(argv=None) -> None:
    """CLI: evaluate and write report/metrics.json (the report itself: models.report_v2)."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model-dir", default="models/lesion")
    p.add_argument("--pack", default=".devdata/pack.npz")
    p.add_argument("--runs", default="models/work/gpu1")
    p.add_argument("--data", default="../shared/data")
    p.add_argument("--crop", choices=("centre", "lesion"), default="centre", help="the model's training canvas")
    p.add_argument("--colour", choices=("none", "shades-of-gray"), default="none", help="the model's colour constancy")
    a = p.parse_args(argv)
    res = evaluate(Path(a.model_dir), Path(a.pack), Path(a.runs), Path(a.data), a.crop, a.colour)
    res.pop("_sets")
    print(json.dumps({k: v for k, v in res.items() if k != "crop_study"}, indent=2))


if __name__ == "__main__":
    main()
