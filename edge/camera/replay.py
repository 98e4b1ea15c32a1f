"""Replay source: stills from a folder of images in name order, or synthetic lesions.

The "scene" in front of the camera is image ``i``: ``preview_jpeg()`` shows it and
``capture()`` takes it as the still, then moves on to the next image (the next lesion).
With ``loop`` the folder starts again at the end; without, capture raises CameraError.
JPEG files are passed on byte for byte (as a camera's encoder would give them); other
formats (PNG, ...) are re-encoded at the camera's JPEG quality.
"""

from __future__ import annotations

import threading
from datetime import datetime, timezone
from pathlib import Path

import cv2
import numpy as np

from . import Camera, CameraError, Frame, encode_preview, encode_still
from wire.kioskconfig.camera import CameraSettings
from .synth import lesion_image

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}


def jpeg_size(data: bytes) -> tuple[int, int] | None:
    """Width and height from a JPEG's SOF header without decoding it (None if not found)."""
    if data[:2] != b"\xff\xd8":
        return None
    i, n = 2, len(data)
    while i + 9 < n:
        if data[i] != 0xFF:
            i += 1
            continue
        marker = data[i + 1]
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7 or marker == 0xFF:
            i += 1 if marker == 0xFF else 2
            continue
        seglen = int.from_bytes(data[i + 2:i + 4], "big")
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            h = int.from_bytes(data[i + 5:i + 7], "big")
            w = int.from_bytes(data[i + 7:i + 9], "big")
            return (w, h) if w and h else None
        if marker == 0xDA:  # start of scan before any SOF: malformed
            return None
        i += 2 + seglen
    return None


class ReplayCamera(Camera):
    """Replays a folder (``settings.replay.folder``) or generates synthetic dermoscopy stills."""

    def __init__(self, settings: CameraSettings):
        self.settings = settings
        self._files: list[Path] = []
        self._index = 0
        self._open = False
        self._scene: np.ndarray | None = None  # decoded current image (synthetic or for preview)
        self._preview: tuple[int, bytes] | None = None  # (index, JPEG) of the last preview
        self._lock = threading.Lock()

    def open(self) -> None:
        """List the folder's images (or prepare the generator); CameraError if none."""
        folder = self.settings.replay.folder
        if folder is not None:
            folder = Path(folder)
            if not folder.is_dir():
                raise CameraError(f"replay folder {folder} does not exist")
            self._files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
            if not self._files:
                raise CameraError(f"replay folder {folder} holds no images")
        self._index = 0
        self._scene = None
        self._preview = None
        self._open = True

    def close(self) -> None:
        """Forget the scene; the source can be opened again."""
        self._open = False
        self._scene = None
        self._preview = None

    @property
    def connected(self) -> bool:
        """True while open."""
        return self._open

    def _need_open(self) -> None:
        if not self._open:
            raise CameraError("camera is not open (use it in a `with` block)")

    def _current(self) -> tuple[np.ndarray | None, bytes | None, dict]:
        """The current scene as (bgr or None, original JPEG bytes or None, metadata)."""
        r = self.settings.replay
        if not self._files:
            if self._scene is None:
                self._scene = lesion_image(r.width, r.height, r.seed + self._index, vignette=r.vignette)
            return self._scene, None, {"synthetic_seed": r.seed + self._index}
        if self._index >= len(self._files):
            raise CameraError("replay folder exhausted (set loop = true to start again)")
        path = self._files[self._index]
        data = path.read_bytes()
        meta = {"file": path.name}
        if path.suffix.lower() in (".jpg", ".jpeg") and jpeg_size(data):
            return None, data, meta
        bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        if bgr is None:
            raise CameraError(f"replay file {path.name} is not a readable image")
        return bgr, None, meta

    def _advance(self) -> None:
        self._index += 1
        self._scene = None
        if self._files and self._index >= len(self._files) and self.settings.replay.loop:
            self._index = 0

    def capture(self) -> Frame:
        """The current image as a still; the next call gives the next image."""
        with self._lock:
            self._need_open()
            bgr, jpeg, meta = self._current()
            if jpeg is None:
                jpeg = encode_still(bgr, self.settings.jpeg_quality)
                h, w = bgr.shape[:2]
            else:
                w, h = jpeg_size(jpeg)
            self._advance()
        return Frame(jpeg=jpeg, width=w, height=h, captured_at=datetime.now(timezone.utc),
                      source="replay", metadata=meta)

    def preview_jpeg(self) -> bytes:
        """The current image, scaled down to the preview width."""
        with self._lock:
            self._need_open()
            if self._preview is not None and self._preview[0] == self._index:
                return self._preview[1]
            bgr, jpeg, _ = self._current()
            if bgr is None:
                bgr = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_REDUCED_COLOR_2)
                if bgr is None:
                    raise CameraError("replay file is not a readable image")
            out = encode_preview(bgr, self.settings.preview_width, self.settings.preview_quality)
            self._preview = (self._index, out)
            return out
