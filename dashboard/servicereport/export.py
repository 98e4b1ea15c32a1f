"""The service report as CSV tables and HTML, with small cells suppressed in anything exported.

Suppression (NHS statistical disclosure practice): a count behind which stand
1 to 4 patients is written ``*``; a rate, interval, median or percentile whose
denominator has fewer than 5 patients, or whose numerator has 1 to 4, is written
``*`` too. The ``/reports`` page, inside the service, shows the figures whole;
the CSV files, the written HTML and its plots are suppressed.

Files written by :func:`write`: ``report.html`` (with ``turnaround.png``,
``concordance_by_model.png``, ``roc.png``), ``summary.csv`` (one row overall and
per month, hub, model version and Fitzpatrick group), ``concordance.csv`` (the
four confusion tables), ``breaches.csv`` (by referral key) and ``roc.csv`` (AUC of the malignancy and melanoma
curves against histology, for all lesions and per model version).
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, select_autoescape
from wire.outcome import MANAGEMENT

from . import plots
from .compute import DIMENSIONS, PAIRS, Cell, Group, Report

SMALL = 5
#: Short column heads for the outcome mix.
OUTCOME_NAMES = {"urgent-2ww": "Urgent (2WW)", "routine": "Routine", "biopsy": "Biopsy", "discharge": "Discharge",
                 "re-image": "Re-image"}
CSV_NAMES = ("summary.csv", "concordance.csv", "breaches.csv", "roc.csv")
MARK = "*"
TEMPLATES = Path(__file__).resolve().parent.parent / "templates"


class Formatter:
    """Figures as text, suppressed or whole."""

    def __init__(self, suppress: bool):
        """``suppress``: apply the small-cell rule."""
        self.suppress = suppress

    def small(self, cell: Cell) -> bool:
        """Whether a count must be hidden."""
        return self.suppress and 0 < cell.p < SMALL

    def count(self, cell: Cell) -> str:
        """A count, or ``*``."""
        return MARK if self.small(cell) else str(cell.n)

    def hidden(self, num: Cell, den: Cell) -> bool:
        """Whether a figure from ``num`` over ``den`` must be hidden."""
        return self.suppress and (den.p < SMALL or self.small(num))

    def share(self, num: Cell, den: Cell) -> str:
        """``num / den`` as a percentage with one decimal, ``*`` or empty."""
        if self.hidden(num, den):
            return MARK
        return f"{100 * num.n / den.n:.1f}" if den.n else ""

    def number(self, value: float | None, den: Cell) -> str:
        """A median or percentile over ``den``'s patients."""
        if value is None:
            return ""
        return MARK if self.suppress and den.p < SMALL else f"{value:g}"

    def interval(self, binary, which: str) -> dict:
        """Sensitivity or specificity as ``{p, low, high, n}`` percentages (text), suppressed as a whole."""
        num, den = (binary.tp, binary.pos) if which == "sens" else (binary.tn, binary.neg)
        w = binary.sensitivity() if which == "sens" else binary.specificity()
        if w is None:
            return {"p": "", "low": "", "high": "", "n": "0"}
        if self.hidden(num, den):
            return {"p": MARK, "low": MARK, "high": MARK, "n": MARK}
        return {"p": f"{100 * w[0]:.1f}", "low": f"{100 * w[1]:.1f}", "high": f"{100 * w[2]:.1f}", "n": str(den.n)}

    def roc(self, curve: dict | None) -> list[str]:
        """A ROC curve's ``[AUC, positives, negatives]`` as text: empty without a curve, ``*`` when either side has
        fewer than 5 lesions (exports)."""
        if curve is None:
            return ["", "", ""]
        if self.suppress and min(curve["positives"], curve["negatives"]) < SMALL:
            return [MARK, MARK, MARK]
        return [f"{curve['auc']:.3f}", str(curve["positives"]), str(curve["negatives"])]


