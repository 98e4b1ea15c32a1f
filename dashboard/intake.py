"""Deciding what to do with one kiosk message, independent of MQTT: verify, store or quarantine.

:func:`check_case` validates without touching storage (topic, frame, hashes,
topic against header); :func:`handle_cases` checks each sender against the kiosk
registry (:mod:`dashboard.registry`: a registered kiosk files under its own hub only,
an unregistered one is recorded and, by default, refused), quarantines what was refused and
stores the rest in one batch, returning per message the :class:`Outcome`: a
label for the statistics, the quarantine reason code and the :class:`wire.messages.Ack` to
send. :func:`handle_kiosk_message` does the same for status, health and update results, and
quarantines a malformed one. Storage errors (OSError, sqlite3.Error) propagate: the caller
retries and does not ack.

Logs name a case by its UUID only, never by referral reference or lesion id.
"""

from __future__ import annotations

import json
import logging
import struct
import uuid
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path


from wire import codec, topics
from wire.messages import Ack, CaseHeader, Health, Status, UpdateResult, from_device

from . import directio, registry
from .counters import reason_code
from .store import Store, discard_staged, stage_image_files

log = logging.getLogger("dashboard.ingest")


@dataclass(frozen=True)
class Outcome:
    """What handling one case message decided: the ack to send (if any) and a label for the stats."""

    label: str
    ack_topic: str | None = None
    ack: Ack | None = None
    #: the quarantine reason's code (:func:`dashboard.counters.reason_code`) when quarantined
    reason: str | None = None


def peek_case_id(payload: bytes) -> str | None:
    """Best-effort case UUID from a frame that failed validation (so the kiosk can be told 'rejected')."""
    try:
        if payload[:4] != codec.MAGIC:
            return None
        (hlen,) = struct.unpack_from(">I", payload, 4)
        if hlen > codec.MAX_HEADER_BYTES:
            return None
        head = json.loads(bytes(payload[8 : 8 + hlen]))
        return str(uuid.UUID(str(head["case_id"])))
    except Exception:
        return None


@dataclass(frozen=True)
class Checked:
    """A case message after validation: either ``header``/``images`` or a ``reason`` to refuse it."""

    topic: str
    payload: bytes | bytearray
    received_at: datetime
    site: str | None = None
    device: str | None = None
    header: CaseHeader | None = None
    #: read-only memoryviews into ``payload`` (bytes-like: hashed and written without a copy)
    images: list[memoryview] | None = None
    reason: str | None = None
    case_id: str | None = None
    #: images already written to temp files, not yet durable (SHA-256 -> temp path; consumed by storing)
    staged: dict[str, str] | None = None

    @property
    def ack_topic(self) -> str | None:
        """The sending device's ack topic (None when the topic itself was invalid)."""
        return topics.topic(self.site, self.device, topics.ACK) if self.device else None


def check_case(topic: str, payload: bytes, received_at: datetime, *, verify: bool = True) -> Checked:
    """Validate one case message (topic, frame, hashes, topic vs header) without touching storage.

    ``verify=False`` leaves the images' hashes to the caller (:func:`check_and_stage`).
    """
    try:
        site, device, kind = topics.parse(topic)
        if kind != topics.CASE:
            raise ValueError(f"not a case topic: {kind}")
    except ValueError as exc:
        return Checked(topic, payload, received_at, reason=f"bad topic: {exc}")
    try:
        header, images = codec.decode_case(payload, views=True, verify=verify)  # zero-copy slices of the payload
    except codec.FrameError as exc:
        return Checked(topic, payload, received_at, site, device, reason=exc.reason,
                       case_id=peek_case_id(payload))
    case_id = str(header.case_id)
    if header.device_id != device or header.site != site:
        return Checked(topic, payload, received_at, site, device, case_id=case_id,
                       reason=f"topic is {site}/{device} but the header says {header.site}/{header.device_id}")
    return Checked(topic, payload, received_at, site, device, header, images, case_id=case_id)


