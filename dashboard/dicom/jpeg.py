"""What DICOM must say about a JPEG it carries unchanged: size, components, colour space, transfer syntax.

The kiosk's JPEG bytes are encapsulated as they are (no re-encoding), so the DICOM attributes must
describe the stream itself: rows and columns, samples per pixel and precision from its start-of-frame
marker, and the photometric interpretation from its colour components (PS3.5 8.2.1: a YCbCr JPEG is
``YBR_FULL_422`` when its chroma is subsampled, ``YBR_FULL`` when not; an Adobe APP14 transform 0
three-component stream is ``RGB``; one component is ``MONOCHROME2``).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

#: JPEG Baseline (Process 1) and Extended (Process 2 & 4) transfer syntaxes by start-of-frame marker.
TRANSFER_SYNTAX = {0xC0: "1.2.840.10008.1.2.4.50", 0xC1: "1.2.840.10008.1.2.4.51"}


class JpegError(ValueError):
    """The bytes are not a JPEG DICOM can carry unchanged; ``str()`` says what they are."""


@dataclass(frozen=True)
class JpegInfo:
    """The facts of a JPEG stream DICOM needs."""

    rows: int
    columns: int
    samples: int
    precision: int
    photometric: str
    transfer_syntax: str


def inspect(data: bytes) -> JpegInfo:
    """Read the JPEG's markers up to its start of frame; JpegError for anything DICOM JPEG Baseline cannot carry."""
    if data[:2] != b"\xff\xd8":
        raise JpegError("not a JPEG stream (no start-of-image marker)")
    i, adobe_transform, jfif = 2, None, False
    while i + 4 <= len(data):
        if data[i] != 0xFF:
            raise JpegError(f"corrupt JPEG marker at byte {i}")
        marker = data[i + 1]
        if marker == 0xFF:
            i += 1
            continue
        length = struct.unpack(">H", data[i + 2:i + 4])[0]
        seg = data[i + 4:i + 2 + length]
        if marker == 0xE0 and seg[:5] == b"JFIF\0":
            jfif = True
        elif marker == 0xEE and seg[:5] == b"Adobe" and len(seg) >= 12:
            adobe_transform = seg[11]
        elif 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            if marker not in TRANSFER_SYNTAX:
                raise JpegError(f"a JPEG of process SOF{marker - 0xC0} (progressive, lossless or arithmetic) is "
                                "not JPEG Baseline/Extended: DICOM would need it re-encoded")
            precision, rows, cols, n = struct.unpack(">BHHB", seg[:6])
            factors = [seg[6 + 3 * k + 1] for k in range(n)]
            if n == 1:
                photometric = "MONOCHROME2"
            elif n == 3 and adobe_transform == 0 and not jfif:
                photometric = "RGB"
            elif n == 3:
                subsampled = any(f != factors[0] for f in factors[1:])
                photometric = "YBR_FULL_422" if subsampled else "YBR_FULL"
            else:
                raise JpegError(f"a JPEG with {n} colour components (CMYK?) has no DICOM photometric interpretation")
            return JpegInfo(rows, cols, n, precision, photometric, TRANSFER_SYNTAX[marker])
        i += 2 + length
    raise JpegError("no start-of-frame marker in the JPEG stream")
