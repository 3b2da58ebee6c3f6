"""`tolem account import FILE.csv`: accounts and payers with their codes from an older billing.

Every row ends in exactly one of three lists: created, skipped (its code is already there, on
the very account the row describes: a re-import) or refused, with its line and reason. A code
that belongs to another account is refused, never skipped: the row and the database disagree
about whose money it is, and a person must decide.
"""

import argparse
import csv
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import asyncpg

from tolem.cli.common import (
    MAX_NAME,
    MAX_SERVICE,
    Commands,
    Parser,
    UsageError,
    connected,
    currency_mismatch,
    emit,
)
from tolem.core.errors import MalformedCode
from tolem.core.model import AccountStatus, is_email
from tolem.core.payment_codes import validate_code
from tolem.db import accounts as account_db
from tolem.db.ledger import CurrencyMismatch, require_currency
from tolem.settings import Settings

_REQUIRED: Final = ("payment_code", "email", "name")
_COLUMNS: Final = frozenset({*_REQUIRED, "account_ref", "services", "status"})


@dataclass(frozen=True, slots=True)
class ImportRow:
    """One validated row."""

    code: str
    email: str
    name: str
    ref: str | None
    services: list[str]
    status: AccountStatus


@dataclass
class ImportReport:
    """What an import did, row by row."""

    created: int = 0
    skipped: list[tuple[int, int]] = field(default_factory=list)  # (line, account id)
    refused: list[tuple[int, str]] = field(default_factory=list)  # (line, reason)


class Refused(ValueError):
    """A row that is not imported; the message is the reason printed with its line."""


def _header(fields: list[str]) -> list[str]:
    """The header's column names; unknown, repeated or missing required ones stop the import."""
    names = [f.strip() for f in fields]
    unknown = sorted(set(names) - _COLUMNS)
    if unknown:
        raise UsageError(
            f"CSV header has unknown column(s): {', '.join(unknown)} (known: {', '.join(sorted(_COLUMNS))})"
        )
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise UsageError(f"CSV header names a column more than once: {', '.join(repeated)}")
    missing = [f for f in _REQUIRED if f not in names]
    if missing:
        raise UsageError(f"CSV header lacks: {', '.join(missing)}")
    return names


def _parse_row(header: list[str], fields: list[str]) -> ImportRow:
    """Validates one CSV row; raises Refused with the reason."""
    if len(fields) != len(header):
        # A shifted row would put one column's value into another (a name into services).
        raise Refused(f"{len(fields)} fields where the header has {len(header)}")
    values = {name: value.strip() for name, value in zip(header, fields, strict=True)}
    for name in _REQUIRED:
        if not values[name]:
            raise Refused(f"{name} is required")
    try:
        code = validate_code(values["payment_code"])
    except MalformedCode as exc:
        raise Refused("malformed payment code") from exc
    email = values["email"]
    if not is_email(email):
        raise Refused("bad email")
    name = values["name"]
    if len(name) > MAX_NAME or not name.isprintable():
        raise Refused("bad name")
    ref = values.get("account_ref") or None
    if ref is not None and len(ref) > 64:
        raise Refused("account_ref longer than 64 characters")
    services = [s.strip() for s in values.get("services", "").split(";") if s.strip()]
    if any(len(s) > MAX_SERVICE for s in services):
        raise Refused("service name too long")
    try:
        status = AccountStatus(values.get("status") or AccountStatus.ACTIVE)
    except ValueError:
        raise Refused("status must be active or blocked") from None
    return ImportRow(code, email, name, ref, services, status)


def _is_reimport(row: ImportRow, owner: account_db.CodeOwner) -> bool:
    """Whether the account holding the row's code is the account the row describes."""
    if row.ref is not None:
        return owner.external_ref == row.ref
    # Without account_ref each row is an account of its own, known by its email.
    return owner.external_ref is None and owner.email.lower() == row.email.lower()


async def _import_one(conn: asyncpg.Connection, settings: Settings, row: ImportRow) -> int | None:
    """Imports one payer; the account id when it was there already (skipped), None when created."""
    async with conn.transaction():
        owner = await account_db.code_owner(conn, row.code)
        if owner is not None:
            if not _is_reimport(row, owner):
                raise Refused(f"payment code collides with account {owner.account_id}")
            return owner.account_id
        account_id = None if row.ref is None else await account_db.account_by_ref(conn, row.ref)
        if account_id is None:
            await account_db.create_account(
                conn,
                email=row.email,
                name=row.name,
                currency=settings.currency,
                services=row.services,
                status=row.status,
                payment_code=row.code,
                external_ref=row.ref,
            )
        else:
            await account_db.add_payer(conn, account_id, row.name, payment_code=row.code)
            await account_db.add_services(conn, account_id, row.services)
    return None


def _report_text(report: ImportReport) -> str:
    return "\n".join(
        [
            f"created: {report.created}",
            f"skipped: {len(report.skipped)}",
            *(f"  line {n}: already imported into account {a}" for n, a in report.skipped),
            f"refused: {len(report.refused)}",
            *(f"  line {n}: {r}" for n, r in report.refused),
        ]
    )


async def cmd_account_import(args: argparse.Namespace, settings: Settings) -> int:
    """Imports accounts and payers with their existing codes; exit 1 when any row was refused."""
    path = Path(args.file)
    try:
        text = path.read_text(encoding="utf-8-sig")  # noqa: ASYNC240 - a CLI reading one small file
    except FileNotFoundError as exc:
        raise UsageError(f"no such file: {path}") from exc
    except UnicodeDecodeError as exc:
        raise UsageError(f"{path} is not UTF-8") from exc
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = _header(next(reader))
    except StopIteration as exc:
        raise UsageError(f"{path} is empty") from exc
    report = ImportReport()
    async with connected(settings) as conn:
        try:
            await require_currency(conn, settings.currency)
        except CurrencyMismatch as exc:
            raise currency_mismatch(exc, settings) from exc
        for fields in reader:
            line = reader.line_num
            if not fields:
                continue  # a blank line carries no row
            try:
                existing = await _import_one(conn, settings, _parse_row(header, fields))
            except (Refused, asyncpg.IntegrityConstraintViolationError, asyncpg.DataError) as exc:
                report.refused.append((line, str(exc).splitlines()[0]))
                continue
            if existing is None:
                report.created += 1
            else:
                report.skipped.append((line, existing))
    data = {
        "created": report.created,
        "skipped": len(report.skipped),
        "skipped_rows": [{"line": n, "account_id": a} for n, a in report.skipped],
        "refused": [{"line": n, "reason": r} for n, r in report.refused],
    }
    emit(args, data, _report_text(report))
    return 1 if report.refused else 0


def register(a_cmds: Commands, common: Parser) -> None:
    """`tolem account import FILE.csv`."""
    imp = a_cmds.add_parser(
        "import",
        parents=[common],
        help="accounts and payers with existing codes from an older billing",
        description=(
            "Imports a UTF-8 CSV with a header row: payment_code, email, name (required), account_ref, "
            "services (;-separated), status (active/blocked). Each row is created, skipped (its code "
            "is already on the account the row describes) or refused with its line: a row with more "
            "or fewer fields than the header, a bad value, or a code that belongs to another account. "
            "Exit status 1 when any row was refused, 2 when the file itself is unusable."
        ),
    )
    imp.add_argument("file", metavar="FILE.csv", help="the CSV file (UTF-8, with a header row)")
    imp.set_defaults(run=cmd_account_import)
