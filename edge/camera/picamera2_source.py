"""Raspberry Pi cameras (HQ camera, Camera Module 3) through picamera2.

picamera2 is imported here only, and only when this source is opened, so the kiosk runs off
the Pi. It comes from apt (``python3-picamera2``), not pip: see the README's Pi notes.

Colour constancy: with ``colour_gains`` set, auto white balance is off (``AwbEnable=False``,
fixed ``ColourGains``); with ``exposure_time_us``/``analogue_gain`` set, auto exposure is off.
The dermatoscope's LEDs are then the only light and a lesion photographed twice gives the same
colours. Stills come from the ``main`` stream (``RGB888``: BGR byte order, as OpenCV expects);
the preview from the low-resolution ``lores`` stream (YUV420), or from a separate preview
configuration with ``still_mode="switch-mode"``.
"""

from __future__ import annotations

import threading
from datetime import datetime, timezone

import cv2
import numpy as np

from . import Camera, CameraError, Frame, encode_preview, encode_still
from wire.kioskconfig.camera import CameraSettings

MISSING = ("picamera2 is not installed: on the Pi install apt's python3-picamera2 and create the venv "
           "with --system-site-packages (see the README's Pi notes)")


def import_picamera2():
    """Import picamera2 and libcamera's controls, or raise CameraError saying how to install them."""
    try:
        from picamera2 import Picamera2  # noqa: PLC0415 (deliberately lazy)
        from libcamera import controls  # noqa: PLC0415
    except ImportError as exc:
        raise CameraError(f"{MISSING} ({exc})") from None
    return Picamera2, controls


#: ``noise_reduction`` -> the member of libcamera's ``draft.NoiseReductionModeEnum``.
NOISE_REDUCTION = {"off": "Off", "minimal": "Minimal", "fast": "Fast", "high-quality": "HighQuality"}


def build_controls(settings: CameraSettings, available: dict, controls_mod) -> dict:
    """The libcamera controls for these settings, leaving out ones this camera lacks (AF on HQ)."""
    p = settings.picamera2
    ctl: dict = {}
    if "NoiseReductionMode" in available:
        ctl["NoiseReductionMode"] = getattr(controls_mod.draft.NoiseReductionModeEnum, NOISE_REDUCTION[p.noise_reduction])
    if "Sharpness" in available:
        ctl["Sharpness"] = float(p.sharpness)
    if p.exposure_time_us is not None:
        ctl.update(AeEnable=False, ExposureTime=int(p.exposure_time_us), AnalogueGain=float(p.analogue_gain))
    if p.colour_gains is not None:
        ctl.update(AwbEnable=False, ColourGains=(float(p.colour_gains[0]), float(p.colour_gains[1])))
    if "AfMode" in available:
        modes = controls_mod.AfModeEnum
        ctl["AfMode"] = {"manual": modes.Manual, "auto": modes.Auto, "continuous": modes.Continuous}[p.af_mode]
        if p.af_mode == "manual" and p.lens_position is not None:
            ctl["LensPosition"] = float(p.lens_position)
    return ctl


class Picamera2Camera(Camera):
    """A Raspberry Pi camera: full-resolution stills and a low-resolution preview stream."""

    def __init__(self, settings: CameraSettings):
        self.settings = settings
        self._cam = None
        self._controls_mod = None
        self._still_config = None
        self._lock = threading.Lock()
        self._ok = False

    def open(self) -> None:
        """Configure and start the camera; CameraError if picamera2 or the camera is missing."""
        Picamera2, controls_mod = import_picamera2()
        p = self.settings.picamera2
        try:
            cam = Picamera2(p.camera_num)
        except (IndexError, RuntimeError) as exc:
            raise CameraError(f"cannot open Pi camera {p.camera_num}: {exc} (check the ribbon cable and "
                              "the camera lines in /boot/firmware/config.txt; `rpicam-hello --list-cameras`)") from None
        self._cam, self._controls_mod = cam, controls_mod
        try:
            ctl = build_controls(self.settings, cam.camera_controls, controls_mod)
            main = {"size": (p.width, p.height), "format": "RGB888"}
            lores = {"size": (p.preview_width, p.preview_height), "format": "YUV420"}
            self._still_config = cam.create_still_configuration(
                main=main, lores=lores if p.still_mode == "lores-stream" else None,
                buffer_count=p.buffer_count, controls=ctl)
            if p.still_mode == "lores-stream":
                cam.configure(self._still_config)
            else:
                # the preview keeps picamera2's own, faster denoise: only the stills are measured
                cam.configure(cam.create_preview_configuration(
                    main={"size": (p.preview_width, p.preview_height), "format": "RGB888"},
                    controls={k: v for k, v in ctl.items() if k != "NoiseReductionMode"}))
            cam.start()
            if p.af_mode == "auto" and "AfMode" in cam.camera_controls:
                cam.autofocus_cycle()
        except Exception as exc:  # picamera2 raises assorted types on bad configurations
            self.close()
            raise CameraError(f"Pi camera {p.camera_num} could not be configured: {exc}") from None
        self._ok = True

    def close(self) -> None:
        """Stop and close the camera (safe to call twice)."""
        cam, self._cam = self._cam, None
        self._ok = False
        if cam is not None:
            try:
                cam.stop()
            finally:
                cam.close()

    @property
    def connected(self) -> bool:
        """True while the camera is started."""
        return self._cam is not None and self._ok

    def _need_open(self):
        if self._cam is None:
            raise CameraError("camera is not open (use it in a `with` block)")
        return self._cam

    def capture(self) -> Frame:
        """A full-resolution still with its exposure, gains and lens position in the metadata."""
        p = self.settings.picamera2
        with self._lock:
            cam = self._need_open()
            try:
                if p.af_mode == "auto" and "AfMode" in cam.camera_controls:
                    cam.autofocus_cycle()
                if p.still_mode == "lores-stream":
                    req = cam.capture_request()
                else:  # switch to the still configuration for one request, then back to preview
                    req = cam.switch_mode_and_capture_request(self._still_config)
                try:
                    img = req.make_array("main")
                    md = req.get_metadata()
                finally:
                    req.release()
            except Exception as exc:
                self._ok = False
                raise CameraError(f"Pi camera capture failed: {exc}") from None
        img = np.ascontiguousarray(img[..., :3])
        h, w = img.shape[:2]
        meta = {k: md.get(k) for k in ("ExposureTime", "AnalogueGain", "ColourGains", "LensPosition",
                                        "ColourTemperature", "SensorTimestamp") if md.get(k) is not None}
        if "ColourGains" in meta:
            meta["ColourGains"] = list(meta["ColourGains"])
        return Frame(jpeg=encode_still(img, self.settings.jpeg_quality), width=w, height=h,
                     captured_at=datetime.now(timezone.utc), source="picamera2", metadata=meta)

    def preview_jpeg(self) -> bytes:
        """The lores stream (or the preview configuration's main stream) as a small JPEG."""
        p = self.settings.picamera2
        with self._lock:
            cam = self._need_open()
            try:
                if p.still_mode == "lores-stream":
                    yuv = cam.capture_array("lores")
                    img = cv2.cvtColor(yuv, cv2.COLOR_YUV420p2BGR)
                else:
                    img = np.ascontiguousarray(cam.capture_array("main")[..., :3])
            except Exception as exc:
                self._ok = False
                raise CameraError(f"Pi camera preview failed: {exc}") from None
        return encode_preview(img, self.settings.preview_width, self.settings.preview_quality)
