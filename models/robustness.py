"""How the shipped int8 lesion classifier's figures move under synthetic shifts of acquisition.

    python -m models.robustness --data ../shared/data/ham10000 --model models/lesion --out models/lesion/report

The model will meet dermoscopy from clinics, dermatoscopes and cameras it has never seen. This
evaluation does not retrain anything: it perturbs the images of the same lesion-grouped validation
and test splits that ``models/evaluate.py`` uses (``split(items, seed=0)``), runs the kiosk's own
int8 classifier on each (``int8_predictions``) and measures the same figures as the evaluation
report (``models.metrics.summary``, ``models.evaluate.referral_stats`` at the thresholds in the
manifest), with deltas against the clean images and paired bootstrap intervals for those deltas.

Where the perturbations are applied: the project's HAM10000 copy is stored at 224 x 224, which is
already the model's input size, so the kiosk's centre-crop and area resize are the identity here
and every perturbation acts on the stored 224 x 224 image just before the classifier. On the kiosk
the frame is larger and the downscale to 224 would soften blur, JPEG blocking and resolution loss
made at camera resolution, so those three are harsher here than the same settings on a camera frame.

Writes ``robustness.md`` and ``robustness.json`` into ``--out``. Needs the training venv (Pillow
to decode as ``models.evaluate`` does, scikit-learn for the metrics); the perturbations themselves
need only NumPy and OpenCV.
"""

from __future__ import annotations

import argparse
import json
import time
from functools import partial
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

from models.data import jpeg, load_rgb, read_isic_folder, split

# ------------------------------------------------------------------------------------- perturbations


def colour_cast(rgb: np.ndarray, gains: tuple[float, float, float]) -> np.ndarray:
    """Multiply R, G, B by ``gains`` (a white-balance error), clipped; gains (1, 1, 1) is the identity."""
    out = rgb.astype(np.float32) * np.asarray(gains, np.float32)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def gamma(rgb: np.ndarray, g: float) -> np.ndarray:
    """Tone curve ``255 * (x / 255) ** g``: g > 1 darkens the mid-tones, g < 1 brightens; g = 1 is the identity."""
    lut = np.clip(np.rint(255.0 * (np.arange(256) / 255.0) ** g), 0, 255).astype(np.uint8)
    return lut[rgb]


def contrast(rgb: np.ndarray, factor: float) -> np.ndarray:
    """Scale every value's distance from the image mean by ``factor`` (< 1 flattens); 1 is the identity."""
    x = rgb.astype(np.float32)
    m = x.mean()
    return np.clip(np.rint(m + factor * (x - m)), 0, 255).astype(np.uint8)


