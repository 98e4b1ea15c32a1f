"""DICOM objects of a signed referral's photographs (pydicom): build them, write them as ``.dcm`` files.

:func:`build_referral` makes one object per photograph (:mod:`.objects`: SOP class per view, the JPEG
carried unchanged, coded anatomy from :mod:`.codes`, stable UIDs from :mod:`.uids`);
:func:`write_referral` writes them to a folder as ``<SOP Instance UID>.dcm`` (a UID, never a patient
identifier, names a file). The facts come from :func:`dashboard.exportfacts.export_facts`.
"""

from __future__ import annotations

from io import BytesIO
from pathlib import Path

from pydicom.dataset import Dataset

from .objects import DERMOSCOPIC, VL_PHOTOGRAPHIC, build_image, build_referral  # noqa: F401

__all__ = ["build_referral", "build_image", "write_referral", "to_bytes", "DERMOSCOPIC", "VL_PHOTOGRAPHIC"]


def to_bytes(ds: Dataset) -> bytes:
    """The object as a DICOM Part 10 file (preamble, file meta, data set)."""
    buf = BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def write_referral(datasets: list[Dataset], out_dir: Path | str) -> list[Path]:
    """Write each object to ``out_dir/<SOP Instance UID>.dcm`` (created if missing); return the paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for ds in datasets:
        path = out / f"{ds.SOPInstanceUID}.dcm"
        tmp = path.with_suffix(".dcm.tmp")
        tmp.write_bytes(to_bytes(ds))
        tmp.replace(path)
        paths.append(path)
    return paths
