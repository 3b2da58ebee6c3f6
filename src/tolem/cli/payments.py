"""`tolem payments export`: one provider's payments of one day, as CSV or JSON."""

import argparse
import csv
import io
import sys
from datetime import datetime
from pathlib import Path
from typing import Any, Final
from zoneinfo import ZoneInfo

from tolem.cli.common import Commands, Parser, UsageError, connected, to_json
from tolem.cli.report import day, provider_zone
from tolem.core.money import format_amount
from tolem.db import registries as registry_db
from tolem.db import reports as reports_db
from tolem.settings import Settings

# Columns whose values are times, each written in the provider's zone with its offset.
_TIME_COLUMNS: Final = ("time", "created_at", "credited_at", "cancelled_at")
_COLUMNS: Final = ("txn", "payment_id", "payment_code", "amount", "amount_minor", "currency", "state")


def _local(value: datetime | None, zone: ZoneInfo) -> str | None:
    return None if value is None else value.astimezone(zone).isoformat()


def _payment_dict(row: reports_db.PaymentRow, zone: ZoneInfo) -> dict[str, Any]:
    return {
        "txn": row.external_id,
        "payment_id": row.id,
        "payment_code": row.payment_code,
        "amount": format_amount(row.amount_minor),
        "amount_minor": row.amount_minor,
        "currency": row.currency,
        "state": row.state,
        # The business time: the aggregator's stamp, ours when it sent none.
        "time": _local(row.provider_time or row.created_at, zone),
        "created_at": _local(row.created_at, zone),
        "credited_at": _local(row.credited_at, zone),
        "cancelled_at": _local(row.cancelled_at, zone),
    }


def _csv(payments: list[dict[str, Any]], zone: str) -> str:
    out = io.StringIO(newline="")
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([*_COLUMNS, *(f"{c} ({zone})" for c in _TIME_COLUMNS)])
    for p in payments:
        writer.writerow([*(p[c] for c in _COLUMNS), *(p[c] or "" for c in _TIME_COLUMNS)])
    return out.getvalue()


async def cmd_payments_export(args: argparse.Namespace, settings: Settings) -> int:
    """A provider's payments of a day (midnight to midnight in its zone), oldest first."""
    wanted = day(args.day, "--day")
    fmt = "json" if args.json else args.format
    async with connected(settings) as conn:
        provider, zone = await provider_zone(conn, args.provider, settings)
        start, end = registry_db.day_bounds(wanted, zone)
        rows = await reports_db.day_payments(conn, provider.id, start, end)
    tz = ZoneInfo(zone)
    payments = [_payment_dict(r, tz) for r in rows]
    if fmt == "json":
        body = to_json(
            {
                "provider": provider.name,
                "day": wanted.isoformat(),
                "zone": zone,
                "currency": provider.currency,
                "count": len(payments),
                "payments": payments,
            }
        )
        body += "\n"
    else:
        body = _csv(payments, zone)
    if args.out is None:
        sys.stdout.write(body)
        return 0
    path = Path(args.out)
    try:
        with path.open("x", encoding="utf-8", newline="") as out:  # noqa: ASYNC230 - a CLI writing one file
            out.write(body)
    except FileExistsError as exc:
        raise UsageError(f"{path} exists; exports are never overwritten") from exc
    said = f"wrote {len(payments)} payment(s) of {provider.name} on {wanted} ({zone}) to {path}"
    print(said, file=sys.stderr)
    return 0


def register(commands: Commands, common: Parser) -> None:
    """`tolem payments export --provider P --day D [--format csv|json] [--out FILE]`."""
    payments = commands.add_parser("payments", parents=[common], help="payments of a provider's day")
    p_cmds = payments.add_subparsers(dest="payments_command", required=True, parser_class=Parser)
    export = p_cmds.add_parser(
        "export",
        parents=[common],
        help="a provider's payments of one day, as CSV or JSON",
        description=(
            "Every payment of the provider whose business time (the aggregator's own stamp, "
            "ours when it sent none) falls on the day, midnight to midnight in the provider's "
            "zone, oldest first. Times are written in that zone with their offset; the CSV header "
            "names the zone."
        ),
    )
    export.add_argument("--provider", required=True, metavar="NAME", help="the provider whose payments")
    export.add_argument("--day", required=True, metavar="YYYY-MM-DD", help="a day in the provider's zone")
    export.add_argument("--format", choices=("csv", "json"), default="csv", help="default csv")
    export.add_argument("--out", metavar="FILE", help="new file to write (default: standard output)")
    export.set_defaults(run=cmd_payments_export)
