"""Camera sources behind one interface: replay (folder or synthetic), OpenCV (UVC), picamera2.

A ``Camera`` is a context manager: ``__enter__`` opens the hardware, ``__exit__`` releases it.
``capture()`` takes a full-resolution still as a ``Frame`` (JPEG bytes plus metadata);
``preview_jpeg()`` gives a small JPEG for the kiosk page's MJPEG live preview.
``open_camera(settings)`` builds the source named by ``settings.source``; the picamera2 module
is imported only when that source is chosen, so the kiosk runs without it off the Pi.

    with open_camera(settings) as cam:
        frame = cam.capture()
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from datetime import datetime

import cv2
import numpy as np

from wire.kioskconfig.camera import CameraSettings, OpenCVSettings, Picamera2Settings, ReplaySettings

__all__ = [
    "Camera", "CameraError", "CameraSettings", "Frame", "OpenCVSettings", "Picamera2Settings",
    "ReplaySettings", "open_camera",
]


class CameraError(RuntimeError):
    """The camera cannot be opened or cannot deliver a frame; ``str()`` says what to do."""


@dataclass(frozen=True)
class Frame:
    """One still: the JPEG that is sent to the centre, its size and where it came from."""

    jpeg: bytes
    width: int
    height: int
    captured_at: datetime  # UTC, tz-aware
    source: str  # "replay" | "opencv" | "picamera2"
    metadata: dict = field(default_factory=dict)

    def image(self, flags: int = cv2.IMREAD_COLOR) -> np.ndarray:
        """The still decoded as a BGR numpy array (full resolution unless ``flags`` reduce it)."""
        arr = cv2.imdecode(np.frombuffer(self.jpeg, np.uint8), flags)
        if arr is None:
            raise CameraError("the frame's JPEG cannot be decoded")
        return arr


class Camera(ABC):
    """A camera source. Use as a context manager; ``capture``/``preview_jpeg`` need it open."""

    def __enter__(self) -> "Camera":
        self.open()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @abstractmethod
    def open(self) -> None:
        """Open the device (raise CameraError with a clear message if it cannot be opened)."""

    @abstractmethod
    def close(self) -> None:
        """Release the device; safe to call twice."""

    @abstractmethod
    def capture(self) -> Frame:
        """Take a full-resolution still."""

    @abstractmethod
    def preview_jpeg(self) -> bytes:
        """A low-resolution JPEG of what the camera sees now (for the MJPEG live preview)."""

    @property
    @abstractmethod
    def connected(self) -> bool:
        """True while the device is open and delivering frames."""


def encode_preview(bgr: np.ndarray, width: int, quality: int) -> bytes:
    """Scale ``bgr`` down to ``width`` pixels wide (never up) and encode it as a JPEG."""
    h, w = bgr.shape[:2]
    if w > width:
        bgr = cv2.resize(bgr, (width, max(1, round(h * width / w))), interpolation=cv2.INTER_AREA)
    ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise CameraError("preview JPEG encoding failed")
    return buf.tobytes()


def encode_still(bgr: np.ndarray, quality: int) -> bytes:
    """Encode a full-resolution still as a JPEG at ``quality``."""
    ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise CameraError("still JPEG encoding failed")
    return buf.tobytes()


def open_camera(settings: CameraSettings) -> Camera:
    """The camera named by ``settings.source`` (not yet opened: use it in a ``with`` block)."""
    if settings.source == "replay":
        from .replay import ReplayCamera
        return ReplayCamera(settings)
    if settings.source == "opencv":
        from .opencv_source import OpenCVCamera
        return OpenCVCamera(settings)
    if settings.source == "picamera2":
        from .picamera2_source import Picamera2Camera
        return Picamera2Camera(settings)
    raise CameraError(f"unknown camera source {settings.source!r}")  # pragma: no cover (validated)
