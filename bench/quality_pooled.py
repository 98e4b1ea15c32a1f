"""Fit the uncalibrated kiosk's built-in colour reference, pooled over sources, on their fit halves.

    .venv/bin/python -m bench.quality_pooled [--n 600] [--sources ph2,isic2017,ham10000,bcn20000] [--leave-one-out]

A kiosk that has not been calibrated (``python -m edge calibrate``) judges colour against the
built-in ``KioskReference`` of ``wire/kioskconfig/quality.py``. This fits it as an equal-weight
mixture of the sources: each source's mean skin log-chromaticity (ln R/G, ln B/G, measured as the
gate measures it, ``edge.quality.calibrate.measure``, on the images as they are) and covariance;
the mixture's mean is the mean of the source means, its covariance the mean within-source
covariance plus the spread of the source means. Every source counts once however many images it
has, so one clinic's lighting does not become "normal" for all. Since 2026-12-05 it also pools how the skin's
colour moves with its lightness (``lightness_fit``: darker skin is redder), so that an uncalibrated kiosk
expects a patient's skin darker than most of any clinic's to be redder, as a calibrated one does.

It prints the table to paste into the defaults, then, per source (fit half), the share of originals
whose distance exceeds ``colour_max`` and the share of the same skin colours shifted by a cast of
e^0.25 / e^0.4 towards red, blue, green and yellow that does (the cast moves the log-chromaticity
by its size), under the current default and the fitted one. That shift alone is an upper bound:
on real cast images (``python -m bench.quality_eval --uncalibrated``) fewer are caught, as a cast
also saturates channels and moves which pixels count as skin. Only fit halves are read (``bench.quality_sources.part_of``); nothing is written.

``--leave-one-out`` measures how the pooling generalises to a clinic it never saw: for each source, the
mixture of the *other* sources' fit halves judges this source's score half (false rejects of its
originals, over all and over the darkest tenth of their skin, and the shifted casts it still catches), beside the
mixture of all of them. The sources are
four clinics: PH2 (Porto), ISIC 2017 (mostly New York), HAM10000 (Vienna, Queensland) and BCN20000
(Barcelona: 84-px squares, where colour is still measured); a source given only in ``HELD_OUT`` and not in
``--sources`` is judged against the mixture of all.
The last line: ``loso_colour_false_rejects SOURCE=X% ...``.
"""

from __future__ import annotations

import argparse

import numpy as np

from edge.quality import QualitySettings, cast_distance
from edge.quality.calibrate import colour_fit, measure
from wire.kioskconfig.quality import KioskReference

from .quality_sources import HELD_OUT, load_source

#: A cast towards each colour as a shift of (ln R/G, ln B/G, lightness) per unit of its log size (the lightness
#: is read in green, which only a green cast moves).
CASTS = {"red": (1.0, 0.0, 0.0), "blue": (0.0, 1.0, 0.0), "green": (-1.0, -1.0, 1.0), "yellow": (0.0, -1.0, 0.0)}


def chroma_of(source: str, n: int, part: str = "fit") -> np.ndarray:
    """The skin colour of up to ``n`` ``part``-half images of ``source`` (rows: ln R/G, ln B/G, lightness)."""
    settings = QualitySettings()
    rows = []
    for item in load_source(source, part, n, seed=0):
        got = measure(item.image.read_bytes(), settings)
        if not isinstance(got, str):
            rows.append((got.r, got.b, got.lightness))
    return np.array(rows)


