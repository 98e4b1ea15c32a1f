"""The classifier never sees the contact plate's grey patch: it is painted over from the skin round it before the
model's canvas is made (the model was trained without one), and the kiosk service tells its classifier, and every
model that replaces it, where the patch is."""

from __future__ import annotations

import numpy as np
import pytest

from edge.camera import synth
from edge.classifier import Classifier, without_patch
from edge.service import KioskService
from tests.test_kiosk_service import MODEL_DIR, config
from wire.kioskconfig.quality import GreyPatch

pytestmark = pytest.mark.skipif(not (MODEL_DIR / "manifest.json").exists(), reason="no model in models/lesion yet")

PATCH = GreyPatch(x=0.5, y=0.88, radius=0.05)


def test_the_model_sees_the_skin_round_the_patch_not_the_patch():
    clf = Classifier(MODEL_DIR, threads=1)
    plain = synth.lesion_image(800, 600, 11, centre=(0.5, 0.55))
    patched = synth.grey_patch(plain, PATCH.x, PATCH.y, PATCH.radius, 140.0)
    seen = clf.probabilities(patched)
    clf.patch = PATCH
    painted = clf.probabilities(patched)
    # painted over, the frame with the patch is the frame without it, painted over alike: the patch leaves nothing
    assert np.array_equal(without_patch(patched, PATCH), without_patch(plain, PATCH))
    clf.patch = None
    assert np.allclose(painted, clf.probabilities(without_patch(plain, PATCH)), atol=1e-6)
    assert not np.allclose(seen, painted, atol=1e-6)  # and it would have seen it otherwise
    # only the patch and its rim are painted over
    changed = (without_patch(patched, PATCH) != patched).any(axis=2)
    ys, xs = np.nonzero(changed)
    r = PATCH.radius * 600
    assert np.hypot(xs - PATCH.x * 799, ys - PATCH.y * 599).max() <= 1.3 * r + 4


def test_the_service_tells_its_classifier_and_a_replacement_where_the_patch_is(tmp_path):
    cfg = config(tmp_path, quality={"grey_patch": PATCH.model_dump()})
    with KioskService(cfg, with_link=False) as svc:
        assert svc.classifier.patch == PATCH
        fresh = Classifier(MODEL_DIR, threads=1)
        assert fresh.patch is None
        svc.replace_classifier(fresh)
        assert svc.classifier is fresh and fresh.patch == PATCH
    with KioskService(config(tmp_path / "plain"), with_link=False) as svc:
        assert svc.classifier.patch is None
