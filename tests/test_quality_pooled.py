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
    # the spread between the clinics is part of the reference: each clinic's own mean lies 1 sd out
    assert np.allclose(np.diag(cov), 0.05 ** 2 + 0.1 ** 2, rtol=0.1)
    assert np.all(distances(np.array([[0.4, 0.0], [0.2, -0.2]]), mean, cov) < 1.5)
    # a strong cast (e^0.4 towards red) on the larger clinic's skin lies well outside
    assert distances(np.array([[0.8, 0.0]]), mean, cov)[0] > 3.5


def test_built_in_reference_passes_each_source_and_flags_a_very_strong_cast_of_any_of_them():
    ref = KioskReference()
    mean, cov = np.array(ref.chroma), np.array(ref.cov)
    # the sources' mean skin colours (PH2, ISIC 2017, HAM10000: `python -m bench.quality_pooled`, fit halves)
    sources = np.array([[0.239, -0.135], [0.185, -0.081], [0.341, 0.041]])
    assert np.all(distances(sources, mean, cov) < 2.0)
    # an e^0.6 (82 %) cast towards red, blue, green or yellow is out whichever clinic's skin it is on;
    # weaker ones need the kiosk's own calibration (README, "The quality gate": the uncalibrated kiosk)
    for shift in [(0.6, 0.0), (0.0, 0.6), (-0.6, -0.6), (0.0, -0.6)]:
        assert np.all(distances(sources + shift, mean, cov) > 3.5), shift
