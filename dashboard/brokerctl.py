"""The broker's access rules (Mosquitto's dynamic-security plugin) and the commands that change them.

Mosquitto's plain ACL file checks a subscription only when a message is delivered: a kiosk could
subscribe to ``#`` or join the ingest's shared subscription ``$share/ingest/...`` and be granted,
and then be handed a share of every kiosk's cases that it never received (delayed until the
kiosks resent them). The dynamic-security plugin (``mosquitto_dynamic_security.so``, in Debian's
``mosquitto`` package) checks SUBSCRIBE too: anything not granted below is refused in the SUBACK
(reason 0x87 "Not authorized"), as is a PUBLISH (PUBACK 0x87) and a delivery.

Who may do what (``defaultACLAccess``: everything denied but unsubscribing)::

    ingest, ingest-2..4  read  dermkiosk/v1/+/+/{case,status,health,update-result}
                               (also as $share/ingest/...); write .../ack and dermkiosk/v1/centre/+
    updates              write dermkiosk/v1/+/+/{update,outcome} (the dashboard's publisher to kiosks)
    broker-admin         the plugin's control topic $CONTROL/dynamic-security/v1 (these commands)
    kiosk <id>           write dermkiosk/v1/<site>/<id>/{case,status,health,update-result};
                         read  dermkiosk/v1/<site>/<id>/{ack,update,outcome} and dermkiosk/v1/centre/+
                         (<site> is the hub bound at issue, ``pki issue-kiosk --site``, else any)

A certificate's common name is its user name (``use_identity_as_username``); the plugin knows a
kiosk only once it is registered, as a client ``<id>`` with the roles ``kiosk`` and
``kiosk:<id>``: a valid certificate whose kiosk is not registered connects but may do nothing.
Registration follows the PKI (:mod:`dashboard.pki`): ``pki issue-kiosk --broker URL`` registers at
a running broker, ``pki revoke --broker URL`` deletes the client (the broker drops its open
connection), and :func:`sync_file` writes the plugin's file from the PKI's index while the broker
is stopped (``python -m dashboard broker sync-file``; the demo and the tests do it at start).
"""

from __future__ import annotations

import json
import queue
import ssl
import uuid
from pathlib import Path
from urllib.parse import urlsplit

from wire import topics

from .config import MAX_INGEST_INSTANCES

#: The plugin's state file name (the plugin rewrites it after every control command).
DYNSEC_FILE = "dynamic-security.json"
CONTROL_TOPIC = "$CONTROL/dynamic-security/v1"
RESPONSE_TOPIC = f"{CONTROL_TOPIC}/response"
#: The certificate name (MQTT user) allowed to send control commands (``pki issue-broker-admin``).
BROKER_ADMIN_CN = "broker-admin"
#: The ingest processes' certificate names (as :data:`dashboard.pki.INGEST_NAMES`).
INGEST_NAMES = ("ingest", *(f"ingest-{n}" for n in range(2, MAX_INGEST_INSTANCES + 1)))
UPDATES_CN = "updates"
KIOSK_ROLE = "kiosk"
#: Kinds a kiosk publishes on its own topics, and kinds it reads there.
KIOSK_WRITES = (topics.CASE, topics.STATUS, topics.HEALTH, topics.UPDATE_RESULT)
KIOSK_READS = (topics.ACK, topics.UPDATE, topics.OUTCOME)
INGEST_READS = (topics.CASE, topics.STATUS, topics.HEALTH, topics.UPDATE_RESULT)
#: Kinds the dashboard's kiosk publisher (``updates``) writes on every kiosk's topics.
UPDATES_WRITES = (topics.UPDATE, topics.OUTCOME)


class BrokerControlError(Exception):
    """A control command failed or the broker could not be reached; ``str()`` says which and why."""


def _allow(acltype: str, topic: str) -> dict:
    return {"acltype": acltype, "topic": topic, "priority": 0, "allow": True}


def _reads(*filters: str) -> list[dict]:
    """Subscribing to ``filters`` and receiving messages on them."""
    return [a for f in filters for a in (_allow("subscribePattern", f), _allow("publishClientReceive", f))]


