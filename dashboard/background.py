"""A daemon thread that runs one pass over the store now (``kick()``) and every so many seconds.

The centre's senders (outcomes to the kiosks, the hand-over to the PACS and FHIR server) each open a
fresh store connection per pass, so that a pass never shares a connection with a request, and outlive a
pass that fails.
"""

from __future__ import annotations

import logging
import threading


class StoreWorker:
    """Calls :meth:`work` with a fresh :class:`dashboard.store.Store` every ``interval_s`` seconds, and at once
    on :meth:`kick`. Subclasses set ``thread_name``, ``failure`` (the log line of a failed pass), ``join_s``
    and ``wait_first`` (wait an interval before the first pass)."""

    thread_name = "store-worker"
    failure = "a background pass failed; will try again"
    join_s = 15.0
    wait_first = False

    def __init__(self, database, images_dir, interval_s: float):
        """Settings only; :meth:`start` starts the thread."""
        self.database, self.images_dir, self.interval_s = database, images_dir, interval_s
        self._wake, self._stop = threading.Event(), threading.Event()
        self._thread: threading.Thread | None = None

    def work(self, store) -> None:
        """One pass (subclasses)."""
        raise NotImplementedError

    def start(self):
        """Start the thread (a daemon: it never holds the dashboard up)."""
        self._thread = threading.Thread(target=self._run, name=self.thread_name, daemon=True)
        self._thread.start()
        return self

    def kick(self) -> None:
        """Run a pass now."""
        self._wake.set()

    def stop(self) -> None:
        """End the thread."""
        self._stop.set()
        self._wake.set()
        if self._thread:
            self._thread.join(self.join_s)

    def _wait(self) -> None:
        self._wake.wait(self.interval_s)
        self._wake.clear()

    def _run(self) -> None:
        from .store import Store

        if self.wait_first:
            self._wait()
        while not self._stop.is_set():
            try:
                store = Store(self.database, self.images_dir)
                try:
                    self.work(store)
                finally:
                    store.close()
            except Exception:  # noqa: BLE001 - the worker must outlive one bad pass
                logging.getLogger(type(self).__module__).exception(self.failure)   # the subclass's logger, as before
            self._wait()
