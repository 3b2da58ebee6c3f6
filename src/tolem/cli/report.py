"""`tolem report daily`: counts and sums per provider and day, from the ledger."""

import argparse
import re
from dataclasses import asdict
from datetime import date, datetime, timedelta
from typing import Any, Final
from zoneinfo import ZoneInfo

from tolem.cli.common import Commands, Parser, UsageError, connected, emit
from tolem.core.money import format_amount
from tolem.db import providers as provider_db
from tolem.db import reports as reports_db
from tolem.settings import Settings

_DAY_RE: Final = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def day(value: str, what: str = "day") -> date:
    """A calendar date typed as YYYY-MM-DD."""
    # fromisoformat also takes 20261125 and 2026-W48-3; an operator means YYYY-MM-DD.
    if not _DAY_RE.fullmatch(value):
        raise UsageError(f"{what} must be a date YYYY-MM-DD: {value!r}")
    try:
        return date.fromisoformat(value)
    except ValueError as exc:
        raise UsageError(f"{what} is no such date: {value!r}") from exc


def yesterday(settings: Settings) -> date:
    """Yesterday by the deployment's clock and zone: the day an accountant checks each morning."""
    return datetime.now(ZoneInfo(settings.timezone)).date() - timedelta(days=1)


async def provider_zone(conn: Any, name: str, settings: Settings) -> tuple[Any, str]:
    """The provider and the zone its days are counted in; UsageError when there is none."""
    try:
        provider = await provider_db.get(conn, name)
    except provider_db.ProviderNotFound as exc:
        raise UsageError(f"no provider named {name!r}") from exc
    return provider, provider.timezone or settings.timezone


def totals_dict(row: reports_db.DailyTotals) -> dict[str, Any]:
    """One day of one provider, amounts in minor units and as decimal strings."""
    data = asdict(row)
    for kind in ("credited", "reversed", "voided"):
        data[f"{kind}_amount"] = format_amount(getattr(row, f"{kind}_minor"))
    data["net_minor"] = row.net_minor
    data["net_amount"] = format_amount(row.net_minor)
    return data


def _totals_text(rows: list[reports_db.DailyTotals]) -> str:
    head = (
        f"{'provider':<12} {'day':<10}  {'zone':<16} {'cur':<3}  {'credited':>21}  "
        f"{'reversed':>21}  {'voided':>21}  {'net':>15}"
    )

    def pair(count: int, minor: int) -> str:
        return f"{count:>6} {format_amount(minor):>14}"

    lines = [
        "from the ledger; each provider's days run midnight to midnight in its zone",
        head,
        *(
            f"{r.provider:<12} {r.day.isoformat():<10}  {r.zone:<16} {r.currency:<3}  "
            f"{pair(r.credited_count, r.credited_minor)}  {pair(r.reversed_count, r.reversed_minor)}  "
            f"{pair(r.voided_count, r.voided_minor)}  {format_amount(r.net_minor):>15}"
            for r in rows
        ),
    ]
    return "\n".join(lines)


async def cmd_report_daily(args: argparse.Namespace, settings: Settings) -> int:
    """Credited, reversed and voided per provider per day."""
    last = day(args.to, "--to") if args.to else None
    first = day(args.since, "--from") if args.since else None
    if first is None and last is None:
        first = last = yesterday(settings)
    first = first or last
    last = last or first
    assert first is not None
    assert last is not None
    async with connected(settings) as conn:
        if args.provider is not None:
            await provider_zone(conn, args.provider, settings)
        try:
            rows = await reports_db.daily_totals(
                conn, provider=args.provider, first=first, last=last, default_zone=settings.timezone
            )
        except ValueError as exc:
            raise UsageError(str(exc)) from exc
    emit(
        args,
        {"from": first, "to": last, "days": [totals_dict(r) for r in rows]},
        _totals_text(rows) if rows else "no providers",
    )
    return 0


def register(commands: Commands, common: Parser) -> None:
    """`tolem report daily [--provider P] [--from D] [--to D]`."""
    report = commands.add_parser("report", parents=[common], help="daily totals from the ledger")
    r_cmds = report.add_subparsers(dest="report_command", required=True, parser_class=Parser)
    daily = r_cmds.add_parser(
        "daily",
        parents=[common],
        help="count and sum credited, reversed and voided per provider and day",
        description=(
            "Counts and sums what the ledger credited and reversed, and what was voided, per "
            "provider and day; each provider's day runs midnight to midnight in its zone "
            "(--timezone, else TOLEM_TIMEZONE). Without dates: yesterday."
        ),
    )
    daily.add_argument("--provider", metavar="NAME", help="only this provider (default: all)")
    daily.add_argument("--from", dest="since", metavar="YYYY-MM-DD", help="first day")
    daily.add_argument("--to", metavar="YYYY-MM-DD", help="last day (inclusive)")
    daily.set_defaults(run=cmd_report_daily)
