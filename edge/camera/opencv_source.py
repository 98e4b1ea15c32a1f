"""USB (UVC) dermatoscopes through OpenCV's VideoCapture.

The device is a V4L2 index or path (``/dev/video0``, ``/dev/v4l/by-id/usb-...-video-index0``)
or a video file (tests, demos). The pixel format (``fourcc``, e.g. ``MJPG``) is requested
before the resolution, as most UVC cameras only offer their full resolution in MJPG.
The camera may not grant what was asked: the size actually delivered is in each frame's
metadata (``requested`` beside ``width``/``height``).
"""

from __future__ import annotations

import threading
from datetime import datetime, timezone
from pathlib import Path

import cv2
import numpy as np

from . import Camera, CameraError, Frame, encode_preview, encode_still
from wire.kioskconfig.camera import CameraSettings


class OpenCVCamera(Camera):
    """A UVC camera (or a video file) read through ``cv2.VideoCapture``."""

    def __init__(self, settings: CameraSettings):
        self.settings = settings
        self._cap: cv2.VideoCapture | None = None
        self._is_file = False
        self._ok = False
        self._lock = threading.Lock()

    def open(self) -> None:
        """Open the device, ask for fourcc and resolution; CameraError if it cannot be opened."""
        s = self.settings.opencv
        dev = s.device
        if isinstance(dev, str) and dev.isdigit():
            dev = int(dev)
        self._is_file = isinstance(dev, str) and Path(dev).is_file() and not dev.startswith("/dev/")
        if isinstance(dev, int):
            cap = cv2.VideoCapture(dev, cv2.CAP_V4L2)
        elif self._is_file:
            cap = cv2.VideoCapture(dev)
        else:
            cap = cv2.VideoCapture(dev, cv2.CAP_V4L2)
        if not cap.isOpened():
            cap.release()
            raise CameraError(
                f"cannot open camera device {s.device!r}: check that it is plugged in, that the path "
                "exists (ls /dev/video*) and that this user is in the 'video' group")
        if not self._is_file:
            cap.set(cv2.CAP_PROP_FOURCC, cv2.VideoWriter_fourcc(*s.fourcc))
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, s.width)
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, s.height)
            cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)
        self._cap = cap
        ok, _ = self._read_locked()
        if not ok:
            self.close()
            raise CameraError(f"camera device {s.device!r} opened but delivers no frames")
        if self._is_file:
            cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
        self._ok = True

    def close(self) -> None:
        """Release the device (safe to call twice)."""
        if self._cap is not None:
            self._cap.release()
        self._cap = None
        self._ok = False

    @property
    def connected(self) -> bool:
        """True while open and the last read succeeded."""
        return self._cap is not None and self._ok

    def _read_locked(self) -> tuple[bool, np.ndarray | None]:
        ok, img = self._cap.read()
        if not ok and self._is_file and self.settings.opencv.loop:
            self._cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
            ok, img = self._cap.read()
        return ok, img if ok else None

    def _frame(self, flush: int) -> np.ndarray:
        if self._cap is None:
            raise CameraError("camera is not open (use it in a `with` block)")
        for _ in range(flush):
            self._cap.grab()
        ok, img = self._read_locked()
        self._ok = ok
        if not ok:
            raise CameraError(f"camera device {self.settings.opencv.device!r} stopped delivering frames "
                              "(unplugged?)")
        return img

    def capture(self) -> Frame:
        """A full-resolution still, after throwing away ``flush_frames`` buffered frames."""
        s = self.settings.opencv
        with self._lock:
            img = self._frame(0 if self._is_file else s.flush_frames)
            fourcc = int(self._cap.get(cv2.CAP_PROP_FOURCC))
        h, w = img.shape[:2]
        meta = {
            "device": str(s.device),
            "requested": [s.width, s.height],
            "fourcc": "".join(chr((fourcc >> (8 * i)) & 0xFF) for i in range(4)) if fourcc > 0 else "",
        }
        return Frame(jpeg=encode_still(img, self.settings.jpeg_quality), width=w, height=h,
                     captured_at=datetime.now(timezone.utc), source="opencv", metadata=meta)

    def preview_jpeg(self) -> bytes:
        """The latest frame scaled down to the preview width."""
        with self._lock:
            img = self._frame(0)
        return encode_preview(img, self.settings.preview_width, self.settings.preview_quality)
