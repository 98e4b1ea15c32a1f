"""Camera sources: settings, replay (synthetic and folder), OpenCV on a video file, picamera2 wiring."""

from __future__ import annotations

import sys
import types
from datetime import timezone

import cv2
import numpy as np
import pytest
from pydantic import ValidationError

from edge.camera import Camera, CameraError, Frame, open_camera
from edge.camera.replay import ReplayCamera, jpeg_size
from wire.kioskconfig.camera import CameraSettings
from edge.camera import synth
from wire import tomlconfig


def _jpeg_dims(data: bytes) -> tuple[int, int]:
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    assert img is not None
    return img.shape[1], img.shape[0]


# --- settings -----------------------------------------------------------------------------------

def test_settings_defaults_and_unknown_fields_refused():
    s = CameraSettings()
    assert s.source == "replay" and s.replay.folder is None
    with pytest.raises(ValidationError):
        CameraSettings(sourc="replay")
    with pytest.raises(ValidationError):
        CameraSettings(source="webcam")
    with pytest.raises(ValidationError):
        CameraSettings(picamera2={"exposure_time_us": 8000})  # gain missing: half-fixed exposure
    with pytest.raises(ValidationError):
        CameraSettings(picamera2={"colour_gains": [0.0, 1.5]})
    with pytest.raises(ValidationError):
        CameraSettings(picamera2={"af_mode": "auto", "lens_position": 5.0})
    with pytest.raises(ValidationError):
        CameraSettings(opencv={"fourcc": "MJPEG"})
    assert (s.picamera2.noise_reduction, s.picamera2.sharpness) == ("high-quality", 1.0)
    with pytest.raises(ValidationError, match="noise_reduction"):
        CameraSettings(picamera2={"noise_reduction": "strong"})
    with pytest.raises(ValidationError, match="sharpness"):
        CameraSettings(picamera2={"sharpness": -1})


def test_settings_from_toml_name_file_and_field(tmp_path):
    good = tmp_path / "cam.toml"
    good.write_text('source = "picamera2"\n[picamera2]\nexposure_time_us = 8000\nanalogue_gain = 1.5\n'
                    'colour_gains = [1.9, 1.6]\nlens_position = 8.0\n')
    s = tomlconfig.load(good, CameraSettings)
    assert s.picamera2.colour_gains == (1.9, 1.6)
    bad = tmp_path / "bad.toml"
    bad.write_text('source = "opencv"\n[opencv]\nwidht = 1920\n')
    with pytest.raises(tomlconfig.ConfigError) as ei:
        tomlconfig.load(bad, CameraSettings)
    assert "bad.toml: opencv.widht: unknown field" in str(ei.value)


# --- synthetic images -------------------------------------------------------------------------

def test_synthetic_images_are_deterministic_and_lesion_is_darker():
    a, les = synth.lesion_image_and_truth(400, 300, seed=5)
    b = synth.lesion_image(400, 300, seed=5)
    c = synth.lesion_image(400, 300, seed=6)
    assert a.shape == (300, 400, 3) and a.dtype == np.uint8
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    grey = cv2.cvtColor(a, cv2.COLOR_BGR2GRAY).astype(float)
    r = int(les.radius * 0.5)
    inside = grey[int(les.cy) - r:int(les.cy) + r, int(les.cx) - r:int(les.cx) + r].mean()
    skin = grey[140:160, 60:80].mean()
    assert inside < skin - 40
    assert grey[:5, :5].mean() < 20  # vignette: dark corners
    assert synth.lesion_image(400, 300, seed=5, vignette=False)[:5, :5].mean() > 60


# --- replay -----------------------------------------------------------------------------------

def test_replay_synthetic_capture_and_preview():
    s = CameraSettings(replay={"width": 800, "height": 600, "seed": 3}, preview_width=320)
    cam = open_camera(s)
    assert isinstance(cam, ReplayCamera) and isinstance(cam, Camera)
    assert not cam.connected
    with pytest.raises(CameraError):
        cam.capture()
    with cam:
        assert cam.connected
        prev = cam.preview_jpeg()
        assert _jpeg_dims(prev) == (320, 240)
        f1 = cam.capture()
        f2 = cam.capture()
    assert not cam.connected
    assert isinstance(f1, Frame) and f1.source == "replay"
    assert (f1.width, f1.height) == (800, 600) == _jpeg_dims(f1.jpeg)
    assert f1.captured_at.tzinfo is not None and f1.captured_at.utcoffset() == timezone.utc.utcoffset(None)
    assert f1.metadata["synthetic_seed"] == 3 and f2.metadata["synthetic_seed"] == 4
    assert f1.jpeg != f2.jpeg
    assert f1.image().shape == (600, 800, 3)


