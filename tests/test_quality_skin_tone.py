"""The skin-tone benchmark's judgement (bench/quality_skin_tone.py), on made-up measurements: no data set."""

from bench.quality_skin_tone import refusals
from edge.quality import QualitySettings
from edge.quality.calibrate import Still
from wire.kioskconfig.quality import KioskReference


def test_the_same_reference_judges_with_and_without_its_lightness_slope():
    # a kiosk whose stills average ln R/G 0.30 at lightness 5.0 (sd 0.1); darker skin is redder, 0.5 per unit
    ref = KioskReference(chroma=(0.30, -0.05), cov=((0.004, 0.0), (0.0, 0.004)), images=40, lightness=5.0,
                         lightness_sd=0.1, slope=(-0.5, 0.0))
    settings = QualitySettings(reference=ref)
    typical = Still(0.30, -0.05, 3.0, 5.0)
    darker = Still(0.30 + 0.5 * 0.5, -0.05, 3.0, 4.5)  # 0.5 darker, and as much redder as the slope says
    red_cast = Still(0.30 + 0.25, -0.05, 3.0, 5.0)  # the same redness at the stills' own lightness
    before, now = refusals([typical, darker, red_cast], settings)
    assert before.tolist() == [False, True, True]
    # the darker patient passes now (the slope followed for the 0.4 beyond one sd); the cast is still refused
    assert now.tolist() == [False, False, True]
