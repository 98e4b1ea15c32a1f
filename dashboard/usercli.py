"""Account commands of ``python -m dashboard`` (run on the centre, by whoever may read its database)::

    python -m dashboard create-admin --config C --username U [--password-stdin]
    python -m dashboard create-user  --config C --username U --role dermatologist|it|admin
                                     [--password-stdin] [--update]
    python -m dashboard set-password --config C --username U [--password-stdin]   # also unlocks

The password is asked twice on the terminal, or read as one line from standard
input with ``--password-stdin`` (for scripts: never on the command line, where
``ps`` would show it). ``--update`` makes ``create-user`` idempotent: an existing
user gets the password and role again and is reactivated (the demo uses it).
``create-admin`` refuses to run when an active administrator already exists,
unless ``--update``. Each command writes an audit entry (actor ``cli:<os user>``).
Exit status: 0 done, 1 refused (the message says why), 2 bad configuration.
"""

from __future__ import annotations

import argparse
import getpass
import sys

from . import audit, users
from .config import CentreConfig


def add_parsers(sub) -> None:
    """Add the account subcommands to the ``python -m dashboard`` parser."""
    for name, help_ in (("create-admin", "create the first administrator account"),
                        ("create-user", "create a dashboard account with a role"),
                        ("set-password", "set a user's password (and clear a lock-out)")):
        p = sub.add_parser(name, help=help_)
        p.add_argument("--config", required=True, help="centre TOML file")
        p.add_argument("--username", required=True)
        p.add_argument("--password-stdin", action="store_true", help="read the password as one line from stdin")
        p.add_argument("--log-level", default="WARNING", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
        if name == "create-user":
            p.add_argument("--role", required=True, choices=users.ROLES)
        if name != "set-password":
            p.add_argument("--update", action="store_true",
                           help="if the user exists, set its password and role again and reactivate it")


COMMANDS = ("create-admin", "create-user", "set-password")


def _password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    first = getpass.getpass("Password: ")
    if getpass.getpass("Password again: ") != first:
        raise users.UserError("the two passwords differ")
    return first


def run(args: argparse.Namespace, config: CentreConfig) -> int:
    """Run one account command against the configured database."""
    from . import ensure_schema
    from .store import Store

    store = Store(config.storage.database, config.storage.images_dir, config.storage.quarantine_dir)
    conn = store.conn
    try:
        ensure_schema(conn)
        role = "admin" if args.command == "create-admin" else getattr(args, "role", None)
        name = users.check_username(args.username)
        existing = users.get_user(conn, username=name)
        if args.command == "create-admin" and users.count_admins(conn) and not args.update:
            raise users.UserError("an active administrator exists already: use create-user --role admin "
                                  "from an administrator's hands, or the dashboard's Users page")
        password = _password(args)
        if args.command == "set-password" or (existing and getattr(args, "update", False)):
            if existing is None:
                raise users.UserError(f"no user {name!r}")
            users.set_password(conn, existing.id, password)
            if role:
                users.set_role(conn, existing.id, role)
                users.set_active(conn, existing.id, True)
            users.end_user_sessions(conn, existing.id)
            audit.append(conn, actor=audit.cli_actor(), action="user.password", target=name,
                         detail=f"command line{', role ' + role if role else ''}")
            print(f"{name}: password set{', role ' + role if role else ''}")
            return 0
        user = users.create_user(conn, name, password, role)
        audit.append(conn, actor=audit.cli_actor(), action="user.create", target=user.username,
                     detail=f"role {user.role}, command line")
        print(f"{user.username}: created, role {user.role}")
        return 0
    except users.UserError as exc:
        print(f"{args.command}: {exc}", file=sys.stderr)
        return 1
    finally:
        store.close()
