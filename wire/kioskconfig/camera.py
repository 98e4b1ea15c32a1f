"""Camera settings, validated from the kiosk's TOML (``[camera]`` and its sub-tables).

``source`` picks the camera; only that source's table is used, the others keep
their defaults. Example for a Pi HQ camera behind a dermatoscope::

    [camera]
    source = "picamera2"
    jpeg_quality = 92

    [camera.picamera2]
    width = 4056
    height = 3040
    exposure_time_us = 8000       # fixed exposure: the dermatoscope's LEDs are the only light
    analogue_gain = 1.5
    colour_gains = [1.9, 1.6]     # red, blue: fixed white balance for colour constancy
    af_mode = "manual"            # HQ camera: no autofocus; Camera Module 3: "auto" or "manual"
    lens_position = 8.0           # dioptres (1/m) for manual focus of a Camera Module 3
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ReplaySettings(_Strict):
    """Replay source: images from ``folder`` in name order (looping), or synthetic lesions.

    With no ``folder`` the source generates lesion-like dermoscopy images itself
    (``edge.camera.synth``) at ``width`` x ``height``, image ``i`` from seed ``seed + i``.
    Images read from a folder keep their own size.
    """

    folder: Path | None = None
    width: int = Field(1600, ge=64, le=8192)
    height: int = Field(1200, ge=64, le=8192)
    seed: int = Field(0, ge=0)
    vignette: bool = True
    loop: bool = True


class OpenCVSettings(_Strict):
    """USB (UVC) dermatoscope through OpenCV's VideoCapture.

    ``device`` is a device index (``0``), a device path (``/dev/video0``, or better a
    stable ``/dev/v4l/by-id/...`` link) or, for tests, a video file. ``fourcc`` asks the
    camera for a pixel format: ``MJPG`` gives full resolution at a usable frame rate on most
    UVC cameras, ``YUYV`` is uncompressed but slow at high resolution.
    """

    device: int | str = 0
    width: int = Field(1920, ge=64, le=8192)
    height: int = Field(1080, ge=64, le=8192)
    fourcc: str = Field("MJPG", pattern=r"^[A-Za-z0-9 ]{4}$")
    #: Frames read and thrown away before a still, so that exposure has settled and the
    #: driver's buffered (older) frames are gone.
    flush_frames: int = Field(3, ge=0, le=30)
    #: Video files (tests, demos): start again at the end instead of failing.
    loop: bool = True


class Picamera2Settings(_Strict):
    """Raspberry Pi camera (HQ camera IMX477, Camera Module 3 IMX708) through picamera2.

    Exposure and white balance are fixed when given, so that the same lesion gives the same
    colours from one visit to the next: ``exposure_time_us`` + ``analogue_gain`` switch
    auto-exposure off; ``colour_gains`` (red, blue) switch auto white balance off
    (``AwbEnable=False``). ``af_mode`` only applies to cameras with autofocus (Camera
    Module 3); ``lens_position`` in dioptres is used with ``af_mode="manual"``.

    ``noise_reduction`` and ``sharpness`` fix the ISP's denoise (libcamera's ``NoiseReductionMode``) and
    sharpening (``Sharpness``) for the same reason: the quality gate's calibration measures this kiosk's
    normal sharpness through them (denoise alone can halve the focus check's value), so a default that a
    picamera2 or tuning update changes would move every photograph's sharpness against it. Change either
    and calibrate again (``python -m edge calibrate``).

    ``still_mode``: ``"lores-stream"`` runs the full-resolution still configuration all the
    time with a low-resolution ``lores`` stream for the preview (instant stills, lower
    preview frame rate); ``"switch-mode"`` runs a preview configuration and switches to the
    still configuration for each capture (``switch_mode_and_capture_array``: smoother
    preview, ~0.5 s per still).
    """

    camera_num: int = Field(0, ge=0, le=7)
    width: int = Field(4056, ge=64, le=9152)
    height: int = Field(3040, ge=64, le=6944)
    preview_width: int = Field(640, ge=64, le=1920)
    preview_height: int = Field(480, ge=64, le=1080)
    still_mode: Literal["lores-stream", "switch-mode"] = "lores-stream"
    exposure_time_us: int | None = Field(None, ge=100, le=1_000_000)
    analogue_gain: float | None = Field(None, ge=1.0, le=16.0)
    colour_gains: tuple[float, float] | None = None
    noise_reduction: Literal["off", "minimal", "fast", "high-quality"] = "high-quality"
    sharpness: float = Field(1.0, ge=0.0, le=16.0)
    af_mode: Literal["manual", "auto", "continuous"] = "manual"
    lens_position: float | None = Field(None, ge=0.0, le=32.0)
    buffer_count: int = Field(2, ge=1, le=8)

    @field_validator("colour_gains")
    @classmethod
    def _gains_range(cls, v: tuple[float, float] | None) -> tuple[float, float] | None:
        if v is not None and not all(0.0 < g <= 32.0 for g in v):
            raise ValueError("colour gains (red, blue) must lie in (0, 32]")
        return v

    @model_validator(mode="after")
    def _exposure_pair(self) -> "Picamera2Settings":
        if (self.exposure_time_us is None) != (self.analogue_gain is None):
            raise ValueError("give both exposure_time_us and analogue_gain (fixed exposure) or neither (auto)")
        if self.lens_position is not None and self.af_mode != "manual":
            raise ValueError("lens_position is only used with af_mode = \"manual\"")
        if self.preview_width > self.width or self.preview_height > self.height:
            raise ValueError("the preview stream cannot be larger than the still")
        return self


class CameraSettings(_Strict):
    """Which camera to use and how stills and previews are encoded.

    ``source``: ``"replay"`` (folder or synthetic; demo and tests), ``"opencv"`` (USB/UVC
    dermatoscope), ``"picamera2"`` (Raspberry Pi camera). Stills are JPEG at
    ``jpeg_quality``; the live preview is ``preview_width`` pixels wide at ``preview_quality``.
    """

    source: Literal["replay", "opencv", "picamera2"] = "replay"
    jpeg_quality: int = Field(92, ge=50, le=100)
    preview_width: int = Field(640, ge=64, le=1920)
    preview_quality: int = Field(70, ge=10, le=100)
    replay: ReplaySettings = Field(default_factory=ReplaySettings)
    opencv: OpenCVSettings = Field(default_factory=OpenCVSettings)
    picamera2: Picamera2Settings = Field(default_factory=Picamera2Settings)
