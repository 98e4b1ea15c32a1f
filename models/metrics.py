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