def kiosk_role_name(device: str) -> str:
    """The role holding one kiosk's own topics."""
    return f"{KIOSK_ROLE}:{topics.check_id(device, 'device id')}"


def kiosk_role(device: str, site: str | None = None) -> dict:
    """The role of one kiosk: its own topics, under ``site`` when given (else under any site)."""
    site_level = topics.check_id(site, "site") if site else "+"
    own = f"{topics.PREFIX}/{site_level}/{topics.check_id(device, 'device id')}"
    return {"rolename": kiosk_role_name(device),
            "acls": [_allow("publishClientSend", f"{own}/{k}") for k in KIOSK_WRITES]
            + _reads(*(f"{own}/{k}" for k in KIOSK_READS))}


def base_roles() -> list[dict]:
    """The roles of the centre's identities and the part every kiosk shares (the centre's presence)."""
    ingest = _reads(*(topics.subscription(k) for k in INGEST_READS))
    ingest += [_allow("subscribePattern", topics.subscription(k, topics.INGEST_SHARE_GROUP)) for k in INGEST_READS]
    ingest += [_allow("publishClientSend", topics.subscription(topics.ACK)),
               _allow("publishClientSend", topics.CENTRE_SUBSCRIPTION)]
    return [
        {"rolename": "ingest", "acls": ingest},
        {"rolename": "updates", "acls": [_allow("publishClientSend", topics.subscription(k)) for k in UPDATES_WRITES]},
        {"rolename": "broker-admin", "acls": [_allow("publishClientSend", f"{CONTROL_TOPIC}/#"),
                                              *_reads(RESPONSE_TOPIC)]},
        {"rolename": KIOSK_ROLE, "acls": _reads(topics.CENTRE_SUBSCRIPTION)},
    ]


def _client(username: str, *roles: str) -> dict:
    return {"username": username, "textname": username, "roles": [{"rolename": r, "priority": 0} for r in roles]}


def kiosk_client(device: str) -> dict:
    """The plugin's client entry of a kiosk (no password: the certificate authenticates it)."""
    return _client(device, KIOSK_ROLE, kiosk_role_name(device))


def config(kiosks: dict[str, str | None]) -> dict:
    """The plugin's whole configuration for ``kiosks`` (device id -> bound site or None)."""
    clients = [_client(n, "ingest") for n in INGEST_NAMES]
    clients += [_client(UPDATES_CN, "updates"), _client(BROKER_ADMIN_CN, "broker-admin")]
    clients += [kiosk_client(d) for d in sorted(kiosks)]
    return {"defaultACLAccess": {"publishClientSend": False, "publishClientReceive": False,
                                 "subscribe": False, "unsubscribe": True},
            "clients": clients, "groups": [],
            "roles": base_roles() + [kiosk_role(d, kiosks[d]) for d in sorted(kiosks)]}


def kiosks_of(pki) -> dict[str, str | None]:
    """Kiosks with a live (not revoked) certificate in ``pki`` (a :class:`dashboard.pki.Pki`), with their site."""
    out: dict[str, str | None] = {}
    for e in pki.entries():
        if e["kind"] == "kiosk" and not e.get("revoked_at"):
            out[e["name"]] = e.get("site") or out.get(e["name"])
    return out


def sync_file(path: Path | str, pki) -> Path:
    """Write the plugin's file at ``path`` for the kiosks live in ``pki`` (only while the broker is
    stopped: the plugin reads it at start and overwrites it after every command); mode 0600."""
    from .pkifiles import write_private

    path = Path(path)
    write_private(path, (json.dumps(config(kiosks_of(pki)), indent=1) + "\n").encode())
    return path


