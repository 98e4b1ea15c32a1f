"""Colour stickers and pen marks beside the lesion: neither lesion nor skin (``edge.quality.markers``).

Clinics stick a round colour label beside the lesion (ISIC 2017's photographs hold orange, yellow,
salmon, green and blue ones, some rings of two colours). Before the warm-sticker and green rules, an
orange, salmon or green sticker cut by the edge of the frame was taken for a lesion cut by the edge
and the photograph refused for framing (the yellow one was already caught as a bright orange).
Then a faint patch of uneven skin that outscores the lesion by its size gives way to the lesion in
the middle (``segment_lesion``'s ``min_contrast``), and the classifier's crop is the gate's lesion.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from edge.camera import synth
from edge.quality import QualitySettings, assess
from edge.quality.markers import is_marker
from edge.quality.scene import scene

#: Sticker colours (BGR) as photographed: orange, yellow, salmon, green.
STICKERS = {"orange": (60, 150, 235), "yellow": (30, 190, 215), "salmon": (100, 120, 240), "green": (90, 170, 60)}


def jpeg(img: np.ndarray) -> bytes:
    return synth.encode_jpeg(img, 92)


def with_sticker(img: np.ndarray, colour: tuple[int, int, int], inner: tuple[int, int, int] | None = None) -> np.ndarray:
    """``img`` with a round sticker 0.3 of the shorter side in radius on the skin, cut by the right-hand
    edge of the frame (any dark vignette stays over it)."""
    out = img.copy()
    h, w = out.shape[:2]
    centre, r = (int(w * 0.9), int(h * 0.45)), int(0.3 * min(h, w))
    cv2.circle(out, centre, r, colour, -1, lineType=cv2.LINE_AA)
    if inner is not None:
        cv2.circle(out, centre, r // 2, inner, -1, lineType=cv2.LINE_AA)
    rim = img.max(axis=2) < 40  # the vignette outside the field of view stays dark
    out[rim] = img[rim]
    return out


def small_lesion(seed: int) -> np.ndarray:
    """A good still whose lesion (0.08 of the shorter side in radius) is smaller than the sticker; the
    field of view fills the frame, as in ISIC 2017's photographs with stickers."""
    return synth.lesion_image(1600, 1200, seed, size=0.08, vignette=False)


def lesion_found_in_the_middle(q, sc, plain) -> None:
    """The lesion measured is the still's own (near the middle, about its size), not the sticker."""
    h, w = sc.lesion.mask.shape
    assert abs(sc.lesion.centre[0] - w / 2) < 0.1 * w and abs(sc.lesion.centre[1] - h / 2) < 0.1 * h
    assert abs(q.checks["lesion"].value - plain.checks["lesion"].value) < 0.25 * plain.checks["lesion"].value


@pytest.mark.parametrize("name", sorted(STICKERS))
def test_a_sticker_at_the_edge_is_not_the_lesion(name):
    good = small_lesion(3)
    plain = assess(jpeg(good), "dermoscopic")
    still = jpeg(with_sticker(good, STICKERS[name]))
    q = assess(still, "dermoscopic")
    assert q.checks["framing"].ok and q.checks["lesion"].ok, {k: c.message for k, c in q.checks.items() if not c.ok}
    s = QualitySettings()
    lesion_found_in_the_middle(q, scene(still, s, s.dermoscopic), plain)


def test_a_two_colour_ring_sticker_is_not_the_lesion():
    good = small_lesion(4)
    plain = assess(jpeg(good), "dermoscopic")
    still = jpeg(with_sticker(good, STICKERS["orange"], inner=(200, 140, 60)))  # orange round a blue centre
    q = assess(still, "dermoscopic")
    assert q.checks["framing"].ok, q.checks["framing"].message
    s = QualitySettings()
    lesion_found_in_the_middle(q, scene(still, s, s.dermoscopic), plain)


def blob_at(shape: tuple[int, int], centre: tuple[int, int], radius: int) -> np.ndarray:
    m = np.zeros(shape, np.uint8)
    cv2.circle(m, centre, radius, 255, -1)
    return m


def test_a_bright_orange_round_lesion_in_the_middle_is_still_a_lesion():
    # As bright, saturated and round as a sticker, but where the photographer aims: a lesion.
    img = np.full((300, 400, 3), (170, 185, 225), np.uint8)
    blob = blob_at((300, 400), (200, 150), 40)
    img[blob > 0] = STICKERS["orange"]
    lab = cv2.cvtColor(img, cv2.COLOR_BGR2Lab)
    assert not is_marker(lab, blob)
    beside = blob_at((300, 400), (350, 150), 40)
    img2 = np.full((300, 400, 3), (170, 185, 225), np.uint8)
    img2[beside > 0] = STICKERS["orange"]
    assert is_marker(cv2.cvtColor(img2, cv2.COLOR_BGR2Lab), beside)


def test_a_textured_irregular_orange_brown_blob_beside_the_middle_is_a_lesion():
    # A pale orange-brown naevus off-centre: irregular outline, pigment inside; not a sticker.
    rng = np.random.default_rng(0)
    img = np.full((300, 400, 3), (170, 185, 225), np.uint8)
    blob = np.zeros((300, 400), np.uint8)
    pts = np.array([(330 + int(45 * np.cos(t) * (1 + 0.35 * np.sin(5 * t))),
                     150 + int(45 * np.sin(t) * (1 + 0.35 * np.sin(5 * t)))) for t in np.linspace(0, 2 * np.pi, 60)])
    cv2.fillPoly(blob, [pts.astype(np.int32)], 255)
    base = np.array(STICKERS["orange"], np.float32) * 0.85
    texture = rng.normal(0, 18, (300, 400, 1)).astype(np.float32)
    img[blob > 0] = np.clip(base + texture[blob > 0], 0, 255).astype(np.uint8)
    assert not is_marker(cv2.cvtColor(img, cv2.COLOR_BGR2Lab), blob)


