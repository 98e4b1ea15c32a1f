"""Classification metrics used during training and in the evaluation report."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import balanced_accuracy_score, confusion_matrix, roc_auc_score

from models.data import LABELS

MALIGNANT = ("mel", "bcc", "scc", "akiec")


def summary(y: np.ndarray, p: np.ndarray) -> dict:
    """Balanced accuracy, per-class one-vs-rest AUC, sensitivity and specificity of argmax predictions."""
    pred = p.argmax(1)
    out = {"balanced_accuracy": float(balanced_accuracy_score(y, pred)), "auc": {}, "sensitivity": {},
           "specificity": {}}
    for i, lab in enumerate(LABELS):
        pos = y == i
        out["auc"][lab] = float(roc_auc_score(pos, p[:, i])) if 0 < pos.sum() < len(y) else float("nan")
        out["sensitivity"][lab] = float((pred[pos] == i).mean()) if pos.any() else float("nan")
        out["specificity"][lab] = float((pred[~pos] != i).mean()) if (~pos).any() else float("nan")
    out["macro_auc"] = float(np.nanmean(list(out["auc"].values())))
    mal = np.isin(y, [LABELS.index(m) for m in MALIGNANT])
    pmal = p[:, [LABELS.index(m) for m in MALIGNANT]].sum(1)
    out["malignant_auc"] = float(roc_auc_score(mal, pmal)) if 0 < mal.sum() < len(y) else float("nan")
    out["confusion"] = confusion_matrix(y, pred, labels=list(range(len(LABELS)))).tolist()
    return out


def run_figures(y: np.ndarray, p: np.ndarray, src: np.ndarray | None = None) -> dict:
    """A run's headline figures: balanced accuracy, melanoma and malignant AUC, and (``src``) per source.

    ``source_mean_mel_auc`` is the mean of the per-source melanoma AUCs (sources without melanoma or
    without anything else left out): a choice by it favours a model that ranks well within every
    clinic over one that separates the clinics' melanoma shares.
    """
    m = summary(y, p)
    out = {"n": int(len(y)), "balanced_accuracy": round(m["balanced_accuracy"], 4),
           "mel_auc": round(m["auc"]["mel"], 4), "malignant_auc": round(m["malignant_auc"], 4)}
    if src is not None:
        mel = LABELS.index("mel")
        per = {}
        for s in np.unique(src):
            k = src == s
            pos = y[k] == mel
            if 0 < pos.sum() < k.sum():
                per[str(s)] = round(float(roc_auc_score(pos, p[k, mel])), 4)
        out["mel_auc_by_source"] = per
        out["source_mean_mel_auc"] = round(float(np.mean(list(per.values()))), 4) if per else float("nan")
    return out


def mel_vs_nv_auc(y: np.ndarray, p: np.ndarray) -> float:
    """Melanoma-vs-naevus AUC over the images labelled one or the other (PH2's figure)."""
    mel, nv = LABELS.index("mel"), LABELS.index("nv")
    k = np.isin(y, [mel, nv])
    pos = y[k] == mel
    return round(float(roc_auc_score(pos, p[k, mel])), 4) if 0 < pos.sum() < k.sum() else float("nan")
