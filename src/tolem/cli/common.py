"""What every command shares: the usage error, output, input validation, the database session."""

import argparse
import getpass
import json
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from datetime import date, datetime
from ipaddress import ip_network
from typing import Any, Final, NoReturn, TypeAlias
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import asyncpg

from tolem.core.errors import MalformedCode
from tolem.core.model import is_email
from tolem.core.money import AmountError, format_amount, parse_amount
from tolem.core.payment_codes import validate_code
from tolem.core.times import parse_moment
from tolem.db import migrate as migrate_db
from tolem.db.ledger import CurrencyMismatch
from tolem.db.pool import NO_WRITABLE_HOST, connect_options, dsn_target
from tolem.settings import Settings

MAX_NAME: Final = 200
MAX_SERVICE: Final = 253

Command = Callable[[argparse.Namespace, Settings], Coroutine[Any, Any, int]]


class UsageError(Exception):
    """Bad input from the operator: printed as one line, exit status 2."""


class DatabaseUnreachable(Exception):
    """The configured database did not let us in: printed as one line naming it, exit status 1."""


class Parser(argparse.ArgumentParser):
    """An argument parser whose mistakes are UsageErrors, printed like every other bad input."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


# The subcommands of one level of the tree.
Commands: TypeAlias = "argparse._SubParsersAction[Parser]"
# Each command module adds its commands to the tree: (subparsers, the shared --json parent).
Register = Callable[[Commands, Parser], None]


def _json_default(value: object) -> object:
    if isinstance(value, datetime | date):
        return value.isoformat()
    raise TypeError(type(value).__name__)


def to_json(data: Any) -> str:
    """One JSON document; times and dates as ISO 8601."""
    return json.dumps(data, default=_json_default, ensure_ascii=False)


def emit(args: argparse.Namespace, data: Any, text: str) -> None:
    """Prints the result: `data` as JSON under --json, otherwise `text`."""
    print(to_json(data) if args.json else text)


@asynccontextmanager
async def connected(settings: Settings, *, current: bool = True) -> AsyncIterator[asyncpg.Connection]:
    """One connection for one command; refuses to work on a schema with migrations pending."""
    assert settings.database_url is not None
    dsn = settings.database_url.get_secret_value()
    try:
        conn = await asyncpg.connect(dsn, **connect_options(settings.database_pooler))
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError, NO_WRITABLE_HOST) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DatabaseUnreachable(
            f"cannot connect to the database at {dsn_target(dsn)} (TOLEM_DATABASE_URL): {reason}"
        ) from exc
    try:
        if current:
            todo = await migrate_db.pending(conn)
            if todo:
                names = ", ".join(m.label for m in todo[:3]) + (", …" if len(todo) > 3 else "")
                raise UsageError(f"{len(todo)} migration(s) pending ({names}); run `tolem migrate` first")
        yield conn
    finally:
        await conn.close()


def currency_mismatch(exc: CurrencyMismatch, settings: Settings) -> UsageError:
    """The refusal of a command that would bring a second currency into the database."""
    return UsageError(
        f"the database holds {', '.join(exc.held)} but TOLEM_CURRENCY is {settings.currency}: "
        "tolem never converts between currencies; set TOLEM_CURRENCY to the database's currency"
    )


def amount(text: str) -> int:
    """A decimal string in major units as minor units."""
    try:
        return parse_amount(text)
    except AmountError as exc:
        raise UsageError(f"bad amount {text!r}: {exc}") from exc


def shown_amount(minor: int | None) -> str | None:
    """Minor units as a decimal string in major units; None stays None."""
    return None if minor is None else format_amount(minor)


def operator_name(given: str | None) -> str:
    """Who runs the command: --operator NAME when given, else the OS user."""
    if given is not None:
        return given
    try:
        return getpass.getuser()
    except (KeyError, OSError) as exc:
        raise UsageError("cannot tell who you are: pass --operator NAME") from exc


def text(value: str, what: str, limit: int) -> str:
    """Printable text of 1 to `limit` characters, stripped."""
    value = value.strip()
    if not 0 < len(value) <= limit or not value.isprintable():
        raise UsageError(f"{what} must be 1 to {limit} printable characters")
    return value


def email(value: str) -> str:
    """An email address, stripped."""
    value = value.strip()
    if not is_email(value):
        raise UsageError(f"not an email address: {value!r}")
    return value


def code(value: str) -> str:
    """A payment code as typed, spaces removed; refused when malformed."""
    try:
        return validate_code(value)
    except MalformedCode as exc:
        raise UsageError(f"malformed payment code: {value!r}") from exc


def networks(values: list[str] | None) -> list[str]:
    """CIDR texts, normalized; a bare address is its host network (/32, /128).

    A network with host bits set is refused, not rounded: `10.0.0.1/8` is most often a typo
    for one host, and silently allowing sixteen million addresses is the wrong guess.
    """
    result = []
    for value in values or []:
        try:
            result.append(str(ip_network(value)))
        except ValueError as exc:
            try:
                meant = ip_network(value, strict=False)
            except ValueError:
                raise UsageError(f"not an IP network: {value!r}") from exc
            host = value.partition("/")[0]
            raise UsageError(
                f"{value} has host bits set: it would mean {meant}; give --allow-ip {meant} if that "
                f"is meant, or --allow-ip {host} for that one host"
            ) from exc
    return result


def zone(value: str | None) -> str | None:
    """A known IANA time zone name, or None."""
    if value is None:
        return None
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise UsageError(f"unknown time zone {value!r}") from exc
    return value


def local_time(value: datetime, zone: ZoneInfo) -> str:
    """A stored time as command output shows it: `2026-11-25 14:30:00+0600`, in `zone`."""
    return f"{value.astimezone(zone):%Y-%m-%d %H:%M:%S%z}"


def moment(value: str | None, settings: Settings) -> datetime | None:
    """An ISO date or date-time typed by an operator, in the deployment's zone unless given."""
    if value is None:
        return None
    try:
        return parse_moment(value, settings.timezone)
    except ValueError as exc:
        raise UsageError(f"not an ISO date or date-time: {value!r}") from exc
