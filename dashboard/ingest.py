"""The centre's ingest: MQTT 5 cases in, verified, stored, and only then acknowledged.

One paho-mqtt 2.x client (fixed client id, ``clean_start=False``, session
expiry, QoS 1, manual PUBACK) subscribes to the shared subscription
``$share/<group>/dermkiosk/v1/+/+/case`` and to every kiosk's retained status.
The network thread only queues what arrives; one worker thread owns the
database and, per message:

1. decodes the frame (:func:`wire.codec.decode_case`), checks that the topic's
   site/device match the header, and stores it (:class:`dashboard.store.Store`);
   anything refused goes to the quarantine table with its reason;
2. publishes the :class:`wire.messages.Ack` (QoS 1) on the device's ack topic -
   ``stored``, ``duplicate``, or ``rejected`` when a case id could be read -
   all of a batch's acks for one kiosk in one :class:`wire.messages.Acks` message;
3. once the broker has taken the Ack (its PUBACK came back), sends the MQTT
   PUBACK for the incoming case; if the ingest dies before, the broker
   redelivers the case, which is then acked as a duplicate. An acker thread
   waits for those confirmations and sends the batch's PUBACKs, in order, in one
   write, while the worker goes on with the next batch.

The client is :class:`dashboard.receive.LeanClient`, paho's with a receive path
that does not copy each megabyte case six times.

Images are group-committed per batch (see :func:`dashboard.store.commit_image_files`):
the decoder threads verify each frame and write its images to temp files; the
worker then makes them all durable with one ``syncfs``, renames them, makes the
names durable with a second ``syncfs``, commits the rows (one WAL fsync), and
only then publishes the Acks. No Ack, hence no PUBACK, leaves before the case's
images and row are on disk.

Storage failures (disk full, I/O error, locked database) never crash the
service and never produce an ack: the message is retried until storage works,
and since no PUBACK was sent the broker redelivers it after a restart. The MQTT
5 Receive Maximum bounds how many unacknowledged cases wait in memory.

Presence: once subscribed, the ingest publishes a retained ``online``
:class:`wire.messages.CentreStatus` on ``dermkiosk/v1/centre/<client id>``; it
publishes ``offline`` when it stops and while its storage fails (``online`` again
once a batch is stored), and the broker publishes ``offline`` (its last will) when
it dies. Kiosks hold their cases in their outboxes while the centre is
offline, so that the broker keeps at most one in-flight window per kiosk for it.

Logs name the case by its UUID only, never by referral reference or lesion id.

In-process use (tests, demo)::

    ing = Ingest(config).start()
    ing.wait_ready(10)        # subscribed; cases published from now on are received
    ...
    ing.stop()
"""

from __future__ import annotations

import logging
import queue
import signal
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from wire import sdnotify, topics
from wire.messages import CentreStatus

from . import directio
from .config import CentreConfig
from .intake import (Checked, Outcome, check_and_stage, check_case, handle_case, handle_cases,  # noqa: F401
                     handle_kiosk_message, handle_status, peek_case_id, reject_internal)
from .ingest_worker import (ACK_CONFIRM_S, DEVICE_KINDS, HEARTBEAT_S, MAX_BATCH, TRANSIENT_ERRORS,  # noqa: F401
                            IngestWorker, _confirmed, _Message, is_device_message)
from .receive import LeanClient
from .store import GROUP_COMMIT, discard_staged, utcnow

log = logging.getLogger("dashboard.ingest")


