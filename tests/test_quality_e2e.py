"""End to end: a folder of generated stills -> replay camera -> capture -> quality gate."""

from __future__ import annotations

import cv2

from edge.camera import CameraSettings, open_camera, synth
from edge.quality import QualitySettings, assess


def test_replay_folder_through_the_gate(tmp_path):
    base = synth.lesion_image(1600, 1200, 21)
    stills = {
        "01_good.jpg": (base, set()),
        "02_blurred.jpg": (synth.degrade_blur(base, 9), {"focus"}),
        "03_dark.jpg": (synth.degrade_exposure(base, -2.5), {"exposure"}),
        "04_glare.jpg": (synth.degrade_glare(base, 10, 16, seed=2), {"glare"}),
        "05_off_frame.jpg": (synth.degrade_offcentre(base, 0.5, 2), {"framing"}),
        "06_good_no_vignette.png": (synth.lesion_image(1600, 1200, 22, vignette=False), set()),
    }
    for name, (img, _) in stills.items():
        assert cv2.imwrite(str(tmp_path / name), img, [cv2.IMWRITE_JPEG_QUALITY, 92])
    settings = CameraSettings(source="replay", replay={"folder": tmp_path})
    qs = QualitySettings()
    seen = {}
    with open_camera(settings) as cam:
        for _ in range(len(stills)):
            preview = cam.preview_jpeg()
            assert preview[:2] == b"\xff\xd8"
            frame = cam.capture()
            q = assess(frame.jpeg, "dermoscopic", qs)
            seen[frame.metadata["file"]] = q
    assert list(seen) == sorted(stills)
    for name, q in seen.items():
        expect = stills[name][1]
        bad = {k for k, c in q.checks.items() if not c.ok}
        assert q.ok == (not expect), (name, bad)
        assert expect <= bad, (name, bad)


def test_synthetic_replay_12mp_passes_the_gate():
    settings = CameraSettings(source="replay", replay={"width": 4056, "height": 3040, "seed": 5})
    with open_camera(settings) as cam:
        frame = cam.capture()
    assert (frame.width, frame.height) == (4056, 3040)
    q = assess(frame.jpeg, "dermoscopic")
    assert q.ok, {k: c for k, c in q.checks.items() if not c.ok}
