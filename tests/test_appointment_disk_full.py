"""A disk that fills mid-appointment: each step refused with DiskFullError and a message, nothing lost.

The kiosk's data folder is a real, small tmpfs that the test mounts (root only; skipped with the
reason where mounting is not allowed) and fills with a filler file.
"""

from __future__ import annotations

import os

import pytest

from edge.outbox import DiskFullError
from edge.service import KioskService
from tests.appointment_kit import PHOTOGRAPHER, PIN, appointment_config, fill_details, photograph
from tests.smallfs import fill, mounted_tmpfs
from tests.test_kiosk_service import MODEL_DIR

pytestmark = pytest.mark.skipif(not (MODEL_DIR / "manifest.json").exists(), reason="no model in models/lesion yet")


@pytest.fixture
def small_fs(tmp_path):
    """A 6 MiB tmpfs for the kiosk's data folder (needs root)."""
    with mounted_tmpfs(tmp_path / "kioskfs", "6m") as mnt:
        yield mnt


def test_disk_full_mid_appointment_refuses_each_step_and_loses_nothing(small_fs):
    cfg = appointment_config(small_fs, camera={"replay": {"width": 640, "height": 480, "seed": 8}},
                             retention={"min_free_mb": 0})
    filler = small_fs / "filler.bin"
    with KioskService(cfg, with_link=False) as svc:
        desk = svc.desk
        desk.sign_in(PHOTOGRAPHER, PIN)
        appt = fill_details(desk)
        desk.add_lesion(PHOTOGRAPHER, site="anterior torso", laterality="left")
        photograph(desk, 1, views=("dermoscopic", "close-up"))
        before = desk.current()
        folder = desk.store.folder(appt.referral_id)
        files = sorted(os.listdir(folder))

        fill(filler)
        with pytest.raises(DiskFullError, match="Storage is full") as exc:     # a photograph: no room for it
            desk.capture(PHOTOGRAPHER, 1, "regional")
        assert "everything before it is kept" in str(exc.value)
        with pytest.raises(DiskFullError, match="Storage is full"):           # a detail: the sealed state cannot be written
            desk.set_skin_type(PHOTOGRAPHER, "IV")
        assert desk.current() == before and sorted(os.listdir(folder)) == files   # no temp file left behind

        filler.unlink()
        photograph(desk, 1, views=("regional",))
        assert desk.missing() == []
        fill(filler)
        with pytest.raises(DiskFullError, match="Storage is full"):           # submit: the outbox has no room
            desk.submit(PHOTOGRAPHER)
        assert desk.current() is not None and svc.outbox.counts()["queued"] == 0
        assert not list(svc.outbox.images_dir.iterdir())
        kept = desk.current()

        filler.unlink()                                                      # space returns: the same appointment goes
        stored = desk.submit(PHOTOGRAPHER)
        assert len(stored) == 1 and svc.outbox.counts()["queued"] == 1
        assert [m.sha256 for m in stored[0].images] == [s.sha256 for s in kept.lesions[0].all_shots()]
        assert stored[0].patient.fitzpatrick == "III"