@pytest.mark.parametrize("name", sorted(STICKERS))
def test_the_skin_measured_leaves_the_sticker_out(name):
    # A salmon or green sticker is not saturated enough for the pixel rule (chroma over 60): it is left
    # out because the segmentation passed it over as a sticker. Counted as skin, it would move the
    # skin's colour, and a calibration still holding one would move the kiosk's reference.
    good = small_lesion(3)
    s = QualitySettings()
    sc = scene(jpeg(with_sticker(good, STICKERS[name])), s, s.dermoscopic)
    h, w = sc.skin.shape
    sticker = np.zeros((h, w), np.uint8)
    cv2.circle(sticker, (int(w * 0.9), int(h * 0.45)), int(0.3 * min(h, w)) - 2, 255, -1)
    assert np.count_nonzero(sc.skin & (sticker > 0)) < 0.02 * np.count_nonzero(sticker)


def faint_patch_beside_a_lesion() -> np.ndarray:
    """Uneven skin (a large patch barely darker than the rest, over 6 delta E short, right of the middle)
    beside a small lesion in the middle (200, 150) that does stand out; 400x300."""
    rng = np.random.default_rng(1)
    img = np.full((300, 400, 3), (150, 170, 205), np.float32)
    patch = np.zeros((300, 400), np.uint8)
    cv2.ellipse(patch, (310, 150), (60, 110), 0, 0, 360, 255, -1)
    patch = cv2.GaussianBlur(patch, (0, 0), 8).astype(np.float32)[..., None] / 255
    img = img * (1 - 0.07 * patch)
    cv2.circle(img, (200, 150), 16, (110, 130, 175), -1)
    return np.clip(img + rng.normal(0, 2, img.shape), 0, 255).astype(np.uint8)


def test_a_faint_patch_beside_the_lesion_gives_way_to_the_lesion_in_the_middle():
    # The patch outscores the small lesion by its size; the lesion in the middle is the one measured.
    from edge.quality.analysis import find_fov
    from edge.quality.segment import segment_lesion

    img = faint_patch_beside_a_lesion()
    fov = find_fov(cv2.cvtColor(img, cv2.COLOR_BGR2GRAY))
    first = segment_lesion(img, fov)  # no contrast asked for: the best-scoring blob, the patch
    assert first.contrast < 6 and first.centre[0] > 240
    lesion = segment_lesion(img, fov, min_contrast=6.0)
    assert lesion.contrast >= 6 and abs(lesion.centre[0] - 200) < 10 and abs(lesion.centre[1] - 150) < 10


@pytest.mark.parametrize("still", ["orange sticker", "green sticker", "faint patch"])
def test_the_classifiers_crop_is_the_gates_lesion(still):
    """``edge.classifier.lesion_square`` segments as the gate does (``scene.find_lesion``): the crop is centred
    on the lesion in the middle, not on a sticker at the edge nor on a faint patch of skin that outscores it."""
    from edge.classifier import lesion_square

    img = faint_patch_beside_a_lesion() if still == "faint patch" else \
        with_sticker(small_lesion(3), STICKERS[still.split()[0]])
    x0, y0, side = lesion_square(img)
    h, w = img.shape[:2]
    assert abs(x0 + side / 2 - w / 2) < 0.1 * w and abs(y0 + side / 2 - h / 2) < 0.1 * h
    sc = scene(jpeg(img), QualitySettings(), QualitySettings().dermoscopic)
    assert sc.present and abs(sc.lesion.centre[0] / sc.lesion.mask.shape[1] - (x0 + side / 2) / w) < 0.02


#: A lavender ring round a red centre (BGR, as measured on ISIC_0008992), as ISIC 2017's two-colour stickers: the
#: centre is as red as a vascular lesion, and only the ring round it says it is a sticker.
LAVENDER, STICKER_RED = (231, 185, 193), (123, 96, 251)


def test_a_red_blob_beside_the_middle_is_a_lesion_unless_a_sticker_ring_is_round_it():
    # A vascular lesion aimed beside: as red as the sticker's centre, skin round it.
    img = np.full((300, 400, 3), (170, 185, 225), np.uint8)
    blob = blob_at((300, 400), (340, 150), 30)
    img[blob > 0] = STICKER_RED
    assert not is_marker(cv2.cvtColor(img, cv2.COLOR_BGR2Lab), blob)
    ringed = img.copy()
    ringed[(blob_at((300, 400), (340, 150), 55) > 0) & (blob == 0)] = LAVENDER
    assert is_marker(cv2.cvtColor(ringed, cv2.COLOR_BGR2Lab), blob)
    # the same where the whole skin is as blue as the ring (a bluish thumbnail): the skin under a cast, not a sticker
    bluish = ringed.copy()
    bluish[blob_at((300, 400), (340, 150), 55) == 0] = LAVENDER
    assert not is_marker(cv2.cvtColor(bluish, cv2.COLOR_BGR2Lab), blob)
