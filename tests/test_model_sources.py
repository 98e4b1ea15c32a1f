"""models.sources (lesion-grouped multi-source split, the training canvas) and models.augment, on generated data.

The dataset is never read here.
"""

from __future__ import annotations

import numpy as np
import pytest

from models.sources import split_grouped, to_square


def _toy(n_lesions: int = 400, seed: int = 0):
    rng = np.random.default_rng(seed)
    groups, labels, sources = [], [], []
    for g in range(n_lesions):
        k = int(rng.integers(1, 4))  # 1-3 images per lesion
        lab, src = int(rng.integers(0, 8)), ["ham10000", "isic2019-bcn", "isic2017"][g % 3]
        groups += [f"L{g}"] * k
        labels += [lab] * k
        sources += [src] * k
    return np.array(groups), np.array(labels), np.array(sources)


def test_split_keeps_each_lesion_on_one_side_and_covers_everything():
    groups, labels, sources = _toy()
    parts = split_grouped(groups, labels, sources, seed=0)
    seen = np.concatenate(list(parts.values()))
    assert sorted(seen.tolist()) == list(range(len(groups)))
    sides = [set(groups[v]) for v in parts.values()]
    assert not (sides[0] & sides[1]) and not (sides[0] & sides[2]) and not (sides[1] & sides[2])
    for name, frac in (("val", 0.15), ("test", 0.15)):
        for s in np.unique(sources):  # stratified by source
            share = len(set(groups[parts[name]][sources[parts[name]] == s])) / len(set(groups[sources == s]))
            assert abs(share - frac) < 0.06, (name, s, share)


def test_split_is_deterministic_and_independent_of_order():
    groups, labels, sources = _toy(seed=1)
    a = split_grouped(groups, labels, sources, seed=0)
    perm = np.random.default_rng(2).permutation(len(groups))
    b = split_grouped(groups[perm], labels[perm], sources[perm], seed=0)
    for k in a:
        assert set(groups[a[k]]) == set(groups[perm][b[k]])


def test_to_square_takes_the_centre_of_a_wide_image_and_keeps_a_square_one():
    wide = np.zeros((150, 200, 3), np.uint8)
    wide[:, :25] = 255  # only the left margin is white: cut off by the centre square
    out = to_square(wide, "ham10000", 224)
    assert out.shape == (224, 224, 3) and out.max() == 0
    sq = np.full((84, 84, 3), 7, np.uint8)
    assert (to_square(sq, "isic2019-bcn", 224) == 7).all()


def test_augment_v2_shapes_determinism_and_range():
    torch = pytest.importorskip("torch", reason="training venv")
    from models.augment import augment_v2

    x = torch.from_numpy(np.random.default_rng(0).integers(0, 255, (6, 3, 96, 96), dtype=np.uint8))

    def run(seed):
        g, c = torch.Generator(), torch.Generator()
        g.manual_seed(seed)
        c.manual_seed(seed)
        return augment_v2(x, 64, g, c, lowres_p=0.5)

    a, b = run(1), run(1)
    assert a.shape == (6, 3, 64, 64) and a.dtype == torch.float32
    assert torch.equal(a, b) and not torch.equal(a, run(2))
    assert a.min() >= -1.0 and a.max() <= 1.0  # (x - 127) / 128 of values in 0..255
