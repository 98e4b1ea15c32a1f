"""The :class:`Link`: the link's thread, put together from its parts (see :mod:`edge.link`)."""

from __future__ import annotations

import threading

from wire import topics

from ..outbox import Outbox
from .acks import AcksMixin
from .device_topics import DeviceTopicsMixin
from .presence import PresenceMixin
from .session import SessionMixin
from .settings import BrokerSettings
from .stats import LinkStats
from .window import WindowMixin


class Link(SessionMixin, WindowMixin, AcksMixin, PresenceMixin, DeviceTopicsMixin):
    """Publishes the outbox over MQTT in its own thread; ``start()``, ``wake()``, ``stop()``.

    The connection (:mod:`.session`), the in-flight window (:mod:`.window`), acks (:mod:`.acks`),
    presence (:mod:`.presence`) and other device topics (:mod:`.device_topics`) are mixins that
    share this object's state; each sets up its own part in its ``_init_*`` method.
    """

    def __init__(self, broker: BrokerSettings, site: str, device_id: str, outbox: Outbox,
                 software_version: str = "", model_version: str = ""):
        """Prepare the link for one device; nothing connects until :meth:`start`."""
        self.broker = broker
        self.site = topics.check_id(site, "site")
        self.device_id = topics.check_id(device_id, "device")
        self.outbox = outbox
        self.software_version = software_version
        self.model_version = model_version
        self.case_topic = topics.topic(site, device_id, topics.CASE)
        self.ack_topic = topics.topic(site, device_id, topics.ACK)
        self.status_topic = topics.topic(site, device_id, topics.STATUS)
        self.stats = LinkStats()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._state = "idle"        # idle | connecting | connected | lost
        self._init_window(broker)
        self._init_acks()
        self._init_device_topics()
        self._init_presence()

    def start(self) -> "Link":
        """Start the link thread (connects, reconnects, publishes until :meth:`stop`)."""
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="edge-link", daemon=True)
        self._thread.start()
        self._purger = threading.Thread(target=self._run_purger, name="edge-purger", daemon=True)
        self._purger.start()
        return self

    def stop(self, timeout: float = 15.0) -> None:
        """Publish ``offline``, disconnect cleanly and end the thread."""
        self._stop.set()
        self._wake.set()
        if self._thread:
            self._thread.join(timeout)
        self._purge.set()                 # a last purge pass after the final acks
        if self._purger:
            self._purger.join(timeout)
        self._thread = self._purger = None

    def wake(self) -> None:
        """Tell the link that the outbox has new cases (it also polls on its own)."""
        self._wake.set()

    @property
    def connected(self) -> bool:
        """True while a broker session is up."""
        return self.stats.connected
