"""The leave-one-source-out rule for the gate's limits (bench.quality_loso): every source weighs the same."""

import numpy as np

from bench.quality_loso import fitted_limit, refused


def test_a_fitted_limit_passes_its_share_with_every_source_weighing_the_same():
    big = np.linspace(0.5, 1.0, 1000)          # a large source, all of it sharp
    small = np.linspace(0.1, 0.5, 10)          # a small, softer one
    # a min limit passing 90 %: a fifth of the small source is refused, none of the large one
    lim = fitted_limit([big, small], "min", 0.9)
    assert 0.1 < lim < 0.2 and refused(small, "min", lim) == 0.2 and refused(big, "min", lim) == 0.0
    # pooled as one source, the large one would set the limit, and all of the small one would be refused
    pooled = fitted_limit([np.concatenate([big, small])], "min", 0.9)
    assert pooled > 0.5 and refused(small, "min", pooled) == 1.0
    # a max limit is the mirror image
    assert fitted_limit([-big, -small], "max", 0.9) == -lim
