"""Stable DICOM UIDs: the same referral, lesion and image always get the same UIDs.

A UID is ``2.25.<integer>`` (ISO/IEC 9834-8: a UUID written as one decimal integer, no registered root
needed) of a name-based UUID (version 5) of what it identifies, so a second export of a referral, or
its re-sending after an addendum, produces the same study, series and instance UIDs and the PACS
files it once. Nothing in a UID reveals the patient: they are hashes of the centre's own UUIDs.
"""

from __future__ import annotations

import uuid

#: The namespace of every DermKiosk DICOM UID.
NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://github.com/dermkiosk/dermkiosk/dicom-uid")


def _uid(name: str) -> str:
    return f"2.25.{uuid.uuid5(NAMESPACE, name).int}"


def study_uid(referral_key: str) -> str:
    """The Study Instance UID of a referral (one study per referral)."""
    return _uid(f"study/{referral_key}")


def series_uid(case_id: str, view: str) -> str:
    """The Series Instance UID of one lesion's view (one series per lesion and view)."""
    return _uid(f"series/{case_id}/{view}")


def instance_uid(case_id: str, position: int, sha256: str) -> str:
    """The SOP Instance UID of one stored photograph (its case, place and bytes)."""
    return _uid(f"instance/{case_id}/{position}/{sha256}")



def frame_of_reference_uid(case_id: str) -> str:
    """The Frame of Reference UID of one lesion's dermoscopic images (the Dermoscopic Photography IOD needs one)."""
    return _uid(f"frame-of-reference/{case_id}")
