"""`tolem operator …`: the people who log in to the operator console (/ops/).

A password is never an argument (it would sit in the shell's history and in `ps`): it is asked
twice on a terminal, or read as the first line of standard input when that is not a terminal
(`printf '%s\\n' "$PASSWORD" | tolem operator add anna --role support`).
"""

import argparse
import asyncio
import getpass
import re
import sys
from typing import Final

from tolem.cli.common import Commands, Parser, UsageError, connected, emit
from tolem.db import operators as operator_db
from tolem.db.operators import Role
from tolem.settings import Settings

NAME_RE: Final = re.compile(r"[a-z0-9][a-z0-9._-]{0,31}")
# Long enough to resist guessing past the console's lockout; no other rules, which only make
# people write passwords down.
MIN_PASSWORD: Final = 10
MAX_PASSWORD: Final = 256


def operator_name(value: str) -> str:
    """A login name: 1 to 32 of a-z, 0-9, '.', '_', '-', starting with a letter or digit."""
    name = value.strip().lower()
    if not NAME_RE.fullmatch(name):
        raise UsageError(
            f"operator name must be 1 to 32 of a-z 0-9 . _ - (starting with a letter or digit): {value!r}"
        )
    return name


def _read_password() -> str:
    if sys.stdin.isatty():
        first = getpass.getpass("password: ")
        if getpass.getpass("again: ") != first:
            raise UsageError("the two passwords differ")
        password = first
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise UsageError(f"the password must be {MIN_PASSWORD} to {MAX_PASSWORD} characters")
    return password


async def _hash(password: str) -> str:
    from tolem.protocols.passwords import PERSON_COST, hash_password  # noqa: PLC0415 - only where needed

    # Half a second of scrypt: off the event loop, as everywhere else.
    return await asyncio.to_thread(hash_password, password, cost=PERSON_COST)


async def cmd_add(args: argparse.Namespace, settings: Settings) -> int:
    """Adds an operator with a role and a password."""
    name = operator_name(args.name)
    password_hash = await _hash(_read_password())
    async with connected(settings) as conn:
        try:
            added = await operator_db.add_operator(conn, name, Role(args.role), password_hash)
        except operator_db.OperatorExists as exc:
            raise UsageError(f"operator {name!r} exists already") from exc
    emit(args, {"name": added.name, "role": str(added.role)}, f"operator {added.name} ({added.role}) added")
    return 0


async def cmd_list(args: argparse.Namespace, settings: Settings) -> int:
    """Lists operators (never their password hashes)."""
    async with connected(settings) as conn:
        found = await operator_db.list_operators(conn)
    rows = [
        {
            "name": o.name,
            "role": str(o.role),
            "enabled": o.enabled,
            "created_at": o.created_at,
            "password_changed_at": o.password_changed_at,
        }
        for o in found
    ]
    text = "\n".join(f"{o.name:<20} {o.role:<8} {'enabled' if o.enabled else 'disabled'}" for o in found)
    emit(args, rows, text or "no operators")
    return 0


async def cmd_password(args: argparse.Namespace, settings: Settings) -> int:
    """Sets a new password; the operator's sessions end."""
    name = operator_name(args.name)
    password_hash = await _hash(_read_password())
    async with connected(settings) as conn:
        try:
            await operator_db.set_password(conn, name, password_hash)
        except operator_db.OperatorNotFound as exc:
            raise UsageError(f"no operator {name!r}") from exc
    emit(args, {"name": name, "password": "changed"}, f"operator {name}: password changed, sessions ended")
    return 0


async def cmd_role(args: argparse.Namespace, settings: Settings) -> int:
    """Gives an operator another role."""
    name = operator_name(args.name)
    async with connected(settings) as conn:
        try:
            await operator_db.set_role(conn, name, Role(args.role))
        except operator_db.OperatorNotFound as exc:
            raise UsageError(f"no operator {name!r}") from exc
    emit(args, {"name": name, "role": args.role}, f"operator {name}: role {args.role}")
    return 0


async def _set_enabled(args: argparse.Namespace, settings: Settings, enabled: bool) -> int:
    name = operator_name(args.name)
    async with connected(settings) as conn:
        try:
            await operator_db.set_enabled(conn, name, enabled)
        except operator_db.OperatorNotFound as exc:
            raise UsageError(f"no operator {name!r}") from exc
    state = "enabled" if enabled else "disabled, sessions ended"
    emit(args, {"name": name, "enabled": enabled}, f"operator {name} {state}")
    return 0


async def cmd_disable(args: argparse.Namespace, settings: Settings) -> int:
    """Disables an operator: no login, and their sessions end now."""
    return await _set_enabled(args, settings, False)


async def cmd_enable(args: argparse.Namespace, settings: Settings) -> int:
    """Enables an operator again."""
    return await _set_enabled(args, settings, True)


async def cmd_unlock(args: argparse.Namespace, settings: Settings) -> int:
    """Forgets the failed logins counted against a name (its lockout ends)."""
    name = args.name.strip().lower()
    async with connected(settings) as conn:
        had = await operator_db.unlock(conn, name)
    emit(
        args,
        {"name": name, "unlocked": had},
        f"{name}: {'failed logins forgotten' if had else 'nothing to unlock'}",
    )
    return 0


def register(commands: Commands, common: Parser) -> None:
    """`tolem operator add|list|password|role|disable|enable|unlock`."""
    roles = [str(r) for r in Role]
    operator = commands.add_parser("operator", parents=[common], help="people who log in to the console")
    o_cmds = operator.add_subparsers(dest="operator_command", required=True, parser_class=Parser)
    name_help = "the operator's login name"
    add = o_cmds.add_parser(
        "add", parents=[common], help="a console login; password from the terminal or stdin's first line"
    )
    add.add_argument("name", metavar="NAME", help=name_help)
    add.add_argument(
        "--role", required=True, choices=roles, help="support looks; admin also blocks, unblocks, adds payers"
    )
    add.set_defaults(run=cmd_add)
    listing = o_cmds.add_parser("list", parents=[common], help="operators, their roles and state")
    listing.set_defaults(run=cmd_list)
    password = o_cmds.add_parser("password", parents=[common], help="a new password; sessions end")
    password.add_argument("name", metavar="NAME", help=name_help)
    password.set_defaults(run=cmd_password)
    role = o_cmds.add_parser("role", parents=[common], help="change an operator's role")
    role.add_argument("name", metavar="NAME", help=name_help)
    role.add_argument("role", metavar="ROLE", choices=roles, help=f"one of {', '.join(roles)}")
    role.set_defaults(run=cmd_role)
    for verb, run, summary in (
        ("disable", cmd_disable, "stop an operator logging in; their sessions end"),
        ("enable", cmd_enable, "let a disabled operator log in again"),
        ("unlock", cmd_unlock, "forget an operator's failed logins"),
    ):
        sub = o_cmds.add_parser(verb, parents=[common], help=summary)
        sub.add_argument("name", metavar="NAME", help=name_help)
        sub.set_defaults(run=run)