def check_and_stage(topic: str, payload: bytes, received_at: datetime, images_dir: Path) -> Checked:
    """:func:`check_case`, and each image not yet stored written to a temp file (no fsync; see
    :func:`dashboard.store.stage_image_files`): the ingest's decoder threads do this while its worker
    commits earlier cases.

    Each image is copied once into the thread's page-aligned buffer (:func:`dashboard.directio.load`),
    hashed there, fresh in the CPU's cache, and written to disk from there: the bytes written are the
    bytes hashed, and the received bytes are read from memory once instead of twice (once to hash
    them, once to copy them for direct I/O). ``bench/ingest_throughput.py``'s 3 x 300 KB per case:
    0.63 instead of 0.95 ms of CPU to hash and copy a case on the build VM.

    A storage error (disk full...) stops the staging, not the checking: the temp files are removed and
    the worker writes what is missing itself, retrying and reporting.
    """
    checked = check_case(topic, payload, received_at, verify=False)
    if checked.header is None:
        return checked
    staged: dict[str, str] = {}
    staging = True
    for i, (meta, data) in enumerate(zip(checked.header.images, checked.images)):
        copy = directio.load(data)
        if codec.sha256_hex(copy) != meta.sha256:
            discard_staged(staged)
            return replace(checked, header=None, images=None, reason=codec.mismatch(i).reason)
        if staging:  # (a case's images are distinct: CaseHeader refuses a repeated sha256)
            try:
                staged.update(stage_image_files(images_dir, {meta.sha256: copy}))
            except OSError:
                discard_staged(staged)
                staging = False
    return replace(checked, staged=staged)


def _reject(store: Store, c: Checked, reason: str) -> Outcome:
    store.quarantine(c.topic, reason, c.payload, device=c.device, site=c.site, case_id=c.case_id,
                     received_at=c.received_at)
    if c.device is None:
        log.warning("quarantined a message on an invalid topic (%d bytes)", len(c.payload))
    else:
        log.warning("quarantined case %s from %s/%s: %s", c.case_id or "(unreadable id)", c.site, c.device, reason)
    code = reason_code(reason)
    if c.case_id is None or c.ack_topic is None:
        return Outcome("quarantined", reason=code)
    return Outcome("quarantined", c.ack_topic,
                   Ack(case_id=c.case_id, status="rejected", received_at=c.received_at, reason=reason), code)


def screen_origins(store: Store, checked: list[Checked], require_registration: bool) -> list[Checked]:
    """Each valid case checked against the kiosk registry: one of a registered kiosk under another hub
    (or of an unregistered kiosk when ``require_registration``) gets the reason to refuse it; an
    unregistered kiosk's case is recorded as a sighting (the fleet page's alert) either way."""
    hubs = registry.hubs(store.conn, {c.device for c in checked if c.reason is None and c.device})
    out = []
    for c in checked:
        if c.reason is None and c.device:
            if c.device not in hubs:
                registry.record_sighting(store.conn, c.site, c.device, topics.CASE, c.received_at)
            problem = registry.origin_problem(hubs.get(c.device), c.site, c.device, require_registration)
            if problem is not None:
                c = replace(c, header=None, images=None, reason=problem[1])
        out.append(c)
    return out


def handle_cases(store: Store, checked: list[Checked], outcomes: dict[int, Outcome], *,
                 require_registration: bool | None = None) -> dict[int, Outcome]:
    """Quarantine the refused messages and store the valid ones in one batch; fill ``outcomes`` by index.

    ``outcomes`` is filled as work completes, so that after a storage error
    (which propagates) a retry with the same dict does only what is left.
    ``require_registration`` not None: senders are checked against the kiosk registry first
    (:func:`screen_origins`); None (tools and tests of the frame checks) skips the registry.
    """
    if require_registration is not None:
        checked[:] = screen_origins(store, [c for c in checked], require_registration)
    for i, c in enumerate(checked):
        if i not in outcomes and c.reason is not None:
            outcomes[i] = _reject(store, c, c.reason)
    todo = [i for i, c in enumerate(checked) if i not in outcomes]
    staged: dict[str, str] = {}  # the temp files the decoders wrote, handed over to save_cases once
    for c in checked:
        while c.staged:
            sha, tmp = c.staged.popitem()
            if sha in staged:  # the same image in two messages of the batch
                discard_staged({sha: tmp})
            else:
                staged[sha] = tmp
    if not todo:
        discard_staged(staged)
        return outcomes
    try:
        results = store.save_cases([(checked[i].header, checked[i].images, checked[i].received_at) for i in todo],
                                   staged)
    finally:
        discard_staged(staged)
    for i, result in zip(todo, results):
        c = checked[i]
        if result.status == "conflict":
            outcomes[i] = _reject(store, c, "case id already stored with different content")
            continue
        log.info("%s case %s from %s/%s (%d images)", result.status, c.case_id, c.site, c.device, len(c.images))
        outcomes[i] = Outcome(result.status, c.ack_topic,
                              Ack(case_id=c.case_id, status=result.status, received_at=result.received_at))
    return outcomes