def test_replay_12mp_still():
    with open_camera(CameraSettings(replay={"width": 4056, "height": 3040})) as cam:
        f = cam.capture()
    assert (f.width, f.height) == (4056, 3040)
    assert jpeg_size(f.jpeg) == (4056, 3040)


def test_replay_folder_in_order_loops_and_keeps_jpeg_bytes(tmp_path):
    files = {}
    for i, name in enumerate(["b.jpg", "a.jpg", "c.png"]):
        img = synth.lesion_image(320, 240, seed=i)
        path = tmp_path / name
        cv2.imwrite(str(path), img)
        files[name] = path.read_bytes()
    (tmp_path / "notes.txt").write_text("not an image")
    with open_camera(CameraSettings(replay={"folder": tmp_path})) as cam:
        names = [cam.capture().metadata["file"] for _ in range(4)]
        assert names == ["a.jpg", "b.jpg", "c.png", "a.jpg"]
    with open_camera(CameraSettings(replay={"folder": tmp_path})) as cam:
        f = cam.capture()
    assert f.jpeg == files["a.jpg"] and (f.width, f.height) == (320, 240)


def test_replay_folder_without_loop_ends_and_errors_are_clear(tmp_path):
    cv2.imwrite(str(tmp_path / "one.jpg"), synth.lesion_image(160, 120, seed=1))
    with open_camera(CameraSettings(replay={"folder": tmp_path, "loop": False})) as cam:
        cam.capture()
        with pytest.raises(CameraError, match="exhausted"):
            cam.capture()
    with pytest.raises(CameraError, match="does not exist"):
        open_camera(CameraSettings(replay={"folder": tmp_path / "nope"})).open()
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(CameraError, match="no images"):
        open_camera(CameraSettings(replay={"folder": empty})).open()


def test_jpeg_size_reads_header_and_refuses_garbage():
    data = synth.encode_jpeg(synth.lesion_image(333, 222, seed=0))
    assert jpeg_size(data) == (333, 222)
    assert jpeg_size(b"not a jpeg at all") is None
    assert jpeg_size(data[:20]) is None


# --- OpenCV -----------------------------------------------------------------------------------

@pytest.fixture
def video_file(tmp_path):
    path = tmp_path / "derm.avi"
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (640, 480))
    assert w.isOpened()
    for i in range(4):
        w.write(synth.lesion_image(640, 480, seed=i))
    w.release()
    return path


def test_opencv_source_reads_video_file(video_file):
    s = CameraSettings(source="opencv", opencv={"device": str(video_file)}, preview_width=320)
    with open_camera(s) as cam:
        assert cam.connected
        frames = [cam.capture() for _ in range(6)]  # more than the file holds: loops
        prev = cam.preview_jpeg()
    assert not cam.connected
    f = frames[0]
    assert f.source == "opencv" and (f.width, f.height) == (640, 480) == _jpeg_dims(f.jpeg)
    assert f.metadata["device"] == str(video_file)
    assert _jpeg_dims(prev) == (320, 240)
    # the frames are the lesions that were written (MJPG is lossy: compare coarsely)
    expected = synth.lesion_image(640, 480, seed=0).astype(float)
    assert np.abs(f.image().astype(float) - expected).mean() < 8


def test_opencv_source_missing_device_gives_clear_error(tmp_path):
    for dev in ["/dev/video-does-not-exist", 63]:
        with pytest.raises(CameraError, match="cannot open camera device"):
            with open_camera(CameraSettings(source="opencv", opencv={"device": dev})):
                pass


# --- picamera2 --------------------------------------------------------------------------------

def test_picamera2_missing_gives_install_hint(monkeypatch):
    monkeypatch.setitem(sys.modules, "picamera2", None)  # import picamera2 -> ImportError
    cam = open_camera(CameraSettings(source="picamera2"))
    with pytest.raises(CameraError, match="python3-picamera2"):
        cam.open()


def test_picamera2_not_imported_unless_chosen():
    import edge.camera  # noqa: F401
    with open_camera(CameraSettings()):
        pass
    assert "picamera2" not in sys.modules


class _FakeRequest:
    def __init__(self, cam):
        self.cam = cam
        self.released = False

    def make_array(self, name):
        assert name == "main"
        w, h = self.cam.config["main"]["size"]
        return synth.lesion_image(w, h, seed=1)

    def get_metadata(self):
        return {"ExposureTime": 7998, "AnalogueGain": 1.5, "ColourGains": (1.9, 1.6), "Lux": 300.0}

    def release(self):
        self.released = True
        self.cam.released += 1


