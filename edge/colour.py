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

    The output is uint8 again (rounded, clipped at 255); a black image is returned unchanged.
    """
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"shades_of_gray needs a uint8 (H, W, 3) image, not {rgb.dtype} {rgb.shape}")
    x = rgb.astype(np.float32)
    e = np.power(np.mean(np.power(x / 255.0, power), axis=(0, 1)), 1.0 / power)
    norm = float(np.sqrt(np.sum(e * e)))
    if norm <= 1e-6 or np.any(e <= 1e-6):
        return rgb.copy()
    gain = (1.0 / (e / norm * np.sqrt(3.0))).astype(np.float32)
    return np.clip(np.rint(x * gain), 0, 255).astype(np.uint8)


def apply_colour(rgb: np.ndarray, method: str, power: float = DEFAULT_POWER) -> np.ndarray:
    """``rgb`` after the manifest's colour-constancy ``method`` (``none`` returns it as it is)."""
    if method == "none":
        return rgb
    if method == "shades-of-gray":
        return shades_of_gray(rgb, power)
    raise ValueError(f"unknown colour constancy {method!r}: expected one of {METHODS}")
