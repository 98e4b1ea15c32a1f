"""The uncalibrated kiosk's built-in colour reference: an equal-weight mixture of the sources."""

import numpy as np

from bench.quality_pooled import distances, mixture
from wire.kioskconfig.quality import KioskReference


def test_every_source_counts_once_whatever_its_size():
    rng = np.random.default_rng(0)
    big = rng.normal((0.4, 0.0), 0.05, size=(5000, 2))
    small = rng.normal((0.2, -0.2), 0.05, size=(50, 2))
    mean, cov = mixture([big, small])
    # halfway between the two clinics, not pulled to the larger one
    assert np.allclose(mean, (0.3, -0.1), atol=0.01)
    # the spread between the clinics is part of the reference, taken the same in every direction and widened
    # for a clinic not among them: half the trace of their means' unbiased covariance (0.02 a side) times 1 + 1/2
    assert np.allclose(np.diag(cov), 0.05 ** 2 + 0.03, rtol=0.1) and abs(cov[0, 1]) < 0.002
    assert np.all(distances(np.array([[0.4, 0.0], [0.2, -0.2]]), mean, cov) < 1.5)
    # a very strong cast (e^0.6 towards red) on the larger clinic's skin lies outside
    assert distances(np.array([[1.0, 0.0]]), mean, cov)[0] > 3.5
    # the plug-in spread (the reference until 2026-12-05) holds only the direction the two clinics differ in:
    # a third clinic as far from their middle the other way lies 2.8 sd out, not 0.8
    plug_mean, plug_cov = mixture([big, small], "plug-in")
    assert np.allclose(np.diag(plug_cov), 0.05 ** 2 + 0.1 ** 2, rtol=0.1)
    third = np.array([[0.2, 0.0]])
    assert distances(third, plug_mean, plug_cov)[0] > 2.5 and distances(third, mean, cov)[0] < 1.0


def test_built_in_reference_passes_each_source_and_flags_a_very_strong_cast_of_any_of_them():
    ref = KioskReference()
    mean, cov = np.array(ref.chroma), np.array(ref.cov)
    # the sources' mean skin colours (PH2, ISIC 2017, HAM10000, BCN20000: `python -m bench.quality_pooled`, fit halves)
    sources = np.array([[0.238, -0.135], [0.185, -0.081], [0.342, 0.041], [0.109, -0.023]])
    assert np.all(distances(sources, mean, cov) < 2.0)
    # an e^0.7 (a channel doubled) cast towards red, blue, green or yellow is out whichever clinic's skin it is
    # on; weaker ones need the kiosk's own calibration (README, "The quality gate": the uncalibrated kiosk)
    for shift in [(0.7, 0.0), (0.0, 0.7), (-0.7, -0.7), (0.0, -0.7)]:
        assert np.all(distances(sources + shift, mean, cov) > 3.5), shift