class BrokerControl:
    """A connection as ``broker-admin`` to a running broker that sends dynamic-security commands."""

    def __init__(self, url: str, ca_file: Path, cert_file: Path, key_file: Path, timeout: float = 10.0):
        """Settings only; :meth:`commands` connects, sends and waits for the answers."""
        parts = urlsplit(url)
        if parts.scheme != "mqtts" or not parts.hostname:
            raise BrokerControlError(f"broker url {url!r} must be mqtts://HOST[:PORT]")
        self.url, self.host, self.port = url, parts.hostname, parts.port or 8883
        self.ca_file, self.cert_file, self.key_file, self.timeout = ca_file, cert_file, key_file, timeout
        for f in (ca_file, cert_file, key_file):
            if not Path(f).exists():
                raise BrokerControlError(f"{f}: missing (the broker-admin certificate: "
                                         "`python -m dashboard pki issue-broker-admin`)")

    def commands(self, cmds: list[dict], ok_errors: tuple[str, ...] = ()) -> list[dict]:
        """Send ``cmds`` in one control message and return the plugin's responses in order;
        raise BrokerControlError for a response error not in ``ok_errors`` or when none comes."""
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        got: queue.Queue = queue.Queue()
        c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"{BROKER_ADMIN_CN}-{uuid.uuid4().hex[:6]}",
                        protocol=mqtt.MQTTv5)
        c.tls_set(ca_certs=str(self.ca_file), certfile=str(self.cert_file), keyfile=str(self.key_file),
                  cert_reqs=ssl.CERT_REQUIRED)
        c.on_connect = lambda cl, u, f, rc, p: got.put(("connack", rc))
        c.on_subscribe = lambda cl, u, mid, rcs, p: got.put(("suback", rcs[0]))
        c.on_message = lambda cl, u, m: got.put(("response", m.payload))
        try:
            c.connect(self.host, self.port, keepalive=30)
        except (OSError, ssl.SSLError) as exc:
            raise BrokerControlError(f"cannot reach the broker at {self.url}: {exc}") from None
        c.loop_start()
        try:
            self._expect(got, "connack")
            c.subscribe(RESPONSE_TOPIC, qos=1)
            self._expect(got, "suback")
            c.publish(CONTROL_TOPIC, json.dumps({"commands": cmds}), qos=1)
            responses = json.loads(self._expect(got, "response"))["responses"]
        finally:
            c.disconnect()
            c.loop_stop()
        for r in responses:
            if r.get("error") and r["error"] not in ok_errors:
                raise BrokerControlError(f"broker refused {r.get('command')}: {r['error']}")
        return responses

    def _expect(self, got: queue.Queue, what: str):
        try:
            kind, value = got.get(timeout=self.timeout)
        except queue.Empty:
            raise BrokerControlError(f"no {what} from the broker at {self.url} within {self.timeout:.0f} s") from None
        if kind != what or (kind in ("connack", "suback") and value.is_failure):
            raise BrokerControlError(f"the broker at {self.url} answered {kind} {value}: is this certificate "
                                     f"{BROKER_ADMIN_CN!r} and the broker's dynamic-security plugin set up?")
        return value

    def add_kiosk(self, device: str, site: str | None = None) -> None:
        """Register kiosk ``device`` (replacing an earlier registration, which drops its connection)."""
        role = kiosk_role(device, site)
        self.commands([{"command": "deleteClient", "username": device},
                       {"command": "deleteRole", "rolename": role["rolename"]}],
                      ok_errors=("Client not found", "Role not found"))
        self.commands([{"command": "createRole", **role}, {"command": "createClient", **kiosk_client(device)}])

    def remove_kiosk(self, device: str) -> bool:
        """Delete kiosk ``device``'s registration: the broker drops its connection and it may do
        nothing more; return False when it was not registered."""
        r = self.commands([{"command": "deleteClient", "username": device},
                           {"command": "deleteRole", "rolename": kiosk_role_name(device)}],
                          ok_errors=("Client not found", "Role not found"))
        return not r[0].get("error")

    def kiosks(self) -> list[str]:
        """User names of the registered kiosks."""
        r = self.commands([{"command": "listClients", "verbose": True}])
        return sorted(c["username"] for c in r[0]["data"]["clients"]
                      if any(x["rolename"] == KIOSK_ROLE for x in c.get("roles", [])))
