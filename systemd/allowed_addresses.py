#!/usr/bin/env python3
"""Print the systemd drop-in that lets a DermKiosk unit reach its broker (issue 25).

The units allow loopback only (``IPAddressDeny=any``, ``IPAddressAllow=localhost``); the broker's
address is the site's, so ``make install-kiosk`` / ``make install-centre`` write
``<unit>.d/10-addresses.conf`` from this script's output::

    python3 systemd/allowed_addresses.py /etc/dermkiosk/kiosk.toml [--resolv-conf /etc/resolv.conf]

It allows the addresses of every ``mqtt(s)://`` host in the config (the ``url`` of any table, e.g.
``[broker]``, ``[updates.broker]``) as they resolve now, and the DNS servers of resolv.conf, so that
the name keeps resolving. Run it again (``make install-*``) when the broker's address changes.
"""

from __future__ import annotations

import argparse
import ipaddress
import socket
import sys
import tomllib
from pathlib import Path
from urllib.parse import urlsplit


def broker_hosts(cfg: dict) -> list[str]:
    """Hosts of every ``mqtt://`` or ``mqtts://`` ``url`` anywhere in a parsed TOML config."""
    out: list[str] = []
    for key, value in cfg.items():
        if isinstance(value, dict):
            out += broker_hosts(value)
        elif key == "url" and isinstance(value, str) and value.startswith(("mqtt://", "mqtts://")):
            host = urlsplit(value).hostname
            if host:
                out.append(host)
    return list(dict.fromkeys(out))


def addresses(hosts: list[str], resolv_conf: Path) -> list[str]:
    """The IP addresses of ``hosts`` and the nameservers in ``resolv_conf`` (sorted, unique)."""
    found: set[str] = set()
    for host in hosts:
        try:
            net = ipaddress.ip_network(host, strict=False)        # an address or a CIDR range
            found.add(str(net.network_address) if net.num_addresses == 1 else str(net))
            continue
        except ValueError:
            pass
        try:
            found |= {str(info[4][0]) for info in socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)}
        except socket.gaierror as exc:
            raise SystemExit(f"cannot resolve the broker host {host!r} ({exc}): set BROKER_ADDRESSES") from None
    if resolv_conf.exists():
        for line in resolv_conf.read_text().splitlines():
            parts = line.split()
            if len(parts) >= 2 and parts[0] == "nameserver":
                found.add(str(ipaddress.ip_address(parts[1].split("%")[0])))
    return sorted(found, key=lambda a: (":" in a, a))


def drop_in(addrs: list[str], source: str) -> str:
    """The drop-in's text: one ``IPAddressAllow=`` with ``addrs`` (nothing to add when empty)."""
    head = f"# Written by make install from {source} (systemd/allowed_addresses.py): the broker and DNS.\n"
    return head + "[Service]\n" + (f"IPAddressAllow={' '.join(addrs)}\n" if addrs else "")


def main(argv: list[str] | None = None) -> int:
    """Print the drop-in for the config named on the command line."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("config", type=Path, help="kiosk.toml or centre.toml")
    ap.add_argument("--resolv-conf", type=Path, default=Path("/etc/resolv.conf"))
    ap.add_argument("--extra", default="", help="more addresses, space-separated (BROKER_ADDRESSES)")
    args = ap.parse_args(argv)
    try:
        cfg = tomllib.loads(args.config.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        print(f"{args.config}: {exc}", file=sys.stderr)
        return 2
    addrs = addresses(broker_hosts(cfg) + args.extra.split(), args.resolv_conf)
    sys.stdout.write(drop_in(addrs, str(args.config)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
