"""``python -m dashboard staff ...``: kiosk staff from the centre's command line (as the admin pages do)::

    python -m dashboard staff list       --config C
    python -m dashboard staff add        --config C --staff-id ph.jones --name "A Jones" [--role photographer]
                                         [--pin-stdin] [--update]
    python -m dashboard staff reset-pin  --config C --staff-id ph.jones [--pin-stdin]
    python -m dashboard staff deactivate --config C --staff-id ph.jones      (activate: the reverse)
    python -m dashboard staff export     --config C --out staff.json         (a kiosk's seed roster file)
    python -m dashboard staff send       --config C [--device D ...]         (signed staff.json to kiosks)

The PIN is asked twice on the terminal, or read as one line from standard input
with ``--pin-stdin`` (never on the command line, where ``ps`` would show it).
``--update`` makes ``add`` idempotent (the demo uses it). Each change is audited
(actor ``cli:<os user>``). Exit status: 0 done, 1 refused (the message says why), 2 bad configuration.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from pathlib import Path

from . import audit, staff


def _pin(args: argparse.Namespace) -> tuple[str, str]:
    if args.pin_stdin:
        pin = sys.stdin.readline().rstrip("\r\n")
        return pin, pin
    return getpass.getpass("PIN: "), getpass.getpass("PIN again: ")


def run(args: argparse.Namespace, config) -> int:
    """Run one staff command against the configured database."""
    from . import ensure_schema
    from .store import Store

    s = config.storage
    store = Store(s.database, s.images_dir, s.quarantine_dir)
    conn, actor = store.conn, audit.cli_actor()
    try:
        ensure_schema(conn)
        cmd = args.staff_cmd
        if cmd == "list":
            for m in staff.list_staff(conn):
                print(f"{m['staff_id']:<20} {m['role']:<13} {'active' if m['active'] else 'deactivated':<12} "
                      f"{m['name']}")
            return 0
        if cmd == "export":
            roster = staff.roster(conn)
            Path(args.out).write_bytes(staff.roster_json(roster))
            print(f"{args.out}: roster {roster.version}, {len(roster.staff)} staff")
            return 0
        if cmd == "send":
            roster, sent = staff.send_roster(store, config.updates, devices=args.device or None)
            for r in sent:
                print(f"{r.site}/{r.device}: {'sent' if r.error is None else 'NOT sent: ' + r.error}")
            ok = [r.device for r in sent if r.error is None]
            audit.append(conn, actor=actor, action="staff.roster-send", target=roster.version,
                         detail=f"{len(roster.staff)} staff to {', '.join(ok) or 'no kiosk'}, command line")
            return 0 if len(ok) == len(sent) else 1
        staff_id = staff.check_staff_id(args.staff_id)
        if cmd == "add":
            member = staff.add(conn, staff_id, args.name, args.role, *_pin(args), update=args.update)
            audit.append(conn, actor=actor, action="staff.create", target=staff_id,
                         detail=f"role {member['role']}, command line")
            print(f"{staff_id}: added ({member['role']}); send the roster to the kiosks")
        elif cmd == "reset-pin":
            staff.reset_pin(conn, staff_id, *_pin(args))
            audit.append(conn, actor=actor, action="staff.pin", target=staff_id, detail="command line")
            print(f"{staff_id}: new PIN set; send the roster to the kiosks")
        else:  # activate / deactivate
            staff.set_active(conn, staff_id, cmd == "activate")
            audit.append(conn, actor=actor, action=f"staff.{cmd}", target=staff_id, detail="command line")
            print(f"{staff_id}: {cmd}d; send the roster to the kiosks")
        return 0
    except staff.StaffError as exc:
        print(f"staff {args.staff_cmd}: {exc}", file=sys.stderr)
        return 1
    finally:
        store.close()


def main(argv: list[str], config_loader) -> int:
    """``python -m dashboard staff ...`` (``config_loader(path)`` loads the centre config)."""
    ap = argparse.ArgumentParser(prog="python -m dashboard staff", description="kiosk staff and their roster")
    sub = ap.add_subparsers(dest="staff_cmd", required=True)
    for name, help_ in (("list", "list kiosk staff"), ("add", "add a staff member with a PIN"),
                        ("reset-pin", "give a staff member a new PIN"), ("deactivate", "leave out of the roster"),
                        ("activate", "put back into the roster"), ("export", "write the roster as staff.json"),
                        ("send", "send the roster to kiosks (signed config bundle)")):
        p = sub.add_parser(name, help=help_)
        p.add_argument("--config", required=True, help="centre TOML file")
        if name in ("add", "reset-pin", "deactivate", "activate"):
            p.add_argument("--staff-id", required=True)
        if name in ("add", "reset-pin"):
            p.add_argument("--pin-stdin", action="store_true", help="read the PIN as one line from stdin")
        if name == "add":
            p.add_argument("--name", required=True)
            p.add_argument("--role", default="photographer", choices=tuple(staff.ROLES))
            p.add_argument("--update", action="store_true", help="if the id exists, set name, role and PIN again")
        if name == "export":
            p.add_argument("--out", required=True, help="file to write (staff.json)")
        if name == "send":
            p.add_argument("--device", action="append", default=[], help="only this kiosk (repeat; default: all)")
    args = ap.parse_args(argv)
    return run(args, config_loader(args.config))