class _FakePicamera2:
    """Stands in for the Pi camera hardware behind picamera2's API (only what the source uses)."""

    instances: list = []

    def __init__(self, num):
        if num != 0:
            raise IndexError("list index out of range")
        self.camera_controls = {"AfMode": (0, 2, 0), "LensPosition": (0.0, 15.0, 1.0), "NoiseReductionMode": (0, 4, 0),
                                "Sharpness": (0.0, 16.0, 1.0)}
        self.config = None
        self.started = self.closed = False
        self.released = 0
        self.autofocus_cycles = 0
        _FakePicamera2.instances.append(self)

    def create_still_configuration(self, main, lores=None, buffer_count=1, controls=None):
        return {"main": main, "lores": lores, "controls": controls, "buffer_count": buffer_count}

    def create_preview_configuration(self, main, controls=None):
        return {"main": main, "lores": None, "controls": controls}

    def configure(self, config):
        self.config = config

    def start(self):
        self.started = True

    def stop(self):
        self.started = False

    def close(self):
        self.closed = True

    def autofocus_cycle(self):
        self.autofocus_cycles += 1
        return True

    def capture_request(self):
        return _FakeRequest(self)

    def switch_mode_and_capture_request(self, config):
        self.config = config
        return _FakeRequest(self)

    def capture_array(self, name):
        w, h = self.config[name]["size"]
        bgr = synth.lesion_image(w, h, seed=2)
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2YUV_I420) if name == "lores" else bgr


@pytest.fixture
def fake_picamera2(monkeypatch):
    class AfModeEnum:
        Manual, Auto, Continuous = 0, 1, 2

    class NoiseReductionModeEnum:  # libcamera's draft control
        Off, Fast, HighQuality, Minimal, ZSL = 0, 1, 2, 3, 4
    _FakePicamera2.instances = []
    monkeypatch.setitem(sys.modules, "picamera2", types.SimpleNamespace(Picamera2=_FakePicamera2))
    monkeypatch.setitem(sys.modules, "libcamera", types.SimpleNamespace(controls=types.SimpleNamespace(
        AfModeEnum=AfModeEnum, draft=types.SimpleNamespace(NoiseReductionModeEnum=NoiseReductionModeEnum))))
    return _FakePicamera2


def test_picamera2_fixed_exposure_and_colour_gains(fake_picamera2):
    s = CameraSettings(source="picamera2", preview_width=320, picamera2={
        "width": 1014, "height": 760, "exposure_time_us": 8000, "analogue_gain": 1.5,
        "colour_gains": [1.9, 1.6], "lens_position": 8.0})
    with open_camera(s) as cam:
        f = cam.capture()
        prev = cam.preview_jpeg()
        fake = fake_picamera2.instances[0]
        assert fake.started
    assert fake.closed and not cam.connected
    ctl = fake.config["controls"]
    # exposure, white balance, denoise and sharpening all fixed: the gate's calibration holds for every still
    assert ctl == {"AeEnable": False, "ExposureTime": 8000, "AnalogueGain": 1.5, "AwbEnable": False,
                   "ColourGains": (1.9, 1.6), "AfMode": 0, "LensPosition": 8.0, "NoiseReductionMode": 2,
                   "Sharpness": 1.0}
    assert fake.config["main"] == {"size": (1014, 760), "format": "RGB888"}
    assert fake.config["lores"]["size"] == (640, 480)
    assert (f.width, f.height) == (1014, 760) and f.source == "picamera2"
    assert f.metadata["ColourGains"] == [1.9, 1.6] and "Lux" not in f.metadata
    assert fake.released == 1
    assert _jpeg_dims(prev) == (320, 240)


def test_picamera2_switch_mode_autofocus_and_bad_camera(fake_picamera2):
    s = CameraSettings(source="picamera2", picamera2={"width": 800, "height": 600, "still_mode": "switch-mode",
                                                      "af_mode": "auto"})
    with open_camera(s) as cam:
        fake = fake_picamera2.instances[0]
        assert "NoiseReductionMode" not in fake.config["controls"]  # the preview's own denoise
        f = cam.capture()
    assert (f.width, f.height) == (800, 600)
    assert fake.autofocus_cycles == 2  # on start and before the still
    assert "ExposureTime" not in fake.config["controls"] and fake.config["controls"]["AfMode"] == 1
    assert fake.config["controls"]["NoiseReductionMode"] == 2  # the still's denoise, not the preview's
    with pytest.raises(CameraError, match="cannot open Pi camera 1"):
        open_camera(CameraSettings(source="picamera2", picamera2={"camera_num": 1})).open()
