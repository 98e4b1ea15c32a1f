"""Blue-grey and violet lesions are lesions, not stickers (``edge.quality.markers``, issue 24's thirty-third round).

The gate passed over every blob bluer than b* -15 as a blue sticker or pen mark. But blue-grey is a lesion's colour
too: a pigmented basal cell carcinoma's ovoid nests, a melanoma's blue-white veil, a blue naevus; and a vascular
lesion is violet. Such a lesion in the middle of the view was not found ("No lesion found"), or a speck at the rim
was taken instead and the photograph refused as "cut by the edge"; the classifier's crop, the gate's lesion, missed
it. In the middle of the view a blob that blue is now the lesion, unless it is bluer than any lesion (a blue sticker)
or a drawn line (a pen's ring round the lesion). Beside the middle a blue blob is still a sticker or pen mark.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from edge.camera import synth
from edge.classifier import lesion_square
from edge.quality import QualitySettings, assess
from edge.quality.markers import BLUE_B, BLUE_MARK_B, is_marker
from edge.quality.scene import scene

SKIN = (170, 185, 225)  # BGR: fair skin, L* 78, a* 12, b* 13
#: BGR colours of lesions as blue as a sticker was taken to be (CIELAB b* below -15), as measured on such lesions of
#: BCN20000 and HAM10000 (b* -15 to -25): blue-grey (L* 49, a* 5, b* -20) and a vascular lesion's violet (L* 45, a*
#: 51, b* -24).
LESIONS = {"blue-grey": (150, 115, 105), "violet": (150, 70, 170)}
BLUE_STICKER = (200, 140, 60)  # L* 56, a* -5, b* -38: bluer than any lesion
PEN = (150, 100, 140)  # L* 48, a* 25, b* -21: violet-blue ink, as ISIC_0013414's ring round its lesion


def lab_of(bgr: tuple[int, int, int]) -> tuple[float, float]:
    """(a*, b*) of one BGR colour."""
    lab = cv2.cvtColor(np.uint8([[bgr]]), cv2.COLOR_BGR2Lab)[0, 0].astype(float)
    return lab[1] - 128, lab[2] - 128


def test_the_colours_are_what_they_stand_for():
    for colour in LESIONS.values():
        assert BLUE_MARK_B <= lab_of(colour)[1] < BLUE_B
    assert lab_of(BLUE_STICKER)[1] < BLUE_MARK_B
    assert BLUE_MARK_B <= lab_of(PEN)[1] < BLUE_B


def irregular(shape: tuple[int, int], centre: tuple[int, int], radius: float, lobes: int = 5) -> np.ndarray:
    """A lobed blob (uint8 0/255), as a lesion's outline is."""
    t = np.linspace(0, 2 * np.pi, 90)
    r = radius * (1 + 0.25 * np.sin(lobes * t))
    pts = np.stack([centre[0] + r * np.cos(t), centre[1] + r * np.sin(t)], axis=1).astype(np.int32)
    blob = np.zeros(shape, np.uint8)
    cv2.fillPoly(blob, [pts], 255)
    return blob


