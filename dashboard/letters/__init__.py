"""The GP letter and the patient letter of a signed referral, as PDF, stored with the referral.

:func:`make_and_store` runs at sign-off (:func:`dashboard.signoff.on_signed`; the GP letter again
after an addendum, :func:`dashboard.signoff.on_amended`) and stores a new revision of each letter
(``letters`` table, :mod:`dashboard.store.handover`); :func:`letter` returns the newest, refusing a
referral that is not signed off yet with :class:`NotSigned`.
Layout: :mod:`.pdf` (ReportLab); words: :mod:`.wording`.
"""

from __future__ import annotations

from ..handover import NotSigned, signed_referral
from ..serviceconfig import ServiceConfig
from ..store import handover as table
from .pdf import gp_letter, patient_letter

KINDS = {"gp": "GP letter", "patient": "Patient letter"}
MAKERS = {"gp": gp_letter, "patient": patient_letter}

__all__ = ["KINDS", "NotSigned", "make", "make_and_store", "letter", "default_service"]


def default_service() -> ServiceConfig:
    """The ``[service]`` defaults (a centre config without the section)."""
    return ServiceConfig()


def make(signed, service, kind: str) -> bytes:
    """One letter's PDF bytes for a :class:`dashboard.handover.SignedReferral`."""
    return MAKERS[kind](signed, service)


def make_and_store(conn, signed, service, kinds=tuple(KINDS)) -> dict[str, int]:
    """Make the letters ``kinds`` (both by default) and store each as a new revision; returns ``{kind: revision}``."""
    return {kind: table.add_letter(conn, signed.key, kind, make(signed, service, kind)) for kind in kinds}


def letter(conn, referral_key: str, kind: str, service=None) -> dict:
    """The newest stored letter ``{revision, pdf, sha256, made_at}``; NotSigned (a message for a person)
    for a referral that is not signed off. A signed referral whose letters are missing (made before this
    version, or the listener failed) gets them made now."""
    if kind not in KINDS:
        raise KeyError(kind)
    signed = signed_referral(conn, referral_key)         # NotSigned while the reading is not final
    found = table.latest_letter(conn, signed.key, kind)
    if found is None:
        make_and_store(conn, signed, service or default_service())
        found = table.latest_letter(conn, signed.key, kind)
    return found