def defocus(rgb: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur of standard deviation ``sigma`` pixels (a defocused dermatoscope); 0 is the identity."""
    if sigma <= 0:
        return rgb.copy()
    return cv2.GaussianBlur(rgb, (0, 0), sigmaX=sigma, sigmaY=sigma, borderType=cv2.BORDER_REFLECT)


def resolution_loss(rgb: np.ndarray, factor: int) -> np.ndarray:
    """Area-downscale by ``factor`` and bilinear-upscale back to the same size (a low-resolution camera)."""
    if factor <= 1:
        return rgb.copy()
    h, w = rgb.shape[:2]
    small = cv2.resize(rgb, (max(1, w // factor), max(1, h // factor)), interpolation=cv2.INTER_AREA)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


def rotate90(rgb: np.ndarray, k: int = 1) -> np.ndarray:
    """Rotate by ``k`` x 90 degrees counter-clockwise (exact, no resampling); k = 0 is the identity."""
    return np.ascontiguousarray(np.rot90(rgb, k))


#: The conditions evaluated: name -> (pure function on a uint8 RGB image, what it models and how strong).
#: Training augmentation (models/train.py) covered per-channel gains 0.9-1.1, gamma 0.8-1.25, contrast
#: 0.75-1.3, a binomial blur of sigma ~1 px on 20 % of images and any rotation; the settings below sit
#: beyond those ranges except the rotation. The stored images are themselves JPEGs of about quality 95
#: (4:2:0); the model never saw stronger compression, so JPEG is tried at three qualities.
CONDITIONS: dict[str, tuple[Callable[[np.ndarray], np.ndarray], str]] = {
    "clean": (partial(rotate90, k=0), "the stored image, unchanged"),
    "warm cast": (partial(colour_cast, gains=(1.15, 1.0, 0.85)), "white-balance error: R x1.15, B x0.85"),
    "cool cast": (partial(colour_cast, gains=(0.85, 1.0, 1.15)), "white-balance error: R x0.85, B x1.15"),
    "darker": (partial(gamma, g=1.5), "gamma 1.5 (mid-grey 128 -> 64)"),
    "brighter": (partial(gamma, g=1 / 1.5), "gamma 1/1.5 (mid-grey 128 -> 161)"),
    "low contrast": (partial(contrast, factor=0.6), "contrast x0.6 about the image mean"),
    "defocus blur": (partial(defocus, sigma=2.0), "Gaussian blur, sigma 2 px at 224 px"),
    "JPEG q75": (partial(jpeg, quality=75), "JPEG re-encode at quality 75"),
    "JPEG q60": (partial(jpeg, quality=60), "JPEG re-encode at quality 60"),
    "JPEG q40": (partial(jpeg, quality=40), "JPEG re-encode at quality 40"),
    "resolution / 4": (partial(resolution_loss, factor=4), "area-downscale to 56 px, bilinear back to 224"),
    "rotation 90": (partial(rotate90, k=1), "exact 90 degree rotation (trained with rotations)"),
}

# ------------------------------------------------------------------------------------------- metrics

#: Figures reported per condition (all at the shipped thresholds where a threshold applies).
FIGURES = ("melanoma_auc", "malignant_auc", "balanced_accuracy", "melanoma_sensitivity",
           "malignant_sensitivity", "specificity", "referral_rate", "top1_agreement_with_clean")


def predict_conditions(model_dir: Path, images: np.ndarray, conditions=CONDITIONS) -> dict[str, np.ndarray]:
    """Int8 probabilities (the kiosk's Classifier, via ``models.evaluate.int8_predictions``) per condition."""
    from models.evaluate import int8_predictions

    out = {}
    for name, (fn, _) in conditions.items():
        out[name] = int8_predictions(Path(model_dir), np.stack([fn(im) for im in images]))[0]
    return out


def condition_metrics(y: np.ndarray, p: np.ndarray, p_clean: np.ndarray, thresholds: dict) -> dict:
    """The report's figures for one condition: AUCs and balanced accuracy (``summary``), referral
    figures at ``thresholds`` (``referral_stats``), top-1 agreement with the clean prediction, and
    how many melanomas the referral misses and how many it lost against the clean images."""
    from models.evaluate import MEL, referral_stats, referred
    from models.metrics import summary

    s = summary(y, p)
    r, r0, mel = referred(p, thresholds), referred(p_clean, thresholds), y == MEL
    return {"melanoma_auc": s["auc"]["mel"], "malignant_auc": s["malignant_auc"],
            "balanced_accuracy": s["balanced_accuracy"], **referral_stats(y, p, thresholds),
            "top1_agreement_with_clean": float((p.argmax(1) == p_clean.argmax(1)).mean()),
            "melanomas_missed": int((mel & ~r).sum()), "melanomas_lost_vs_clean": int((mel & r0 & ~r).sum()),
            "melanomas_gained_vs_clean": int((mel & ~r0 & r).sum())}


def robustness_table(y: np.ndarray, preds: dict[str, np.ndarray], thresholds: dict, boots: int = 200,
                     seed: int = 0) -> dict:
    """Per condition: its figures, deltas against ``preds["clean"]`` and paired-bootstrap 95 % intervals
    of the deltas (the same resampled cases for both, ``boots`` resamples; 0 skips the intervals)."""
    clean = preds["clean"]
    base = condition_metrics(y, clean, clean, thresholds)
    rng = np.random.default_rng(seed)
    samples = [rng.integers(0, len(y), len(y)) for _ in range(boots)]
    keys = ("melanoma_auc", "malignant_auc", "balanced_accuracy", "melanoma_sensitivity", "specificity")
    base_s = [condition_metrics(y[s], clean[s], clean[s], thresholds) for s in samples]
    table = {}
    for name, p in preds.items():
        m = condition_metrics(y, p, clean, thresholds)
        row = {**{k: round(v, 4) if isinstance(v, float) else v for k, v in m.items()},
               "delta": {k: round(m[k] - base[k], 4) for k in FIGURES}}
        if boots and name != "clean":
            d = np.array([[m_s[k] - b[k] for k in keys] for m_s, b in
                          zip((condition_metrics(y[s], p[s], clean[s], thresholds) for s in samples), base_s)])
            lo, hi = np.nanpercentile(d, [2.5, 97.5], axis=0)
            row["delta_ci95"] = {k: [round(float(a), 4), round(float(b), 4)] for k, a, b in zip(keys, lo, hi)}
        table[name] = row
    return table


# -------------------------------------------------------------------------------------------- report


def _cell(row: dict, key: str) -> str:
    """A table cell: the figure, and its change against clean in brackets when there is one."""
    d = row["delta"][key]
    return f"{row[key]:.3f}" if d == 0 else f"{row[key]:.3f} ({d:+.3f})"


def write_markdown(out: Path, res: dict) -> None:
    """``robustness.md``: a table per split (test first), the biggest drops, and what the figures mean."""
    test = res["splits"]["test"]["table"]
    worst = {name: min((row["delta"][k], k) for k in ("melanoma_auc", "malignant_auc", "balanced_accuracy",
                                                      "melanoma_sensitivity", "specificity"))
             for name, row in test.items() if name != "clean"}
    drops = sorted((d, name, k) for name, (d, k) in worst.items())[:4]
    rot = test.get("rotation 90")
    lines = [
        "# Lesion classifier: robustness to acquisition shift",
        "",
        f"Generated by `{res['command']}` for `{res['model_version']}`. Nothing is retrained: the test and",
        "validation images of the lesion-grouped split used by `models/evaluate.py` (seed 0) are perturbed",
        "and run through the kiosk's int8 classifier; referral figures are at the shipped thresholds",
        f"(cancer >= {res['thresholds']['cancer']}, pre-cancer >= {res['thresholds']['pre-cancer']}).",
        "Each cell is the figure under that condition with its change against the clean images in brackets.",
        "The thresholds were chosen on the validation split; the test split is the one to read.",
        "",
        "The stored images are 224 x 224, the model's input size, so every perturbation is applied to the",
        "224 x 224 image just before the classifier (the kiosk's crop and resize are the identity here).",
        "Blur, JPEG and resolution loss therefore act at model resolution, harsher than the same settings on a",
        "full-resolution camera frame that the kiosk would then downscale. The stored images are themselves",
        "JPEGs of about quality 95 (4:2:0), so the JPEG rows model a second, stronger compression at 224 px, as",
        "when small images are re-encoded for transfer or storage.",
    ]
    header = ["| condition | what | melanoma AUC | malignant AUC | balanced acc. | melanoma sens. | malignant sens. "
              "| specificity | referral rate | top-1 agreement |", "|---|---|---|---|---|---|---|---|---|---|"]
    for split_name in ("test", "validation"):
        sp = res["splits"][split_name]
        lines += ["", f"### {split_name} split ({sp['n']} lesions, {sp['n_melanoma']} melanomas)", "", *header]
        for name, row in sp["table"].items():
            lines.append(
                f"| {name} | {res['conditions'][name]} | {_cell(row, 'melanoma_auc')} | "
                f"{_cell(row, 'malignant_auc')} | {_cell(row, 'balanced_accuracy')} | "
                f"{_cell(row, 'melanoma_sensitivity')} | {_cell(row, 'malignant_sensitivity')} | "
                f"{_cell(row, 'specificity')} | {_cell(row, 'referral_rate')} | "
                f"{row['top1_agreement_with_clean']:.3f} |")
    lines += [
        "",
        f"On test one melanoma is {1 / res['splits']['test']['n_melanoma']:.3f} of melanoma sensitivity.",
        "",
        "## Melanomas missed at the shipped thresholds, and paired 95 % intervals of the change (test)",
        "",
        f"Intervals: {res['bootstrap']} paired bootstrap resamples of the test lesions (clean and perturbed",
        "scored on the same resample). An interval that contains 0 is within sampling noise of this split.",
        "",
        "| condition | melanomas missed | lost / gained vs clean | delta melanoma AUC | delta balanced acc. "
        "| delta melanoma sens. | delta specificity |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, row in test.items():
        ci = row.get("delta_ci95")
        fmt = (lambda k: f"{row['delta'][k]:+.3f} [{ci[k][0]:+.3f}, {ci[k][1]:+.3f}]") if ci else (lambda k: "-")
        lines.append(f"| {name} | {row['melanomas_missed']} | {row['melanomas_lost_vs_clean']} / "
                     f"{row['melanomas_gained_vs_clean']} | {fmt('melanoma_auc')} | {fmt('balanced_accuracy')} | "
                     f"{fmt('melanoma_sensitivity')} | {fmt('specificity')} |")
    lines += [
        "",
        "## What it means, and its limits",
        "",
        "Biggest drop of each of the four worst conditions on test: "
        + "; ".join(f"{name}: {k.replace('_', ' ')} {d:+.3f}" for d, name, k in drops) + ".",
        "",
        *([f"The 90 degree rotation is a change the model should ignore (it was trained with rotations), yet it "
           f"changes the top-1 class of {1 - rot['top1_agreement_with_clean']:.1%} of test lesions and moves "
           f"balanced accuracy by {rot['delta']['balanced_accuracy']:+.3f}: that is the model's own instability "
           "between classes it scores close together. Changes of that size under another condition are not",
           "evidence of a shift effect; read the AUC and referral figures with their intervals above.", ""]
          if rot else []),
        "Thresholds are fixed numbers on the model's scores, so a shift that moves all scores moves the",
        "operating point: a shift that lowers the cancer score loses melanomas at the same threshold even",
        "when the AUC (ranking) hardly changes, and one that raises it refers more benign lesions. The AUCs",
        "say whether the model can still rank lesions; the sensitivity and specificity say whether the",
        "shipped thresholds still do what they were chosen for. A site whose images differ in colour or",
        "sharpness would need its thresholds checked on its own labelled images.",
        "",
        "Limits: these are synthetic, one-at-a-time, global perturbations of images that all come from",
        "HAM10000's two centres. Other clinics differ in ways not modelled here: dermatoscope optics and",
        "polarisation, immersion fluid and bubbles, hair, ink and rulers, vignetting, field of view and zoom,",
        "sensor noise, skin types (HAM10000 has few darker skin types) and, above all, the mix of patients and",
        "diagnoses. A small change here does not show the model will hold up at another clinic; a large",
        "change shows a way it can fail there. Only labelled images from the new site measure that.",
        "",
    ]
    (out / "robustness.md").write_text("\n".join(lines))


def run(data: Path, model_dir: Path, out: Path, boots: int = 200) -> dict:
    """Load the validation and test splits once, score every condition, write the report; return it."""
    from models.evaluate import MEL

    manifest = json.loads((model_dir / "manifest.json").read_text())
    thresholds = manifest["thresholds"]
    items = read_isic_folder(data)
    parts = split(items, seed=0)
    t0 = time.perf_counter()
    res = {"command": f"python -m models.robustness --data {data} --model {model_dir} --out {out}",
           "model_version": manifest["version"], "model_sha256": manifest["sha256"], "thresholds": thresholds,
           "conditions": {k: v[1] for k, v in CONDITIONS.items()}, "bootstrap": boots, "splits": {}}
    for split_name, key in (("test", "test"), ("validation", "val")):
        idx = parts[key]
        imgs = np.stack([load_rgb(items[i].path, 224) for i in idx])
        y = np.array([items[i].label for i in idx])
        preds = predict_conditions(model_dir, imgs)
        res["splits"][split_name] = {"n": len(y), "n_melanoma": int((y == MEL).sum()),
                                     "table": robustness_table(y, preds, thresholds,
                                                               boots=boots if split_name == "test" else 0)}
        del imgs, preds
    res["seconds"] = round(time.perf_counter() - t0, 1)
    out.mkdir(parents=True, exist_ok=True)
    (out / "robustness.json").write_text(json.dumps(res, indent=2) + "\n")
    write_markdown(out, res)
    return res


def main(argv=None) -> None:
    """CLI: print each test condition's headline figures and write robustness.md / robustness.json."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, help="ISIC-format folder (images/, metadata.csv)")
    p.add_argument("--model", default="models/lesion", help="folder with model.tflite and manifest.json")
    p.add_argument("--out", default="models/lesion/report")
    p.add_argument("--bootstrap", type=int, default=200, help="paired bootstrap resamples for the test deltas")
    a = p.parse_args(argv)
    res = run(Path(a.data), Path(a.model), Path(a.out), boots=a.bootstrap)
    for name, row in res["splits"]["test"]["table"].items():
        print(f"{name:16s} " + " ".join(f"{k}={row[k]:.3f}({row['delta'][k]:+.3f})" for k in FIGURES))
    print(f"{res['seconds']} s")


if __name__ == "__main__":
    main()