def still_with(colour: tuple[int, int, int], centre: tuple[float, float] = (0.5, 0.5), radius: float = 0.18,
               seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A 1600 x 1200 still of skin with a textured lesion of ``colour`` (BGR) at ``centre`` (fractions of the frame),
    ``radius`` of the shorter side across; and the lesion's mask."""
    rng = np.random.default_rng(seed)
    h, w = 1200, 1600
    img = np.full((h, w, 3), SKIN, np.float32)
    blob = irregular((h, w), (int(centre[0] * w), int(centre[1] * h)), radius * min(h, w))
    soft = cv2.GaussianBlur(blob, (0, 0), 6).astype(np.float32)[..., None] / 255
    blotch = cv2.GaussianBlur(rng.normal(0, 1, (h, w)).astype(np.float32), (0, 0), 12)[..., None]
    lesion = np.array(colour, np.float32) * (1 + 2.5 * blotch)  # darker and paler nests inside
    img = img * (1 - soft) + lesion * soft
    img += rng.normal(0, 3, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8), blob


def jpeg(img: np.ndarray) -> bytes:
    return synth.encode_jpeg(img, 92)


@pytest.mark.parametrize("name", sorted(LESIONS))
def test_a_blue_or_violet_lesion_in_the_middle_is_the_lesion(name):
    img, truth = still_with(LESIONS[name])
    data = jpeg(img)
    q = assess(data, "dermoscopic")
    assert q.checks["lesion"].ok and q.checks["framing"].ok, {k: c.message for k, c in q.checks.items() if not c.ok}
    s = QualitySettings()
    sc = scene(data, s, s.dermoscopic, text=False)
    small_truth = cv2.resize(truth, sc.lesion.mask.shape[::-1], interpolation=cv2.INTER_NEAREST) > 0
    found = sc.lesion.mask > 0
    assert np.count_nonzero(found & small_truth) / np.count_nonzero(found | small_truth) > 0.7
    assert sc.lesion.markers is None or not np.any((sc.lesion.markers > 0) & small_truth)


@pytest.mark.parametrize("name", sorted(LESIONS))
def test_the_classifiers_crop_is_on_the_blue_or_violet_lesion(name):
    img, _ = still_with(LESIONS[name], centre=(0.45, 0.55))
    x0, y0, side = lesion_square(img)
    h, w = img.shape[:2]
    assert abs(x0 + side / 2 - 0.45 * w) < 0.05 * w and abs(y0 + side / 2 - 0.55 * h) < 0.05 * h
    assert side < 0.8 * min(h, w)  # the lesion's square, not the whole frame


def test_a_blue_blob_beside_the_middle_is_still_a_marker():
    img, blob = still_with(LESIONS["blue-grey"], centre=(0.85, 0.5), radius=0.08)
    assert is_marker(cv2.cvtColor(img, cv2.COLOR_BGR2Lab), blob)
    img, blob = still_with(LESIONS["blue-grey"], radius=0.08)
    assert not is_marker(cv2.cvtColor(img, cv2.COLOR_BGR2Lab), blob)


def test_a_blob_bluer_than_any_lesion_is_a_sticker_even_in_the_middle():
    img = np.full((300, 400, 3), SKIN, np.uint8)
    blob = np.zeros((300, 400), np.uint8)
    cv2.circle(blob, (200, 150), 40, 255, -1)
    img[blob > 0] = BLUE_STICKER
    assert is_marker(cv2.cvtColor(img, cv2.COLOR_BGR2Lab), blob)


def test_a_pen_ring_round_the_lesion_is_not_the_lesion():
    # A clinic's ring of violet-blue ink round a brown naevus in the middle: the ring's own centre is the middle, and
    # it is as blue as a blue-grey lesion, but it is a drawn line; the naevus inside is the lesion.
    img = synth.lesion_image(1600, 1200, 3, size=0.07, vignette=False)
    ring = np.zeros(img.shape[:2], np.uint8)
    cv2.ellipse(ring, (800, 600), (330, 400), 10, 20, 340, 255, 34)  # open at the right, as a hand draws it
    img[ring > 0] = PEN
    lab = cv2.cvtColor(img, cv2.COLOR_BGR2Lab)
    assert is_marker(lab, ring)
    data = jpeg(img)
    q = assess(data, "dermoscopic")
    assert q.checks["lesion"].ok and q.checks["framing"].ok, {k: c.message for k, c in q.checks.items() if not c.ok}
    s = QualitySettings()
    sc = scene(data, s, s.dermoscopic, text=False)
    h, w = sc.lesion.mask.shape
    assert abs(sc.lesion.centre[0] - w / 2) < 0.08 * w and abs(sc.lesion.centre[1] - h / 2) < 0.08 * h
    assert sc.lesion.area < 0.1  # the naevus, not the ring filled in
