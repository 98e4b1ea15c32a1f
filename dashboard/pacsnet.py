"""Talking to the hospital's PACS: DICOMweb STOW-RS (``dicomweb-client``) or DIMSE C-STORE (``pynetdicom``).

:func:`send` stores a referral's objects by the configured protocol and answers a :class:`Delivery`:
how many the PACS took and, per refused object, its SOP Instance UID and the PACS's reason. A PACS
that cannot be reached (refused connection, timeout, association rejected, HTTP 5xx) raises
:class:`PacsUnavailable`; an HTTP 4xx answer to the whole request raises :class:`PacsRefused`. Neither
message holds a patient identifier: they name UIDs, the HTTP status or the DIMSE status.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .hospitalconfig import PacsConfig


class PacsUnavailable(OSError):
    """The PACS could not be reached or answered with a server error: try again later."""


class PacsRefused(ValueError):
    """The PACS answered and refused the request (HTTP 4xx, or C-STORE failures); ``str()`` says how."""


@dataclass
class Delivery:
    """What the PACS did with the objects: how many it stored and which it refused, with its reasons."""

    stored: int = 0
    refused: list[tuple[str, str]] = field(default_factory=list)


def _secret(path) -> str | None:
    return path.read_text().strip() if path else None


def _client(config: PacsConfig):
    """A requests session (with the PACS's credentials) and a DICOMweb client on it that does not retry by
    itself: the outbox retries, with its own back-off, and a request comes back at once."""
    import requests
    from dicomweb_client.api import DICOMwebClient

    session = requests.Session()
    if config.username:
        session.auth = (config.username, _secret(config.password_file) or "")
    client = DICOMwebClient(url=config.url, session=session, timeout=config.timeout_s)
    client.set_http_retry_params(retry=False)
    return session, client


def send_stow(config: PacsConfig, datasets: list) -> Delivery:
    """STOW-RS the objects to ``config.url`` in one request (one study)."""
    import requests

    session, client = _client(config)
    try:
        answer = client.store_instances(datasets)
    except requests.HTTPError as exc:
        status = exc.response.status_code if exc.response is not None else 0
        text = (exc.response.text if exc.response is not None else str(exc))[:200].replace("\n", " ")
        if status >= 500 or status == 0:
            raise PacsUnavailable(f"the PACS answered HTTP {status}: {text}") from None
        raise PacsRefused(f"the PACS refused the objects: HTTP {status}: {text}") from None
    except (requests.ConnectionError, requests.Timeout) as exc:
        raise PacsUnavailable(f"the PACS at {config.url} cannot be reached: {type(exc).__name__}") from None
    finally:
        session.close()
    delivery = Delivery()
    delivery.stored = len(getattr(answer, "ReferencedSOPSequence", []) or [])
    for item in getattr(answer, "FailedSOPSequence", []) or []:
        delivery.refused.append((str(item.ReferencedSOPInstanceUID),
                                 f"failure reason 0x{int(getattr(item, 'FailureReason', 0)):04X}"))
    if not delivery.stored and not delivery.refused and answer is not None:
        delivery.stored = len(datasets)  # an answer without a list: HTTP 200 means all stored (verified after)
    return delivery


def send_cstore(config: PacsConfig, datasets: list) -> Delivery:
    """C-STORE each object over one association with ``config.host:port`` (``called_ae``)."""
    from pynetdicom import AE

    ae = AE(ae_title=config.calling_ae)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = config.timeout_s
    for sop_class, syntax in dict.fromkeys((str(ds.SOPClassUID), str(ds.file_meta.TransferSyntaxUID))
                                           for ds in datasets):
        ae.add_requested_context(sop_class, syntax)
    assoc = ae.associate(config.host, config.port, ae_title=config.called_ae)
    if not assoc.is_established:
        why = "association rejected" if assoc.is_rejected else "no answer"
        raise PacsUnavailable(f"the PACS at {config.host}:{config.port} ({config.called_ae}): {why}")
    delivery = Delivery()
    try:
        for ds in datasets:
            status = assoc.send_c_store(ds)
            code = getattr(status, "Status", None)
            if code is None:
                raise PacsUnavailable("the PACS dropped the association while storing")
            if code == 0x0000 or 0xB000 <= code <= 0xB00F:
                delivery.stored += 1
            else:
                delivery.refused.append((str(ds.SOPInstanceUID), f"C-STORE status 0x{code:04X}"))
    finally:
        if assoc.is_established:
            assoc.release()
    return delivery


def held_instances(config: PacsConfig, study_uid: str) -> set[str]:
    """The SOP Instance UIDs the PACS says it holds in a study (QIDO-RS on ``config.url``)."""
    import requests

    session, client = _client(config)
    try:
        found = client.search_for_instances(study_instance_uid=study_uid, fields=["00080018"])
    except requests.HTTPError as exc:
        status = exc.response.status_code if exc.response is not None else 0
        if status == 404:
            return set()
        raise PacsUnavailable(f"the PACS did not answer the check of what it holds: HTTP {status}") from None
    except (requests.ConnectionError, requests.Timeout) as exc:
        raise PacsUnavailable(f"the PACS at {config.url} cannot be reached: {type(exc).__name__}") from None
    finally:
        session.close()
    return {item["00080018"]["Value"][0] for item in found if item.get("00080018", {}).get("Value")}


def send(config: PacsConfig, datasets: list) -> Delivery:
    """Store ``datasets`` in the PACS by the configured protocol, then, where the PACS has a DICOMweb root and
    ``verify`` is on, check (QIDO-RS) that it holds every object: a PACS that answers success but keeps nothing
    (a filter that drops objects quietly) is a refusal, not a delivery."""
    delivery = send_cstore(config, datasets) if config.protocol == "c-store" else send_stow(config, datasets)
    if config.verify and config.url and datasets:
        held = held_instances(config, str(datasets[0].StudyInstanceUID))
        refused = {uid for uid, _ in delivery.refused}
        missing = [str(ds.SOPInstanceUID) for ds in datasets
                   if str(ds.SOPInstanceUID) not in held and str(ds.SOPInstanceUID) not in refused]
        for uid in missing:
            delivery.refused.append((uid, "answered as stored, but the PACS does not hold it"))
        delivery.stored -= min(len(missing), delivery.stored)
    return delivery
