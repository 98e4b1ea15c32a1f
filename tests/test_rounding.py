"""GPTQ weight rounding (models.rounding): on the converter's int8 grid, and better than nearest rounding."""

import numpy as np
import pytest

from models.rounding import QMAX, gptq, int8_scale, nearest, output_error


def correlated(rng, n=4000, d=48):
    """Inputs with strongly correlated features and a non-zero mean, like post-ReLU activations."""
    x = rng.normal(size=(n, d)) @ rng.normal(size=(d, d)) * 0.3 + rng.normal(size=d)
    return x.T @ x / n


def weights(rng, rows=24, d=48):
    return rng.normal(size=(rows, d)) * rng.uniform(0.01, 1.0, size=(rows, 1))


def on_grid(q, scale):
    steps = q / scale[:, None]
    return np.abs(steps - np.round(steps)).max() < 1e-9 and np.abs(np.round(steps)).max() <= QMAX


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_gptq_lies_on_the_converters_grid_and_keeps_each_rows_scale(seed):
    rng = np.random.default_rng(seed)
    w, h = weights(rng), correlated(rng)
    q = gptq(w, h)
    s = int8_scale(w)
    assert on_grid(q, s)
    # the converter re-derives the scale from the largest weight: it must come out the same
    np.testing.assert_allclose(int8_scale(q), s, rtol=1e-12)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_gptq_changes_the_layer_output_less_than_nearest_rounding(seed):
    rng = np.random.default_rng(seed)
    w, h = weights(rng), correlated(rng)
    e_near = output_error(w, nearest(w, int8_scale(w)), h)
    e_gptq = output_error(w, gptq(w, h), h)
    assert e_gptq < 0.8 * e_near, (e_gptq, e_near)


def test_uncorrelated_inputs_leave_nothing_to_compensate():
    rng = np.random.default_rng(3)
    w = weights(rng)
    s = int8_scale(w)
    np.testing.assert_allclose(gptq(w, np.eye(w.shape[1]), damp=0.0), nearest(w, s), atol=1e-12)


def test_one_matrix_per_row_as_in_a_depthwise_convolution():
    rng = np.random.default_rng(4)
    w = weights(rng, rows=6, d=9)
    hs = np.stack([correlated(rng, d=9) for _ in range(6)])
    q = gptq(w, hs)
    assert on_grid(q, int8_scale(w))
    near = nearest(w, int8_scale(w))
    per_row = [(output_error(w[i:i + 1], q[i:i + 1], hs[i]), output_error(w[i:i + 1], near[i:i + 1], hs[i]))
               for i in range(6)]
    assert sum(g for g, _ in per_row) < sum(n for _, n in per_row)


def test_a_dead_input_is_rounded_and_kept_not_a_crash():
    rng = np.random.default_rng(5)
    w, h = weights(rng), correlated(rng)
    h[7, :] = h[:, 7] = 0.0  # a channel that is always zero on the calibration images
    q = gptq(w, h)
    assert np.isfinite(q).all() and on_grid(q, int8_scale(w))
    np.testing.assert_allclose(int8_scale(q), int8_scale(w), rtol=1e-12)
    np.testing.assert_allclose(q[:, 7], nearest(w, int8_scale(w))[:, 7], atol=1e-12)
