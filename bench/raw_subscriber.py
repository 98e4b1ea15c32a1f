"""The raw side of ``bench/ingest_throughput.py``: a bare paho subscriber process (QoS 1, a persistent
session, a shared subscription and Receive Maximum like the ingest's) that counts what it receives.

    python bench/raw_subscriber.py HOST PORT N RECEIVE_MAXIMUM TOTAL_BYTES WARMUP

Prints ``ready`` once subscribed, ``+8`` per 8 messages (the bench's publisher keeps its window from
these), ``warm`` after the warm-up messages and ``done`` when all N timed messages arrived with
TOTAL_BYTES between them; then waits for a line on stdin (the bench reads its CPU first) and stops.
"""
import sys
import threading
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from dashboard.ingest import keep_large_buffers  # noqa: E402

# The ingest's malloc setting, so that neither side pays for freshly mapped pages the other does not.
keep_large_buffers()
host, port, n, receive_maximum, total, warm = (sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]),
                                               int(sys.argv[5]), int(sys.argv[6]))
got = nbytes = 0
PROGRESS = 8
done = threading.Event()
def on_message(c, u, m):
    """Count a message; report progress, the end of the warm-up and the end of the run."""
    global got, nbytes
    got += 1
    if got % PROGRESS == 0:
        print("+%d" % PROGRESS, flush=True)  # the bench's publisher keeps its window of cases from this
    if got == warm:
        print("warm", flush=True)
        return
    if got < warm:
        return
    nbytes += len(m.payload)  # paho has assembled (copied) every byte; all of them must arrive
    if got == warm + n:
        assert nbytes == total, (nbytes, total)
        done.set()
c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-raw-sub", protocol=mqtt.MQTTv5)
c.on_message = on_message
c.on_subscribe = lambda *a: print("ready", flush=True)
# The same kind of session as the ingest's: persistent, so the broker does the same bookkeeping.
props = Properties(PacketTypes.CONNECT)
props.SessionExpiryInterval = 3600
props.ReceiveMaximum = receive_maximum
c.connect(host, port, clean_start=False, properties=props)
c.subscribe("$share/bench/bench/raw", qos=1)  # a shared subscription, like the ingest's
c.loop_start()
done.wait()
print("done", flush=True)
sys.stdin.readline()  # the bench has read this process's CPU (its threads still alive); now stop
c.loop_stop()
