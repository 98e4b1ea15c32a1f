"""The link: publishes cases from the outbox to the broker and records the centre's acks.

paho-mqtt 2.x, MQTT 5, QoS 1, client id = device id, ``clean_start=False`` with a
session expiry, so the broker keeps our ack subscription (and the acks sent while
we were away) across reconnects. paho keeps QoS 1 messages in memory only, so the
outbox is the source of truth: each connection gets a fresh paho client and
republishes, in ``seq`` order, every case that is queued or sent-but-not-delivered.

At most ``max_inflight`` cases, and about ``max_inflight_bytes`` (one case always
goes, whatever its size), are published and not yet acknowledged by the centre at
any time (never paho's unbounded queue): that is also all the broker holds for the
ingest from this kiosk, and what it writes at every save. A case is ``sent`` on PUBACK,
``delivered`` on the centre's Ack; a case not acknowledged within
``ack_timeout_s`` (doubling per resend) is published again (the centre is
idempotent). Reconnects back off exponentially with jitter.

The centre's ingest announces itself on a retained presence topic (its last will
says ``offline``). While it is offline the link publishes nothing new and resends
nothing: the cases wait in the outbox, and the broker holds at most one window of
them for the ingest instead of a new copy of the window at every ack timeout. When
the centre is back, the ack clocks restart and the backlog goes out at once. A
centre that never announced itself (``unknown``) is treated as online.

One thread does everything (network loop, callbacks, publishing), so the link's
own state needs no locks; the outbox is thread-safe for the kiosk page.

The package, along its seams (imports go one way, from :mod:`.core` down):

* :mod:`.settings` -- :class:`BrokerSettings` (the ``[broker]`` config) and :func:`backoff_delay`;
* :mod:`.stats` -- :class:`LinkStats`, what the kiosk page and the logs show;
* :mod:`.session` -- the MQTT connection: paho client, reconnect loop, one session, callbacks;
* :mod:`.window` -- the in-flight window: publishing outbox cases, filling, resending overdue ones;
* :mod:`.acks` -- PUBACKs and the centre's acks, recorded in batches; drain rate; purging;
* :mod:`.presence` -- the kiosk's own status message and the centre's presence;
* :mod:`.device_topics` -- other device topics: ``publish()`` (health, update results) and
  ``on_message()`` subscriptions (update bundles, the centre's outcomes);
* :mod:`.core` -- :class:`Link`, which puts these together, and its thread's start and stop.
"""

from .core import Link
from .session import _PACKET_OVERHEAD
from .settings import BrokerSettings, backoff_delay
from .stats import LinkStats

__all__ = ["BrokerSettings", "Link", "LinkStats", "backoff_delay", "_PACKET_OVERHEAD"]