class Ingest(IngestWorker):
    """The ingest service: ``Ingest(config).start()`` ... ``.stop()``; ``run_forever()`` for the CLI."""

    def __init__(self, config: CentreConfig):
        """Prepare the MQTT client and worker; nothing connects until :meth:`start`."""
        self.config = config
        self.stats: Counter[str] = Counter()
        #: counts not yet added to the database's counters ((name, label) -> n; see dashboard.counters)
        self.counts: Counter[tuple[str, str]] = Counter()
        self._queue: queue.Queue[_Message | None] = queue.Queue()
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._opened = threading.Event()
        self._open_error: BaseException | None = None
        self._sub_mid: int | None = None
        self._worker: threading.Thread | None = None
        #: per batch, (Ack publish info or None, mid, qos) to PUBACK in order; None stops the acker
        self._pubacks: queue.Queue[list[tuple[mqtt.MQTTMessageInfo | None, int, int]] | None] = queue.Queue()
        self._acker: threading.Thread | None = None
        self._decoders: ThreadPoolExecutor | None = None  # made by start()
        #: the storage problem the worker is retrying (the fleet page shows it), None while storing
        self.problem: str | None = None
        self._started = utcnow()
        self._next_beat = 0.0
        self._beaten_problem: str | None = None
        #: the presence last published while connected ("online" / "offline")
        self._announced: str | None = None
        self.presence_topic = topics.centre(config.broker.client_id)
        self.client = self._make_client()

    # -- MQTT ---------------------------------------------------------------------

    def _make_client(self) -> mqtt.Client:
        b = self.config.broker
        client = LeanClient(CallbackAPIVersion.VERSION2, client_id=b.client_id,
                            protocol=mqtt.MQTTv5, manual_ack=True)
        if b.username:
            password = b.password_file.read_text().strip() if b.password_file else None
            client.username_pw_set(b.username, password)
        if b.tls:
            client.tls_set(ca_certs=str(b.ca_file) if b.ca_file else None,
                           certfile=str(b.cert_file) if b.cert_file else None,
                           keyfile=str(b.key_file) if b.key_file else None)
        client.reconnect_delay_set(1, 30)
        # Kiosks hold their cases while the centre is offline (see wire.messages.CentreStatus).
        client.will_set(self.presence_topic, self._presence("offline"), qos=1, retain=True)
        # Acks are confirmed before the cases are PUBACKed; paho's default window of 20 would hold
        # acks back and slow batches down. The broker's Receive Maximum still applies.
        client.max_inflight_messages_set(1000)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_message
        return client

    def _presence(self, state: str, dated: bool = False) -> str:
        # ``dated`` for what is published now; a last will is written at connect time: no date
        at = utcnow() if dated else None
        return CentreStatus(client_id=self.config.broker.client_id, state=state, at=at).model_dump_json()

    def _announce(self, state: str) -> None:
        """Tell the kiosks (retained presence) whether this ingest takes cases, if connected and not said already.

        ``offline`` while storage fails: the kiosks then hold their cases instead of
        resending them every ack timeout, copies the broker would queue for this ingest.
        """
        if self._ready.is_set() and state != self._announced:
            self._publish_presence(state)
            log.warning("announced to the kiosks: %s", "taking cases again" if state == "online" else
                        "not taking cases (storage unavailable): they hold them")

    def _publish_presence(self, state: str) -> None:
        """Publish ``state`` as this ingest's retained presence, dated now, and remember it."""
        self._announced = state
        self.client.publish(self.presence_topic, self._presence(state, dated=True), qos=1, retain=True)

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            log.error("broker refused the connection: %s", reason_code)
            return
        log.info("connected to %s (session present: %s)", self.config.broker.url, flags.session_present)
        cases = topics.subscription(topics.CASE, self.config.broker.share_group)
        status = topics.subscription(topics.STATUS)
        _, self._sub_mid = client.subscribe([
            (cases, SubscribeOptions(qos=1)),
            (status, SubscribeOptions(qos=1, retainHandling=SubscribeOptions.RETAIN_SEND_IF_NEW_SUB)),
            (topics.subscription(topics.HEALTH, self.config.broker.share_group), SubscribeOptions(qos=1)),
            (topics.subscription(topics.UPDATE_RESULT, self.config.broker.share_group), SubscribeOptions(qos=1)),
        ])

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties) -> None:
        if mid != self._sub_mid:
            return
        failed = [str(rc) for rc in reason_codes[:2] if rc.is_failure]
        if failed:
            log.error("subscription refused: %s", ", ".join(failed))
            return
        # Health and update results feed the fleet page only: a broker ACL without them is not fatal.
        for kind, rc in zip((topics.HEALTH, topics.UPDATE_RESULT), reason_codes[2:]):
            if rc.is_failure:
                log.error("subscription to %s refused (%s): the fleet page will lack it", kind, rc)
        # Subscribed: tell the kiosks to send (retained; the broker publishes "offline" if we die),
        # unless storage is failing, in which case they hold their cases until it works again.
        self._publish_presence("offline" if self.problem else "online")
        self._ready.set()

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        self._ready.clear()
        if not self._stop.is_set():
            log.warning("disconnected from the broker (%s); reconnecting", reason_code)

    def _on_message(self, client, userdata, message: mqtt.MQTTMessage) -> None:
        # Network thread: only queue. Receive Maximum bounds how much can wait here.
        # The payload as received (LeanClient: a bytearray, no copy); nothing writes to it afterwards.
        msg = _Message(message.topic, message.payload, message.mid, message.qos, utcnow())
        pool = self._decoders
        if pool is not None and not self._stop.is_set() and not is_device_message(msg.topic):
            try:
                msg.prepared = pool.submit(self._prepare, msg)
            except RuntimeError:  # stopping: the worker checks it itself, if it still runs
                pass
        self._queue.put(msg)

    def _prepare(self, msg: _Message) -> Checked:
        """Decoder pool: verify the frame and write its images to temp files, while the worker commits earlier cases.

        The temp files are not fsynced here: the worker group-commits a whole
        batch (syncfs, renames, syncfs, then the rows; see
        :func:`dashboard.store.commit_image_files`), writing itself whatever is
        missing, with retries, before any row commits and any ack is sent.
        """
        if GROUP_COMMIT:
            return check_and_stage(msg.topic, msg.payload, msg.received_at, self.config.storage.images_dir)
        return check_case(msg.topic, msg.payload, msg.received_at)

    # -- life cycle -------------------------------------------------------------------

    def start(self) -> "Ingest":
        """Open the store, start the worker and the MQTT loop (reconnecting by itself); returns self."""
        self._stop.clear()
        self._opened.clear()
        self._open_error = None
        directio.set_enabled(self.config.storage.direct_io)
        # Decoders spend most of their time in hashlib and os.write, which release the GIL.
        self._decoders = ThreadPoolExecutor(max_workers=self.config.ingest.decoder_threads,
                                            thread_name_prefix="ingest-decode")
        self._acker = threading.Thread(target=self._run_acker, name="ingest-acker", daemon=True)
        self._acker.start()
        self._worker = threading.Thread(target=self._run_worker, name="ingest-worker", daemon=True)
        self._worker.start()
        self._opened.wait()
        if self._open_error is not None:
            raise self._open_error
        b = self.config.broker
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = b.session_expiry_s
        props.ReceiveMaximum = b.receive_maximum
        self.client.connect_async(b.host, b.port, keepalive=b.keepalive_s, clean_start=False, properties=props)
        self.client.loop_start()
        return self

    def wait_ready(self, timeout: float | None = None) -> bool:
        """Block until connected and subscribed (True), or until ``timeout`` passes (False)."""
        return self._ready.wait(timeout)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop: finish the message in hand, disconnect (the session keeps the rest), stop the threads."""
        self._stop.set()
        self._queue.put(None)
        if self._worker is not None:
            self._worker.join(timeout)
        if self._acker is not None:  # PUBACK what the worker finished, while still connected
            self._pubacks.put(None)
            self._acker.join(timeout)
        if self._ready.is_set():  # kiosks hold their cases from now on (a kill -9 gets the last will)
            info = self.client.publish(self.presence_topic, self._presence("offline"), qos=1, retain=True)
            _confirmed(info, 2.0)
        self.client.disconnect()
        self.client.loop_stop()
        if self._decoders is not None:
            self._decoders.shutdown(wait=True, cancel_futures=True)
        while True:  # cases left unprocessed: drop their temp files (the broker redelivers the cases)
            try:
                msg = self._queue.get_nowait()
            except queue.Empty:
                break
            if msg is not None and msg.prepared is not None and msg.prepared.done() \
                    and not msg.prepared.cancelled() and msg.prepared.exception() is None:
                discard_staged(msg.prepared.result().staged or {})

    def end_session(self, timeout: float = 10.0) -> bool:
        """End this ingest's session on the broker (run while the ingest process itself is stopped).

        For a retired ingest process of several: Mosquitto goes on handing a disconnected
        session its share of a shared subscription, and keeps it queued for its return. Ending
        the session stops that; whatever was queued for it is dropped by the broker, and its
        kiosks send those cases again after their ack timeout (they keep every case until the
        centre acknowledges it), to the processes still running. Connects with a clean start and
        no session expiry, announces this process offline, disconnects; True on success.
        """
        done = threading.Event()
        ok = []

        def on_connect(client, userdata, flags, reason_code, properties) -> None:
            ok.append(not reason_code.is_failure)
            done.set()

        client = self.client
        client.on_connect, client.on_subscribe, client.on_message = on_connect, None, None
        b = self.config.broker
        client.connect_async(b.host, b.port, keepalive=b.keepalive_s, clean_start=True)
        client.loop_start()
        try:
            if not done.wait(timeout) or not ok[0]:
                return False
            _confirmed(client.publish(self.presence_topic, self._presence("offline"), qos=1, retain=True), timeout)
            return True
        finally:
            client.disconnect()
            client.loop_stop()

    def run_forever(self) -> int:
        """Run until SIGINT or SIGTERM (the ``python -m dashboard ingest`` entry point); return an exit status.

        Should the worker ever die (a bug outside the per-message guards), it
        returns 1 so that the supervisor restarts the process; whatever was not
        acknowledged is redelivered by the broker.
        """
        done = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: done.set())
        keep_large_buffers()
        self.start()
        log.info("ingest running: %s, database %s", self.config.broker.url, self.config.storage.database)
        sdnotify.ready(f"ingest running, database {self.config.storage.database}")
        status = 0
        subscribed = False
        while not done.wait(1.0):
            if self._worker is not None and not self._worker.is_alive():
                log.error("ingest worker stopped unexpectedly; exiting to be restarted")
                status = 1
                break
            sdnotify.watchdog()         # systemd WatchdogSec: this loop and the worker are alive
            if self._ready.is_set() != subscribed:
                subscribed = self._ready.is_set()
                sdnotify.status("subscribed" if subscribed else "waiting for the broker")
        sdnotify.stopping()
        self.stop()
        log.info("ingest stopped: %s", dict(self.stats))
        return status


def keep_large_buffers() -> bool:
    """Let glibc's malloc reuse freed megabyte buffers instead of mapping fresh pages for each (this process).

    paho allocates and copies each ~1 MB payload several times while reading it. glibc serves
    such blocks from mmap until its adaptive threshold has risen, and gives freed heap memory
    back to the system above its trim threshold: a process can stay in a mode where every
    buffer is freshly mapped and page-faulted (about 200,000 minor faults and 1.5 ms more CPU
    per 1 MB case, measured with bench/ingest_throughput.py). Fixed thresholds (mmap above
    32 MiB, trim above 256 MiB) keep the buffers in the heap. Returns False where this is not
    glibc. The bench's raw subscriber does the same, so that both sides are compared alike.
    """
    import ctypes

    mallopt = getattr(ctypes.CDLL(None), "mallopt", None)
    if mallopt is None:
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3
    return bool(mallopt(m_mmap_threshold, 32 << 20)) and bool(mallopt(m_trim_threshold, 256 << 20))