def summary_header() -> list[str]:
    """The columns of ``summary.csv``."""
    cols = ["dimension", "group", "referrals", "lesions", "images", "override_images", "override_share_pct",
            "lesions_final", "reimage_rate_pct", "decided", "median_working_days", "p90_working_days",
            "within_28_days", "within_28_days_pct", "breaches_decided_late"]
    cols += [f"outcome_{m}" for m in MANAGEMENT]
    for pair in PAIRS:
        for which in ("sens", "spec"):
            cols += [f"{pair}_{which}_pct", f"{pair}_{which}_low", f"{pair}_{which}_high", f"{pair}_{which}_n"]
    return cols


def summary_row(dimension: str, g: Group, f: Formatter) -> list[str]:
    """One row of ``summary.csv``."""
    images = Cell(g.images, g.lesions.p)
    row = [dimension, g.name, f.count(g.referrals), f.count(g.lesions), MARK if f.small(g.lesions) else str(g.images),
           f.count(g.override_images), f.share(g.override_images, images), f.count(g.finals),
           f.share(g.reimage, g.finals), f.count(g.decided), f.number(g.median(), g.decided),
           f.number(g.p90(), g.decided), f.count(g.within), f.share(g.within, g.decided), f.count(g.late)]
    row += [f.count(g.outcomes[m]) for m in MANAGEMENT]
    for pair in PAIRS:
        for which in ("sens", "spec"):
            iv = f.interval(g.binary[pair], which)
            row += [iv["p"], iv["low"], iv["high"], iv["n"]]
    return row


def _csv(header: list[str], rows: list[list]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    w.writerows(rows)
    return buf.getvalue()


def csv_tables(report: Report, suppress: bool = True) -> dict[str, str]:
    """``{file name: CSV text}`` of the report's tables."""
    f = Formatter(suppress)
    summary = [summary_row("all", report.overall, f)]
    for dim in DIMENSIONS:
        summary += [summary_row(dim, g, f) for g in report.groups[dim]]
    conc = [[pair, a, b, f.count(cell)] for pair, table in report.tables.items()
            for (a, b), cell in sorted(table.items(), key=lambda kv: (str(kv[0][0]), str(kv[0][1])))]
    breaches = [[b["referral_key"], b["hub"], b["referral_date"], b["state"], b["calendar_days"], b["working_days"]]
                for b in report.breaches]
    roc = [["all", name, *f.roc(curve)] for name, curve in report.roc.items()]
    roc += [[model, name, *f.roc(curve)] for model, curves in report.roc_by_model.items()
            for name, curve in curves.items()]
    return {"summary.csv": _csv(summary_header(), summary),
            "concordance.csv": _csv(["pair", "test", "reference", "lesions"], conc),
            "breaches.csv": _csv(["referral_key", "hub", "referral_date", "state", "calendar_days", "working_days"],
                                 breaches),
            "roc.csv": _csv(["model", "curve", "auc", "positives", "negatives"], roc)}


def context(report: Report, suppress: bool, plot_src: dict[str, str]) -> dict:
    """What ``_service_report.html`` renders."""
    return {"r": report, "f": Formatter(suppress), "dimensions": DIMENSIONS, "pairs": PAIRS,
            "dimension_list": [("all", "All")] + list(DIMENSIONS.items()), "outcome_names": OUTCOME_NAMES,
            "management": MANAGEMENT, "plot_src": plot_src, "suppress": suppress}


def _env() -> Environment:
    return Environment(loader=FileSystemLoader(str(TEMPLATES)), autoescape=select_autoescape(["html"]))


def write(report: Report, out: Path) -> list[Path]:
    """Write the suppressed HTML, its plots and the CSV tables into ``out`` (made if missing); return the files."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in csv_tables(report, suppress=True).items():
        (out / name).write_text(text, encoding="utf-8")
        written.append(out / name)
    src = {}
    for name, png in plots.all_png(report, suppress=True).items():
        (out / f"{name}.png").write_bytes(png)
        written.append(out / f"{name}.png")
        src[name] = f"{name}.png"
    html = _env().get_template("service_report_file.html").render(**context(report, True, src))
    (out / "report.html").write_text(html, encoding="utf-8")
    written.append(out / "report.html")
    return written
