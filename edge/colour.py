"""Colour constancy for the classifier's input: Shades of Gray (Finlayson and Trezzi, 2004).

Each channel is scaled so that the image's Minkowski p-norm mean comes out grey: the illuminant
estimate ``e_c = mean(I_c ** p) ** (1 / p)`` is normalised to unit length and the channel divided
by ``e_c * sqrt(3)`` (a grey image is left as it is). ``p = 6`` is what ISIC challenge entries use
against differences between clinics' lights and cameras (Barata et al., 2015).

Plain numpy with no other dependency, so that the model's training (``models.sources``, on a GPU
machine without the kiosk's packages) and the kiosk (``edge.classifier``) call the same function on
the same uint8 canvas and their inputs are identical.
"""

from __future__ import annotations

import numpy as np

#: The colour-constancy methods a model's manifest may name (``input.colour``).
METHODS = ("none", "shades-of-gray")
#: The Minkowski norm of Shades of Gray (1: grey world; infinity: max-RGB).
DEFAULT_POWER = 6.0


def shades_of_gray(rgb: np.ndarray, power: float = DEFAULT_POWER) -> np.ndarray:
    """A uint8 (H, W, 3) image with its channels rescaled so that their ``power``-norm means are equal.

    The output is uint8 again (rounded, clipped at 255); a black image is returned unchanged. Done
    with lookup tables over the 256 levels (a histogram per channel for the estimate, a table per
    channel for the gain): about 1 ms for a 224-px canvas where ``np.power`` on every pixel took 7.
    """
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"shades_of_gray needs a uint8 (H, W, 3) image, not {rgb.dtype} {rgb.shape}")
    levels = np.arange(256, dtype=np.float64)
    flat = rgb.reshape(-1, 3)
    weights = (levels / 255.0) ** power
    e = np.array([np.bincount(flat[:, c], minlength=256) @ weights for c in range(3)]) / max(1, len(flat))
    e = e ** (1.0 / power)
    norm = float(np.sqrt(np.sum(e * e)))
    if norm <= 1e-6 or np.any(e <= 1e-6):
        return rgb.copy()
    gain = 1.0 / (e / norm * np.sqrt(3.0))
    table = np.clip(np.rint(levels[:, None] * gain[None, :]), 0, 255).astype(np.uint8)  # 256 x 3
    return np.stack([table[:, c][rgb[..., c]] for c in range(3)], axis=-1)


def apply_colour(rgb: np.ndarray, method: str, power: float = DEFAULT_POWER) -> np.ndarray:
    """``rgb`` after the manifest's colour-constancy ``method`` (``none`` returns it as it is)."""
    if method == "none":
        return rgb
    if method == "shades-of-gray":
        return shades_of_gray(rgb, power)
    raise ValueError(f"unknown colour constancy {method!r}: expected one of {METHODS}")