def mixture(samples: list[np.ndarray], spread: str = "predictive") -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance of the skin colour of a clinic like the sources: their equal-weight mean, and the
    mean within-source covariance plus the spread between clinics.

    ``spread="predictive"`` (the default, since 2026-12-05): the spread between the sources' means, taken
    the same in every direction (half the trace of their unbiased covariance per axis: three clinics do not
    say in which direction the next one differs) and widened by 1 + 1/k for the uncertainty of their mean,
    k the number of sources, so that it stands for a *new* clinic's lighting. Leaving one source out
    (``--leave-one-out``) showed the plug-in spread (``"plug-in"``: the sources' means' own covariance, the
    reference until then) to fit the sources it saw and refuse 13-20 % of a clinic it had not seen.
    """
    means = np.array([s[:, :2].mean(axis=0) for s in samples])
    within = np.mean([np.cov(s[:, :2].T) for s in samples], axis=0)
    k = len(means)
    if spread not in ("predictive", "plug-in"):
        raise ValueError(f"unknown spread {spread!r}: predictive or plug-in")
    if k < 2:
        between = np.zeros((2, 2))
    elif spread == "plug-in":
        between = np.cov(means.T, bias=True)
    else:
        between = np.eye(2) * np.trace(np.cov(means.T)) / 2 * (1 + 1 / k)
    return means.mean(axis=0), within + between


def lightness_fit(samples: list[np.ndarray]) -> tuple[np.ndarray, float, float]:
    """How a clinic like the sources' skin colour moves with its lightness (rows: ln R/G, ln B/G, lightness): the
    sources' own slopes averaged, every source counting once; and that clinic's patients' lightness, the mean of
    the sources' means and a standard deviation holding both the spread within a source and that between them
    (each clinic's light and exposure differ), so that only skin darker than most of any clinic's is expected
    redder (``KioskReference.expected``)."""
    fits = [colour_fit(s[:, :2], s[:, 2]) for s in samples]  # each source as a kiosk's calibration fits it
    means = [f["lightness"] for f in fits]
    return (np.mean([f["slope"] for f in fits], axis=0), float(np.mean(means)),
            float(np.sqrt(np.mean([f["sd"] ** 2 for f in fits]) + np.var(means))))


def reference(samples: list[np.ndarray], spread: str = "predictive") -> KioskReference:
    """The built-in reference pooled over ``samples`` (one array a source): ``mixture`` and ``lightness_fit``."""
    mean, cov = mixture(samples, spread)
    slope, lightness, sd = lightness_fit(samples)
    r = lambda v: round(float(v), 4)  # noqa: E731
    return KioskReference(chroma=(r(mean[0]), r(mean[1])), cov=((r(cov[0, 0]), r(cov[0, 1])), (r(cov[0, 1]), r(cov[1, 1]))),
                          lightness=r(lightness), lightness_sd=r(sd), slope=(r(slope[0]), r(slope[1])))


def distances(x: np.ndarray, mean: np.ndarray, cov: np.ndarray) -> np.ndarray:
    """Mahalanobis distance of each row of ``x`` (ln R/G, ln B/G) from the reference's mean and covariance."""
    z = x[:, :2] - mean
    return np.sqrt(np.einsum("ij,jk,ik->i", z, np.linalg.inv(cov), z))


def judged(x: np.ndarray, ref: KioskReference) -> np.ndarray:
    """The colour check's distance of each row of ``x`` (ln R/G, ln B/G, lightness) under ``ref``."""
    return np.array([cast_distance(tuple(row), ref)[0] for row in x])


def false_rejects(x: np.ndarray, ref: KioskReference, limit: float) -> tuple[float, float]:
    """(false rejects, false rejects over the darkest tenth of the skin) of the originals ``x`` in %."""
    far = judged(x, ref) > limit
    dark = x[:, 2] <= np.quantile(x[:, 2], 0.1)
    return 100 * float(far.mean()), 100 * float(far[dark].mean())


def rates(x: np.ndarray, ref: KioskReference, limit: float) -> tuple[float, float, float, float]:
    """(false rejects, false rejects over the darkest tenth of the skin, moderate casts caught, strong casts caught)
    in %, casts as shifts of ``x`` (all four)."""
    caught = {size: 100 * float(np.mean([np.mean(judged(x + size * np.array(v), ref) > limit) for v in CASTS.values()]))
              for size in (0.25, 0.4)}
    return (*false_rejects(x, ref, limit), caught[0.25], caught[0.4])


def report(name: str, ref: KioskReference, by_source: dict[str, np.ndarray], limit: float) -> None:
    """Print false rejects and simulated cast detection per source under one reference."""
    print(f"{name}: chroma {list(ref.chroma)} cov {[list(c) for c in ref.cov]} lightness {ref.lightness} "
          f"sd {ref.lightness_sd} slope {list(ref.slope)}")
    for source, x in by_source.items():
        fr, dark = false_rejects(x, ref, limit)
        det = {size: [100 * float(np.mean(judged(x + size * np.array(v), ref) > limit)) for v in CASTS.values()]
               for size in (0.25, 0.4)}
        print(f"  {source:9s} n={len(x):3d} mean {np.round(x[:, :2].mean(axis=0), 3).tolist()} false rejects {fr:4.1f} % "
              f"(darkest tenth {dark:4.1f} %)   cast red/blue/green/yellow moderate "
              f"{'/'.join(f'{d:.0f}' for d in det[0.25])}  strong {'/'.join(f'{d:.0f}' for d in det[0.4])}")


def leave_one_out(sources: list[str], n: int, limit: float) -> dict[str, float]:
    """Per source: the reference fitted on the *other* sources' fit halves judges this source's score half (a
    clinic the built-in reference never saw), beside the reference fitted on all of them; a ``HELD_OUT`` source
    not among ``sources`` against the one of all. Three references: the plug-in spread and the predictive one
    (``mixture``) on colour alone, as until 2026-12-05, and the predictive one with the slope on lightness
    (``reference``, as shipped). Returns the last one's false rejects of each source left out."""
    fit = {s: chroma_of(s, n, "fit") for s in sources}
    scored = {s: chroma_of(s, n, "score") for s in dict.fromkeys((*sources, *HELD_OUT))}
    print(f"\nLeave one source out: the built-in colour reference pooled without a source judges that source's "
          f"score half (limit {limit});\ncasts as shifts of its skin colours, mean over red/blue/green/yellow; "
          "'all': the reference pooled over every source")
    print(f"  {'reference':<18} {'source':<10} {'n':>4}   "
          f"{'left out: false rejects (darkest tenth), casts moderate / strong':<66} {'all: the same'}")
    flat = {"lightness": None, "lightness_sd": 0.0, "slope": (0.0, 0.0)}
    variants = {"plug-in": lambda f: reference(f, "plug-in").model_copy(update=flat),
                "predictive": lambda f: reference(f).model_copy(update=flat),
                "predictive+slope": reference}
    out = {}
    for name, build in variants.items():
        every = build(list(fit.values()))
        for s, x in scored.items():
            left = rates(x, build([fit[o] for o in sources if o != s]), limit) if s in fit else None
            fr, dark, mod, strong = rates(x, every, limit)
            shown = f"{left[0]:5.1f} % ({left[1]:5.1f} %), {left[2]:5.1f} / {left[3]:5.1f} %" if left else "(never fitted on)"
            print(f"  {name:<18} {s:<10} {len(x):>4}   {shown:<66} {fr:5.1f} % ({dark:5.1f} %), {mod:5.1f} / {strong:5.1f} %")
            if name == "predictive+slope":
                out[s] = left[0] if left else fr
    return out


def main(argv: list[str] | None = None) -> int:
    """Fit and print the pooled reference and how it scores the fit halves against the current one."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=600, help="fit-half images per source (default 600)")
    ap.add_argument("--sources", default="ph2,isic2017,ham10000,bcn20000")
    ap.add_argument("--leave-one-out", action="store_true",
                    help="instead: how the pooled reference judges a clinic it was not fitted on (score halves)")
    args = ap.parse_args(argv)
    if args.leave_one_out:
        got = leave_one_out(args.sources.split(","), args.n, QualitySettings().dermoscopic.colour_max)
        print("loso_colour_false_rejects " + " ".join(f"{s}={v:.1f}%" for s, v in got.items()))
        return 0
    by_source = {s: chroma_of(s, args.n) for s in args.sources.split(",")}
    fitted = reference(list(by_source.values()))
    settings = QualitySettings()
    limit = settings.dermoscopic.colour_max
    report("current default", settings.reference, by_source, limit)
    report("fitted mixture", fitted, by_source, limit)
    print(f"chroma = {list(fitted.chroma)}\ncov = {[list(c) for c in fitted.cov]}\nlightness = {fitted.lightness}\n"
          f"lightness_sd = {fitted.lightness_sd}\nslope = {list(fitted.slope)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