def handle_case(store: Store, topic: str, payload: bytes, received_at: datetime, *,
                require_registration: bool | None = None) -> Outcome:
    """Validate and store one case message; quarantine what is refused. Storage errors propagate.

    This is the whole decision path, independent of MQTT, so that it can be
    tested (and fuzzed) directly.
    """
    return handle_cases(store, [check_case(topic, payload, received_at)], {},
                        require_registration=require_registration)[0]


#: The message class of each kiosk topic kind that is not a case.
DEVICE_MODELS = {topics.STATUS: Status, topics.HEALTH: Health, topics.UPDATE_RESULT: UpdateResult}


def _quarantine_device_message(store: Store, topic: str, payload: bytes, received_at: datetime,
                               reason: str) -> Outcome:
    try:
        site, device, _ = topics.parse(topic)
    except ValueError:
        site = device = None
    store.quarantine(topic, reason, payload, device=device, site=site, received_at=received_at)
    log.warning("quarantined a message on %s: %s", topic if device else "(invalid topic)", reason)
    return Outcome("quarantined", reason=reason_code(reason))


def handle_kiosk_message(store: Store, topic: str, payload: bytes, received_at: datetime, *,
                         require_registration: bool | None = None, history_hours: float = 24.0) -> Outcome:
    """Record a kiosk's status, health report or update result; quarantine a malformed one (with its reason)
    and one of a registered kiosk under another hub; an unregistered kiosk's is recorded as a sighting only
    (and also kept, as before registries, when ``require_registration`` is False). ``require_registration``
    None skips the registry. Returns the outcome (its ``label`` for the statistics)."""
    from . import fleetdata

    kind = topic.rsplit("/", 1)[-1]
    if kind == topics.STATUS and not payload:
        return Outcome("status-cleared")
    try:
        site, device, kind, msg = from_device(topic, payload, DEVICE_MODELS)
    except ValueError as exc:
        return _quarantine_device_message(store, topic, payload, received_at, f"invalid {kind} message: {exc}")
    if require_registration is not None:
        hub = registry.hubs(store.conn, [device]).get(device)
        if hub is None:
            registry.record_sighting(store.conn, site, device, kind, received_at)
        problem = registry.origin_problem(hub, site, device, require_registration)
        if problem is not None and problem[0] == "wrong-hub":
            return _quarantine_device_message(store, topic, payload, received_at, problem[1])
        if problem is not None:
            return Outcome("unregistered")
    if kind == topics.STATUS:
        store.record_status(site, msg, received_at)
        return Outcome("status")
    if kind == topics.HEALTH:
        fleetdata.record_health(store, site, msg, received_at, history_hours)
        return Outcome("health")
    fleetdata.record_update_result(store, site, msg, received_at)
    log.info("update %s %s on %s/%s: %s %s", msg.kind, msg.version, site, device, msg.status, msg.reason)
    return Outcome("update-result")


def handle_status(store: Store, topic: str, payload: bytes, received_at: datetime) -> str:
    """Record a kiosk's retained status (online/offline, versions); returns a label for the stats."""
    if not payload:
        return "status-cleared"
    try:
        site, _, _, status = from_device(topic, payload, {topics.STATUS: Status})
    except ValueError as exc:
        log.warning("ignored an invalid status message on %s: %s", topic, exc)
        return "status-invalid"
    store.record_status(site, status, received_at)
    return "status"


def reject_internal(store: Store, topic: str, payload: bytes, received_at: datetime, exc: Exception) -> Outcome:
    """Quarantine a message that hit an unexpected error (a bug), keeping its payload; refuse the case."""
    reason = f"internal error: {type(exc).__name__}"
    try:
        site, device, _ = topics.parse(topic)
    except ValueError:
        site = device = None
    case_id = peek_case_id(payload)
    store.quarantine(topic, reason, payload, device=device, site=site, case_id=case_id,
                     received_at=received_at)
    if case_id is None or device is None:
        return Outcome("quarantined", reason="internal")
    return Outcome("quarantined", topics.topic(site, device, topics.ACK),
                   Ack(case_id=case_id, status="rejected", received_at=received_at, reason=reason), "internal")
