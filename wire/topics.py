"""MQTT topic names shared by the kiosk and the centre.

Every topic is versioned and carries only the site and device identifiers,
which are validated so that nothing resembling a patient identifier (free
text, spaces, punctuation) can ever appear in a topic.

Who publishes what (all QoS 1):

========================================  =========  ==========================
topic                                     publisher  payload
========================================  =========  ==========================
dermkiosk/v1/<site>/<device>/case         kiosk      binary case frame (codec)
dermkiosk/v1/<site>/<device>/ack          ingest     JSON :class:`Acks` (a batch of
                                                     :class:`Ack`; a single Ack still reads)
dermkiosk/v1/<site>/<device>/status       kiosk      JSON :class:`Status`, retained;
                                                     last will ``offline``
dermkiosk/v1/<site>/<device>/health       kiosk      JSON :class:`Health`
dermkiosk/v1/<site>/<device>/update       centre     signed update bundle (tar, see
                                                     ``dashboard.updates``)
dermkiosk/v1/<site>/<device>/update-result kiosk     JSON :class:`UpdateResult`
dermkiosk/v1/<site>/<device>/outcome      centre     JSON :class:`wire.outcome.Outcome`: a
                                                     signed referral's outcome per lesion
dermkiosk/v1/centre/<ingest client id>    ingest     JSON :class:`CentreStatus`, retained;
                                                     last will ``offline``
========================================  =========  ==========================

The centre's presence topic has four levels, so no ``<site>/<device>/<kind>``
subscription matches it. Kiosks read it to hold their cases in the outbox while
the centre says it is offline, instead of piling copies up in the broker.
"""

from __future__ import annotations

import re

PREFIX = "dermkiosk/v1"
ID_PATTERN = r"^[a-z0-9][a-z0-9-]{0,31}$"
_ID_RE = re.compile(ID_PATTERN)

CASE = "case"
ACK = "ack"
STATUS = "status"
HEALTH = "health"
UPDATE = "update"
UPDATE_RESULT = "update-result"
OUTCOME = "outcome"
KINDS = (CASE, ACK, STATUS, HEALTH, UPDATE, UPDATE_RESULT, OUTCOME)

INGEST_SHARE_GROUP = "ingest"
CENTRE_PREFIX = f"{PREFIX}/centre"
#: What a kiosk subscribes to for the centre's presence (one retained message per ingest client).
CENTRE_SUBSCRIPTION = f"{CENTRE_PREFIX}/+"
CLIENT_ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
_CLIENT_ID_RE = re.compile(CLIENT_ID_PATTERN)


def check_id(value: str, what: str = "id") -> str:
    """Return ``value`` if it is a valid site or device id, else raise ValueError."""
    if not isinstance(value, str) or not _ID_RE.match(value):
        raise ValueError(
            f"{what} {value!r} must be 1-32 characters of a-z, 0-9 and '-', starting with a letter or digit"
        )
    return value


def topic(site: str, device: str, kind: str) -> str:
    """Build the topic for one device and message kind, e.g. ``dermkiosk/v1/s1/k1/case``."""
    if kind not in KINDS:
        raise ValueError(f"unknown topic kind {kind!r}")
    return f"{PREFIX}/{check_id(site, 'site')}/{check_id(device, 'device')}/{kind}"


def subscription(kind: str, shared_group: str | None = None) -> str:
    """The wildcard subscription for one kind over all devices, optionally as an MQTT 5 shared subscription."""
    if kind not in KINDS:
        raise ValueError(f"unknown topic kind {kind!r}")
    sub = f"{PREFIX}/+/+/{kind}"
    return f"$share/{shared_group}/{sub}" if shared_group else sub


def centre(client_id: str) -> str:
    """The retained presence topic of one ingest client, e.g. ``dermkiosk/v1/centre/ingest``."""
    if not isinstance(client_id, str) or not _CLIENT_ID_RE.match(client_id):
        raise ValueError(f"client id {client_id!r} must be 1-64 characters of A-Z, a-z, 0-9, '_' and '-'")
    return f"{CENTRE_PREFIX}/{client_id}"


def parse_centre(topic_name: str) -> str | None:
    """The ingest client id of a centre presence topic, or None if the topic is not one."""
    head, _, client_id = topic_name.rpartition("/")
    return client_id if head == CENTRE_PREFIX and _CLIENT_ID_RE.match(client_id) else None


def parse(topic_name: str) -> tuple[str, str, str]:
    """Split a topic into ``(site, device, kind)``; raise ValueError if it is not one of ours."""
    parts = topic_name.split("/")
    if len(parts) != 5 or "/".join(parts[:2]) != PREFIX or parts[4] not in KINDS:
        raise ValueError(f"not a DermKiosk v1 topic: {topic_name!r}")
    return check_id(parts[2], "site"), check_id(parts[3], "device"), parts[4]
