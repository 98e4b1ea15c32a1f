"""The service report's plots, drawn server-side with matplotlib (Agg, no pyplot state) to PNG bytes.

- ``turnaround``: median and 90th percentile of working days to decision per month, the 28-day standard's
  share within it on a second axis;
- ``concordance_by_model``: the classifier's sensitivity and specificity for malignancy per model version,
  against the dermatologist and against histology, with Wilson 95 % intervals;
- ``roc``: malignancy and melanoma ROC curves against histology, with their AUC; beside them the malignancy curve
  per model version.

With ``suppress`` (exports), a month or model version with fewer than 5 patients behind a figure is left out.
"""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")
from matplotlib.figure import Figure  # noqa: E402

from .compute import Report  # noqa: E402

SMALL = 5
NAMES = {"turnaround": "Turnaround by month", "concordance_by_model": "Classifier concordance by model version",
         "roc": "ROC against histology"}
ALT = {"turnaround": "Line chart of median and 90th percentile working days from referral to decision per month.",
       "concordance_by_model": "Classifier sensitivity and specificity for malignancy per model version, "
                               "with 95% intervals.",
       "roc": "ROC curves of the classifier against histology for malignancy and melanoma, and for malignancy per "
              "model version."}


def _png(fig: Figure) -> bytes:
    """The figure as PNG at 100 dpi. Each plot sets its own margins (``subplots_adjust``): a tight bounding box would
    draw the figure twice, a third of a year's report's plotting time."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    return buf.getvalue()


def _empty(fig: Figure, ax, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, fontsize=11)
    ax.set_axis_off()


def turnaround(report: Report, suppress: bool = False) -> bytes:
    """Median and p90 working days to decision per month (PNG)."""
    fig = Figure(figsize=(6.4, 3.4))
    fig.subplots_adjust(left=0.1, right=0.97, bottom=0.24, top=0.9)
    ax = fig.add_subplot()
    months = [g for g in report.groups["period"] if g.working_days and not (suppress and g.decided.p < SMALL)]
    if not months:
        _empty(fig, ax, "No decided referrals in this period")
        return _png(fig)
    x = [g.name for g in months]
    ax.plot(x, [g.median() for g in months], marker="o", color="#1d4f91", label="median")
    ax.plot(x, [g.p90() for g in months], marker="s", linestyle="--", color="#b5470b", label="90th percentile")
    ax.set_ylabel("working days to decision")
    ax.set_ylim(0, max(22.0, 1.1 * max(g.p90() for g in months)))
    ax.axhline(20, color="#555555", linewidth=0.8, linestyle=":")
    ax.text(0.01, 20, " 28 calendar days ≈ 20 working days", va="bottom", fontsize=8, color="#333333",
            transform=ax.get_yaxis_transform())
    ax.tick_params(axis="x", labelrotation=45, labelsize=8)
    ax.legend(loc="upper right", fontsize=8)
    ax.set_title("Referral to decision", fontsize=11)
    return _png(fig)


def concordance_by_model(report: Report, suppress: bool = False) -> bytes:
    """Classifier sensitivity and specificity per model version, vs reader and vs histology (PNG)."""
    fig = Figure(figsize=(8.0, 3.4))
    fig.subplots_adjust(left=0.08, right=0.7, bottom=0.2, top=0.9)
    ax = fig.add_subplot()
    series = [("classifier_reader", "sens", "sensitivity vs dermatologist", "#1d4f91", "o"),
              ("classifier_reader", "spec", "specificity vs dermatologist", "#6a8fc7", "s"),
              ("classifier_histology", "sens", "sensitivity vs histology", "#b5470b", "^"),
              ("classifier_histology", "spec", "specificity vs histology", "#e09a62", "v")]
    models = [g for g in report.groups["model"] if not (suppress and g.lesions.p < SMALL)]
    drawn = False
    for i, (pair, which, label, colour, marker) in enumerate(series):
        xs, ys, lo, hi = [], [], [], []
        for j, g in enumerate(models):
            b = g.binary[pair]
            w = b.sensitivity() if which == "sens" else b.specificity()
            den = b.pos if which == "sens" else b.neg
            if w is None or (suppress and den.p < SMALL):
                continue
            xs.append(j + (i - 1.5) * 0.12)
            ys.append(100 * w[0])
            lo.append(max(0.0, 100 * (w[0] - w[1])))
            hi.append(max(0.0, 100 * (w[2] - w[0])))
        if xs:
            drawn = True
            ax.errorbar(xs, ys, yerr=[lo, hi], fmt=marker, color=colour, label=label, capsize=3)
    if not drawn:
        _empty(fig, ax, "No signed lesions with a classifier result")
        return _png(fig)
    ax.set_xticks(range(len(models)), [g.name for g in models], fontsize=8, rotation=15)
    ax.set_xlim(-0.6, len(models) - 0.4)
    ax.set_ylim(0, 105)
    ax.set_ylabel("% (Wilson 95 % interval)")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=7, frameon=False)
    ax.set_title("Classifier, malignancy positive", fontsize=11)
    return _png(fig)


def _roc_axes(ax, curves: list[tuple[str, dict, str, str]], title: str) -> bool:
    """Draw ``(label, curve, colour, style)`` ROC curves on ``ax``; False when there was none to draw."""
    if not curves:
        _empty(None, ax, "Not enough lesions with histology")
        return False
    for label, c, colour, style in curves:
        ax.plot(c["fpr"], c["tpr"], color=colour, linestyle=style,
                label=f"{label} (AUC {c['auc']:.2f}, {c['positives']} positive)")
    ax.plot([0, 1], [0, 1], color="#888888", linestyle=":", linewidth=0.8)
    ax.set_xlabel("1 − specificity")
    ax.set_ylabel("sensitivity")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.legend(loc="lower right", fontsize=7)
    ax.set_title(title, fontsize=11)
    return True


def roc(report: Report, suppress: bool = False) -> bytes:
    """ROC curves against histology (PNG): malignancy and melanoma for all lesions (left), malignancy per model
    version (right)."""
    fig = Figure(figsize=(8.4, 3.6))
    fig.subplots_adjust(left=0.08, right=0.97, bottom=0.14, top=0.91, wspace=0.25)
    left, right = fig.subplots(1, 2)

    def shown(c):
        return c is not None and not (suppress and min(c["positives"], c["negatives"]) < SMALL)

    _roc_axes(left, [(name, report.roc.get(name), colour, "-") for name, colour in
                     (("malignancy", "#1d4f91"), ("melanoma", "#b5470b")) if shown(report.roc.get(name))],
              "Classifier vs histology")
    palette = ("#1d4f91", "#b5470b", "#2e7d32", "#6a1b9a", "#00838f", "#5d4037")
    styles = ("-", "--", "-.", ":")
    per_model = [(model, curves["malignancy"]) for model, curves in report.roc_by_model.items()
                 if shown(curves.get("malignancy"))]
    _roc_axes(right, [(model, c, palette[i % len(palette)], styles[i // len(palette) % len(styles)])
                      for i, (model, c) in enumerate(per_model)], "Malignancy by model version")
    return _png(fig)


PLOTS = {"turnaround": turnaround, "concordance_by_model": concordance_by_model, "roc": roc}


def all_png(report: Report, suppress: bool = False) -> dict[str, bytes]:
    """Every plot as PNG bytes by name."""
    return {name: fn(report, suppress) for name, fn in PLOTS.items()}
