"""`tolem account import FILE.csv`: accounts and payers with their codes from an older billing."""

import argparse
import csv
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import asyncpg

from tolem.cli.common import (
    EMAIL_RE,
    MAX_NAME,
    MAX_SERVICE,
    Commands,
    Parser,
    UsageError,
    connected,
    currency_mismatch,
    emit,
)
from tolem.core.codes import CodeShape, classify, normalize
from tolem.db import accounts as account_db
from tolem.db.ledger import CurrencyMismatch, require_currency
from tolem.settings import Settings


@dataclass
class ImportReport:
    """What an import did, row by row."""

    created: int = 0
    skipped: int = 0
    refused: list[tuple[int, str]] = field(default_factory=list)


_IMPORT_REQUIRED: Final = ("payment_code", "email", "name")


def _import_row(row: dict[str, str | None]) -> tuple[str, str, str, str | None, list[str], str]:
    """Validates one CSV row; raises ValueError with the reason."""
    values = {k: (v or "").strip() for k, v in row.items() if k is not None}
    for name in _IMPORT_REQUIRED:
        if not values.get(name):
            raise ValueError(f"{name} is required")
    code = normalize(values["payment_code"])
    if classify(code) is CodeShape.MALFORMED:
        raise ValueError("malformed payment code")
    if len(values["email"]) > 254 or not EMAIL_RE.fullmatch(values["email"]):
        raise ValueError("bad email")
    name = values["name"]
    if len(name) > MAX_NAME or not name.isprintable():
        raise ValueError("bad name")
    ref = values.get("account_ref") or None
    if ref is not None and len(ref) > 64:
        raise ValueError("account_ref longer than 64 characters")
    services = [s.strip() for s in values.get("services", "").split(";") if s.strip()]
    if any(len(s) > MAX_SERVICE for s in services):
        raise ValueError("service name too long")
    status = values.get("status") or "active"
    if status not in ("active", "blocked"):
        raise ValueError("status must be active or blocked")
    return code, values["email"], name, ref, services, status


async def _import_one(
    conn: asyncpg.Connection,
    settings: Settings,
    fields: tuple[str, str, str, str | None, list[str], str],
) -> bool:
    """Imports one payer; False when its code already exists (skipped)."""
    code, email, name, ref, services, status = fields
    async with conn.transaction():
        owner = await conn.fetchval("SELECT account_id FROM payers WHERE payment_code = $1", code)
        if owner is not None:
            return False
        account_id = None
        if ref is not None:
            account_id = await conn.fetchval("SELECT id FROM accounts WHERE external_ref = $1", ref)
        if account_id is None:
            await account_db.create_account(
                conn,
                email=email,
                name=name,
                currency=settings.currency,
                services=services,
                status=status,
                payment_code=code,
                external_ref=ref,
            )
        else:
            await account_db.add_payer(conn, account_id, name, payment_code=code)
            await account_db.add_services(conn, account_id, services)
    return True


async def cmd_account_import(args: argparse.Namespace, settings: Settings) -> int:
    """Imports accounts and payers with their existing codes; idempotent on the code."""
    path = Path(args.file)
    try:
        text = path.read_text(encoding="utf-8-sig")  # noqa: ASYNC240 - a CLI reading one small file
    except FileNotFoundError as exc:
        raise UsageError(f"no such file: {path}") from exc
    except UnicodeDecodeError as exc:
        raise UsageError(f"{path} is not UTF-8") from exc
    reader = csv.DictReader(io.StringIO(text, newline=""))
    missing = [f for f in _IMPORT_REQUIRED if f not in (reader.fieldnames or [])]
    if missing:
        raise UsageError(f"CSV header lacks: {', '.join(missing)}")
    report = ImportReport()
    async with connected(settings) as conn:
        try:
            await require_currency(conn, settings.currency)
        except CurrencyMismatch as exc:
            raise currency_mismatch(exc, settings) from exc
        for row in reader:
            line = reader.line_num
            try:
                fields = _import_row(row)
                created = await _import_one(conn, settings, fields)
            except (ValueError, asyncpg.IntegrityConstraintViolationError, asyncpg.DataError) as exc:
                report.refused.append((line, str(exc).splitlines()[0]))
                continue
            if created:
                report.created += 1
            else:
                report.skipped += 1
    data = {
        "created": report.created,
        "skipped": report.skipped,
        "refused": [{"line": n, "reason": r} for n, r in report.refused],
    }
    text_out = "\n".join(
        [
            f"created: {report.created}",
            f"skipped: {report.skipped}",
            f"refused: {len(report.refused)}",
            *(f"  line {n}: {r}" for n, r in report.refused),
        ]
    )
    emit(args, data, text_out)
    return 0


def register(a_cmds: Commands, common: Parser) -> None:
    """`tolem account import FILE.csv`."""
    imp = a_cmds.add_parser("import", parents=[common])
    imp.add_argument("file")
    imp.set_defaults(run=cmd_account_import)
