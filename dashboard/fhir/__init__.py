"""FHIR R4 for a signed referral: the transaction Bundle (:mod:`.bundle`, resources in :mod:`.resources`)
and its POST to the hospital's FHIR server (:mod:`.post`)."""

from .bundle import build_bundle, bundle_json  # noqa: F401

__all__ = ["build_bundle", "bundle_json"]
