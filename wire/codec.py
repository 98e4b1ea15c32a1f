"""Binary framing of a case: its JSON header and raw JPEG bytes, no base64.

Layout of one MQTT payload::

    b"DKC1" | uint32 big-endian header length | header JSON (UTF-8) | image 0 | image 1 | ...

The header's ``images[i].length`` says how many bytes image ``i`` takes and
``images[i].sha256`` what they hash to. The overhead is the header alone
(well under 4 KB for a case), so wire bytes stay within 1.02 x JPEG bytes + 4 KB.
"""

from __future__ import annotations

import hashlib
import struct

from pydantic import ValidationError

from .messages import CaseHeader
from .referral import AnyCaseHeader, parse_case_header

MAGIC = b"DKC1"
_LEN = struct.Struct(">I")
MAX_HEADER_BYTES = 64 * 1024


class FrameError(ValueError):
    """A payload that is not a valid case frame; ``reason`` says why in one line."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def sha256_hex(data: bytes) -> str:
    """Hex SHA-256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def encode_case(header: AnyCaseHeader, images: list[bytes]) -> bytes:
    """Frame a case header and its image bytes into one payload.

    Raises ValueError if the images do not match the header's lengths and hashes.
    """
    if len(images) != len(header.images):
        raise ValueError(f"header lists {len(header.images)} images, got {len(images)}")
    for meta, data in zip(header.images, images):
        if meta.length != len(data) or meta.sha256 != sha256_hex(data):
            raise ValueError(f"image {meta.sha256[:12]} does not match its header entry")
    head = header.model_dump_json().encode()
    return b"".join([MAGIC, _LEN.pack(len(head)), head, *images])


def mismatch(index: int) -> FrameError:
    """The error for image ``index`` of a frame whose bytes do not hash to its header's ``sha256``."""
    return FrameError(f"image {index} sha256 mismatch")


def decode_case(payload: bytes, *, views: bool = False, verify: bool = True) -> tuple[AnyCaseHeader, list[bytes]]:
    """Parse and verify a case frame; raise :class:`FrameError` with a reason if anything is wrong.

    With ``views=True`` the images are read-only memoryviews into ``payload``, which may be a
    ``bytes`` or a ``bytearray`` (no copy of ~1 MB per case; the centre's ingest hashes and writes
    them as they are, and must not change the buffer meanwhile).

    ``verify=False`` checks everything but the images' SHA-256, which the caller then checks
    itself, image by image, refusing a mismatch with :func:`mismatch`'s reason (the centre's ingest
    hashes each image from the copy it writes to disk: :func:`dashboard.intake.check_and_stage`).
    """
    if not isinstance(payload, (bytes, bytearray, memoryview)):
        raise FrameError("payload is not bytes")
    if views:  # read-only views of the caller's buffer, bytes or bytearray alike: no copy
        body = payload = memoryview(payload).toreadonly()
    else:
        body = payload = bytes(payload)
    if len(payload) < 8 or payload[:4] != MAGIC:
        raise FrameError("not a DKC1 case frame (bad magic or too short)")
    (hlen,) = _LEN.unpack_from(payload, 4)
    if hlen > MAX_HEADER_BYTES or 8 + hlen > len(payload):
        raise FrameError(f"header length {hlen} is out of range for a {len(payload)}-byte payload")
    try:
        header = parse_case_header(bytes(payload[8 : 8 + hlen]))
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ())) or "header"
        raise FrameError(f"invalid header: {where}: {first.get('msg')}") from None
    offset = 8 + hlen
    expected = offset + sum(im.length for im in header.images)
    if expected != len(payload):
        raise FrameError(f"payload is {len(payload)} bytes, header promises {expected}")
    images = []
    for i, meta in enumerate(header.images):
        data = body[offset : offset + meta.length]
        offset += meta.length
        if verify and sha256_hex(data) != meta.sha256:
            raise mismatch(i)
        images.append(data)
    return header, images
