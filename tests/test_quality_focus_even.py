"""A calibrated kiosk reads its focus with every pixel of the region evenly weighed (``KioskReference.focus_even``).

Weighed by its own gradient energy, the focus ratio is made of the region's few strongest edges: hairs, a ruler's
ticks, the rims of glare spots. A photograph with hairs read sharper than the same one without, and one with glare
spots softer or sharper by chance (``bench.quality_focus_even``: PH2's and HAM10000-masks' 350 originals with 14
glare spots kept 0.49 and 0.60 of their detail weighed by energy, median, 0.94 and 0.95 evenly). Evenly weighed (no pixel
weighing more than ``measures.EVEN_PERCENTILE`` of the local coarse energy, the pair the shake check reads) it is
the skin's. A calibration of today measures its stills that way and sets the flag; the built-in normal of an
uncalibrated kiosk and a calibration from before were measured weighed by energy, and stay so.
"""

from __future__ import annotations

from functools import lru_cache

import pytest

from edge.camera import synth
from edge.quality import KioskReference, QualitySettings, assess, focus_values
from edge.quality.calibrate import fit_reference, measure, toml_block
from edge.quality.scene import scene

SEEDS = range(6)


@lru_cache(maxsize=None)
def kiosk() -> QualitySettings:
    """A kiosk calibrated today on 14 generated stills."""
    base = QualitySettings()
    ref = fit_reference([measure(synth.encode_jpeg(synth.lesion_image(1200, 900, 500 + i)), base) for i in range(14)],
                        "generated stills")
    return QualitySettings(reference=ref)


def photograph(seed: int, **kw) -> bytes:
    """A generated dermoscopic still as the camera's JPEG."""
    return synth.encode_jpeg(synth.lesion_image(1600, 1200, 300 + seed, **kw))


def ratios(jpeg: bytes):
    """``focus_values`` of ``jpeg``, as the dermoscopic view's gate measures it."""
    settings = QualitySettings()
    return focus_values(scene(jpeg, settings, settings.dermoscopic))


def test_a_calibration_of_today_reads_the_even_ratio_and_others_the_energy_one():
    ref = kiosk().reference
    assert ref.focus_even and "focus_even = true" in toml_block(ref)
    jpeg = photograph(0)
    r = ratios(jpeg)
    assert r.even_worst != pytest.approx(r.worst, rel=0.1)  # the two measures differ on generated skin
    got = assess(jpeg, "dermoscopic", kiosk()).checks["focus"].value
    assert got == pytest.approx((r.even_worst - 1) / (ref.focus - 1), abs=1e-4)
    # uncalibrated: the built-in normal was fitted weighed by energy
    assert not QualitySettings().reference.focus_even
    got = assess(jpeg, "dermoscopic").checks["focus"].value
    assert got == pytest.approx((r.worst - 1) / (QualitySettings().reference.focus - 1), abs=1e-4)
    # a calibration from before: its table says nothing of the flag, and its frames are measured as its stills were
    before = KioskReference(**ref.model_dump(exclude={"focus_even"}))
    assert not before.focus_even
    got = assess(jpeg, "dermoscopic", QualitySettings(reference=before)).checks["focus"].value
    assert got == pytest.approx((r.worst - 1) / (ref.focus - 1), abs=1e-4)


def test_hairs_do_not_make_a_photograph_read_sharper():
    energy, even = [], []
    for seed in SEEDS:
        bare, hairy = ratios(photograph(seed)), ratios(photograph(seed, hairs=8))
        energy.append((hairy.worst - 1) / (bare.worst - 1))
        even.append((hairy.even_worst - 1) / (bare.even_worst - 1))
    # eight hairs over the same skin: evenly weighed, within a fifth of the bare photograph's detail on every seed
    assert all(0.8 <= k <= 1.2 for k in even), even
    # weighed by energy, the hairs' edges made some read up to twice as sharp
    assert max(energy) > 1.4, energy


def test_glare_spots_move_the_even_ratio_little_and_alike():
    energy, even = [], []
    for seed in SEEDS:
        img = synth.lesion_image(1600, 1200, 300 + seed)
        clean = ratios(synth.encode_jpeg(img))
        for spots, radius in ((14, 20), (30, 12), (8, 30)):
            spotted = ratios(synth.encode_jpeg(synth.degrade_glare(img, spots, radius, seed=seed)))
            energy.append((spotted.worst - 1) / (clean.worst - 1))
            even.append((spotted.even_worst - 1) / (clean.even_worst - 1))
    # what glare hides is the glare check's: the detail left reads 0.6-0.9 of the clean photograph's evenly weighed,
    # while weighed by energy the spots' rims swung it from under half to nearly twice
    assert 0.6 <= min(even) and max(even) <= 0.9, even
    assert min(energy) < 0.5 and max(energy) > 1.5, energy


def test_a_calibrated_kiosk_passes_its_hairy_and_glared_photographs_and_refuses_a_soft_one():
    for seed in (0, 1, 2):
        assert assess(photograph(seed, hairs=8), "dermoscopic", kiosk()).checks["focus"].ok
        glared = synth.degrade_glare(synth.lesion_image(1600, 1200, 300 + seed), 14, 20, seed=seed)
        q = assess(synth.encode_jpeg(glared), "dermoscopic", kiosk())
        assert q.checks["focus"].ok and not q.checks["glare"].ok
        soft = synth.degrade_blur(synth.lesion_image(1600, 1200, 300 + seed), 3)
        assert not assess(synth.encode_jpeg(soft), "dermoscopic", kiosk()).checks["focus"].ok
