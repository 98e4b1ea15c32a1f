"""A refusal as cut by the edge says which edge, and which way to move the view.

It said "cut by the edge of the picture ...: centre it in the view" whatever the edge; a photographer looking at a
lesion running off two sides of a dark, hairy frame had to find the cut themselves. The framing value is
``one_sided``'s as before (its figure and verdict are unchanged on the 3,636 real files measured); the edges are
named by ``region.cut_edges``.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from edge.camera import synth
from edge.quality import assess
from edge.quality.region import describe
from edge.quality.words import cut_words


def framing(img: np.ndarray):
    """The framing check of ``img`` as a dermoscopic photograph."""
    return assess(cv2.imencode(".jpg", img)[1].tobytes(), "dermoscopic").checks["framing"]


@pytest.mark.parametrize("centre,edges,towards", [
    ((0.9, 0.5), "right edge", "right"), ((0.1, 0.5), "left edge", "left"),
    ((0.5, 0.06), "top edge", "top"), ((0.5, 0.94), "bottom edge", "bottom"),
    ((0.92, 0.92), "bottom and right edges", "bottom right"), ((0.08, 0.08), "top and left edges", "top left"),
    ((0.92, 0.08), "top and right edges", "top right"), ((0.08, 0.92), "bottom and left edges", "bottom left"),
])
@pytest.mark.parametrize("seed", [0, 1])
def test_the_refusal_names_the_edges_that_cut_the_lesion(centre, edges, towards, seed):
    c = framing(synth.lesion_image(1600, 1200, seed, vignette=False, centre=centre, size=0.2))
    assert not c.ok
    assert c.message == (f"The lesion is cut by the {edges} of the picture (cut {c.value:.2f}, at most 0.50): move "
                         f"the view to the {towards} and tap again")


@pytest.mark.parametrize("centre,edge", [((0.82, 0.5), "right"), ((0.5, 0.2), "top")])
def test_on_a_round_view_the_edge_is_the_side_of_the_view_it_lies_on(centre, edge):
    # A round field as high as the frame: the lesion slid out of its right, or top, rim.
    c = framing(synth.lesion_image(1600, 1200, 1, vignette_radius=0.6, centre=centre, size=0.2))
    assert not c.ok and f"cut by the {edge} edge of the picture" in c.message


def test_a_lesion_that_is_whole_passes_and_names_no_edge():
    c = framing(synth.lesion_image(1600, 1200, 0, vignette=False, size=0.2))
    assert c.ok and c.message == "ok"


def disc(h: int, w: int, cx: int, cy: int, r: int) -> np.ndarray:
    """A filled disc (uint8 0/255)."""
    m = np.zeros((h, w), np.uint8)
    cv2.circle(m, (cx, cy), r, 255, -1)
    return m


def region_of(mask: np.ndarray):
    """``region.describe`` of the blob ``mask`` on a plain 300 x 400 frame with no vignette: segmented, as the gate
    segments it, inside the view's interior (``FieldOfView.inner``, 3 pixels in at this size)."""
    h, w = mask.shape
    fov = np.full((h, w), 255, np.uint8)
    inner = np.zeros_like(fov)
    inner[3:-3, 3:-3] = 255
    return describe(cv2.bitwise_and(mask, inner), np.full((h, w, 3), 128, np.uint8), fov, inner > 0)


def test_a_lesion_across_the_view_is_cut_alike_on_both_sides_and_names_none():
    # As wide as the view: re-aiming gains nothing, and neither side is named.
    mask = np.zeros((300, 400), np.uint8)
    mask[100:200, :] = 255
    region = region_of(mask)
    assert region.cut == 0.0 and region.cut_edges == ()


def test_a_lesion_grazing_a_corner_names_the_side_it_runs_off_most():
    # Cut across its height by the right edge, only touching the bottom one: the right edge alone.
    region = region_of(disc(300, 400, 395, 240, 60))
    assert region.cut > 0.5 and region.cut_edges == ("right",)


def test_the_words_without_an_edge_still_say_what_to_do():
    assert cut_words(()) == {"edges": "edge", "move": "centre it in the view"}
    assert cut_words(("top", "left"))["move"] == "move the view to the top left"
