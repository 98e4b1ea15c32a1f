"""POST a transaction Bundle to the hospital's FHIR server.

The server's answer decides the state: 2xx is delivered; 5xx, 429 and a server that cannot be reached
are worth another try (:class:`FhirUnavailable`); any other 4xx is the server refusing the Bundle
(:class:`FhirRefused`, with the OperationOutcome's first diagnostics). Messages name the HTTP status,
never a patient identifier (the Bundle's content is not repeated).
"""

from __future__ import annotations

import json

from ..hospitalconfig import FhirConfig


class FhirUnavailable(OSError):
    """The FHIR server cannot be reached or answered 5xx/429: try again later."""


class FhirRefused(ValueError):
    """The FHIR server refused the Bundle (a 4xx answer); ``str()`` says what it said."""


def _outcome_text(body: str) -> str:
    try:
        outcome = json.loads(body)
        issues = outcome.get("issue") or []
        return "; ".join(str(i.get("diagnostics") or i.get("code") or "") for i in issues[:2])[:200]
    except (ValueError, AttributeError):
        return body[:200].replace("\n", " ")


def post_bundle(config: FhirConfig, bundle_json: str) -> str:
    """POST the Bundle to ``config.url``; return a short description of the server's answer."""
    import requests

    headers = {"Content-Type": "application/fhir+json", "Accept": "application/fhir+json"}
    if config.token_file:
        headers["Authorization"] = f"Bearer {config.token_file.read_text().strip()}"
    try:
        answer = requests.post(config.url, data=bundle_json.encode(), headers=headers, timeout=config.timeout_s)
    except (requests.ConnectionError, requests.Timeout) as exc:
        raise FhirUnavailable(f"the FHIR server cannot be reached: {type(exc).__name__}") from None
    if answer.status_code >= 500 or answer.status_code == 429:
        raise FhirUnavailable(f"the FHIR server answered HTTP {answer.status_code}: {_outcome_text(answer.text)}")
    if answer.status_code >= 400:
        raise FhirRefused(f"the FHIR server refused the Bundle: HTTP {answer.status_code}: "
                          f"{_outcome_text(answer.text)}")
    return f"HTTP {answer.status_code}"
