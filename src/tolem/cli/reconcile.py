"""`tolem reconcile …`: an aggregator's registry diffed against our payments, and the
discrepancies found worked off.

    tolem reconcile PROVIDER FILE [options]      import the registry, diff it; exit 1 if anything differs
    tolem reconcile list [--provider P] [--all]  open discrepancies (with --all: resolved ones too)
    tolem reconcile resolve ID --note TEXT       close a discrepancy, recording who and when
    tolem reconcile credit ID [--note TEXT]      credit a payment the registry lists and we lack,
                                                 through the gateway's idempotent pay, then resolve

`tolem reconcile run PROVIDER FILE` is the same as the first form (for a provider named like a
subcommand). Options follow PROVIDER FILE or the subcommand's ID.
"""

import argparse
import hashlib
from dataclasses import asdict
from pathlib import Path
from typing import Any, Final
from zoneinfo import ZoneInfo

from tolem.cli.common import (
    Command,
    Commands,
    Parser,
    UsageError,
    connected,
    emit,
    local_time,
    operator_name,
    shown_amount,
    zone,
)
from tolem.cli.discrepancies import cmd_credit, cmd_list, cmd_resolve
from tolem.cli.report import day, provider_zone
from tolem.core.model import WireProtocol
from tolem.core.money import format_amount
from tolem.db import registries as registry_db
from tolem.reconcile import formats
from tolem.settings import Settings

# Each protocol's usual registry; Click sends none of its own, so its CSV needs a mapping.
_DEFAULT_FORMAT: Final = {WireProtocol.OSMP: formats.Format.QIWI, WireProtocol.PAYME: formats.Format.PAYME}
# At most this many bad lines are named on the one line of the error.
_SHOWN_PROBLEMS: Final = 10
_DELIMITERS: Final = {"tab": "\t", "\\t": "\t", "comma": ",", "semicolon": ";"}


def _values(text: str | None, default: frozenset[str]) -> frozenset[str]:
    if text is None:
        return default
    return frozenset(v.strip().lower() for v in text.split(",") if v.strip())


def _mapping(args: argparse.Namespace) -> formats.CsvMapping:
    columns: dict[str, str] = {}
    for item in args.map or []:
        name, sep, column = item.partition("=")
        if not sep or not name.strip() or not column.strip():
            raise UsageError(f"--map takes FIELD=COLUMN, not {item!r}")
        columns[name.strip()] = column.strip()
    mapping = formats.CsvMapping(
        columns=columns,
        delimiter=_DELIMITERS.get(args.delimiter, args.delimiter),
        time_format=args.time_format,
        amount_in_minor=args.amount_unit == "minor",
        paid=_values(args.paid_values, formats.DEFAULT_PAID),
        cancelled=_values(args.cancelled_values, formats.DEFAULT_CANCELLED),
        pending=_values(args.pending_values, formats.DEFAULT_PENDING),
    )
    problems = mapping.problems()
    if problems:
        raise UsageError(f"column mapping: {'; '.join(problems)}")
    return mapping


def _refused(args: argparse.Namespace, path: Path, exc: formats.RegistryError) -> UsageError:
    if args.json:
        emit(args, {"refused": True, "file": str(path), "problems": [asdict(p) for p in exc.problems]}, "")
    shown = "; ".join(f"{p.where}: {p.reason}" for p in exc.problems[:_SHOWN_PROBLEMS])
    more = f"; and {exc.total - _SHOWN_PROBLEMS} more" if exc.total > _SHOWN_PROBLEMS else ""
    return UsageError(f"{path.name} refused ({exc.total} problem(s)), nothing stored: {shown}{more}")


def _difference_dict(d: registry_db.Difference) -> dict[str, Any]:
    data = asdict(d)
    data["theirs_amount"] = shown_amount(d.theirs_amount_minor)
    data["ours_amount"] = shown_amount(d.ours_amount_minor)
    data["open"] = d.resolved_at is None
    return data


def _side(side: registry_db.Side) -> dict[str, Any]:
    return {"count": side.count, "total_minor": side.total_minor, "total": format_amount(side.total_minor)}


def _difference_text(d: registry_db.Difference, currency: str, tz: ZoneInfo) -> str:
    at = local_time(d.at, tz)
    detail = {
        "missing_ours": f"theirs {shown_amount(d.theirs_amount_minor)} {currency} to {d.theirs_code or '-'}"
        f" at {at}",
        "missing_theirs": f"ours {shown_amount(d.ours_amount_minor)} {currency} to {d.ours_code} at {at}",
        "amount_mismatch": f"theirs {shown_amount(d.theirs_amount_minor)}, "
        f"ours {shown_amount(d.ours_amount_minor)}",
        "code_mismatch": f"theirs {d.theirs_code}, ours {d.ours_code}",
        "state_mismatch": f"theirs {d.theirs_state}, ours {d.ours_state}",
        "day_mismatch": f"ours on {d.ours_day}",
    }[d.kind]
    if d.resolved_at is not None:
        status = f"resolved by {d.resolved_by} at {d.resolved_at.astimezone(tz):%Y-%m-%d %H:%M}"
    else:
        status = "open, new" if d.new else "open"
    where = f"line {d.line_no}" if d.line_no is not None else "-"
    return f"  #{d.discrepancy_id:<6} {d.kind:<15} txn {d.txn:<20} {where:<11} {detail}  [{status}]"


def _report(args: argparse.Namespace, done: registry_db.Reconciliation) -> None:
    r = done.registry
    tz = ZoneInfo(r.zone)
    data = {
        "provider": r.provider,
        "day": r.business_day,
        "zone": r.zone,
        "currency": r.currency,
        "registry": {
            "id": r.id,
            "revision": r.revision,
            "format": r.format,
            "file_name": r.file_name,
            "sha256": r.sha256,
            "stored_now": done.stored_now,
            "imported_at": r.imported_at,
            "imported_by": r.imported_by,
            "lines": r.line_count,
            "declared_count": r.declared_count,
            "declared_total": shown_amount(r.declared_minor),
        },
        "theirs": {**_side(done.theirs), "not_paid": done.theirs_not_paid},
        "ours": _side(done.ours),
        "agree": done.agree,
        "differences": [_difference_dict(d) for d in done.differences],
    }
    stored = "stored now" if done.stored_now else f"stored before, {r.imported_at:%Y-%m-%d %H:%M} UTC"
    trailer = (
        f"  (Total line: {r.declared_count}, {shown_amount(r.declared_minor)})"
        if r.declared_count is not None
        else ""
    )
    others = f", {done.theirs_not_paid} cancelled or pending" if done.theirs_not_paid else ""
    lines = [
        f"{r.provider} {r.business_day} ({r.zone}): registry #{r.id} revision {r.revision}, "
        f"{r.file_name}, {stored}",
        f"theirs: {done.theirs.count} paid, {format_amount(done.theirs.total_minor)} {r.currency}"
        f"{others}{trailer}",
        f"ours:   {done.ours.count} credited, {format_amount(done.ours.total_minor)} {r.currency}",
    ]
    if done.agree:
        lines.append("agree: every payment matches")
    else:
        new = sum(d.new for d in done.differences)
        lines.append(f"differ: {len(done.differences)} difference(s), {new} new")
        lines += [_difference_text(d, r.currency, tz) for d in done.differences]
    emit(args, data, "\n".join(lines))


async def cmd_run(args: argparse.Namespace, settings: Settings) -> int:
    """Imports a registry file (idempotent per provider and day) and diffs it."""
    path = Path(args.file)
    try:
        data = path.read_bytes()  # noqa: ASYNC240 - a CLI reading one file before it connects
    except FileNotFoundError as exc:
        raise UsageError(f"no such file: {path}") from exc
    operator = operator_name(args.operator)
    given_zone = zone(args.zone)
    wanted_day = None if args.day is None else day(args.day, "--day")
    async with connected(settings) as conn:
        provider, provider_day_zone = await provider_zone(conn, args.provider, settings)
        registry_zone = given_zone or provider_day_zone
        fmt = formats.Format(args.format) if args.format else _DEFAULT_FORMAT.get(provider.protocol)
        if fmt is None:
            raise UsageError(f"{provider.name} speaks {provider.protocol}: give --format (csv with --map)")
        mapping = _mapping(args) if fmt is formats.Format.CSV else None
        try:
            parsed = formats.parse(
                data,
                fmt,
                zone=ZoneInfo(registry_zone),
                key=formats.txn_key(provider.protocol),
                mapping=mapping,
            )
        except formats.RegistryError as exc:
            raise _refused(args, path, exc) from exc
        business_day = wanted_day or formats.likely_day(parsed.lines, ZoneInfo(registry_zone))
        if business_day is None:
            raise UsageError(f"{path.name}: cannot tell which day it covers; give --day YYYY-MM-DD")
        try:
            done = await registry_db.import_registry(
                conn,
                provider=provider,
                day=business_day,
                zone=registry_zone,
                parsed=parsed,
                file_name=path.name[:255],
                sha256=hashlib.sha256(data).hexdigest(),
                imported_by=operator,
                supersede=args.supersede,
            )
        except registry_db.RegistryConflict as exc:
            old = exc.latest
            raise UsageError(
                f"{provider.name} {business_day} already has registry #{old.id} (revision {old.revision}, "
                f"{old.file_name}, imported {old.imported_at:%Y-%m-%d %H:%M} UTC by {old.imported_by}) with "
                f"other content; nothing stored. Pass --supersede to store this file as revision "
                f"{old.revision + 1} and diff it"
            ) from exc
        except registry_db.RegistrySuperseded as exc:
            raise UsageError(
                f"{path.name} is revision {exc.stored.revision} of {provider.name} {business_day}, "
                f"superseded by revision {exc.latest.revision} ({exc.latest.file_name}); nothing stored"
            ) from exc
    _report(args, done)
    return 0 if done.agree else 1


def _subparsers(common: Parser) -> dict[str, Parser]:
    run = Parser(prog="tolem reconcile", parents=[common], description="Import a registry and diff it.")
    run.add_argument("provider", metavar="PROVIDER", help="the provider whose registry it is")
    run.add_argument("file", metavar="FILE", help="the registry: OSMP tabs, CSV (--map) or Payme JSON")
    run.add_argument("--format", choices=[f.value for f in formats.Format], help="default: by protocol")
    run.add_argument("--day", metavar="YYYY-MM-DD", help="the day it covers (default: most lines' date)")
    run.add_argument("--zone", help="zone of the registry's times (default: the provider's)")
    run.add_argument(
        "--map", action="append", metavar="FIELD=COLUMN", help="csv: txn, amount, time, date, code, state"
    )
    run.add_argument("--delimiter", default=",", help="csv: one character, or tab / semicolon")
    run.add_argument("--time-format", help="csv: strptime pattern (default ISO 8601)")
    run.add_argument(
        "--amount-unit", choices=("major", "minor"), default="major", help="csv: amounts in som or tyiyn"
    )
    run.add_argument("--paid-values", help="csv: comma-separated state values meaning paid")
    run.add_argument("--cancelled-values", help="csv: comma-separated state values meaning cancelled")
    run.add_argument("--pending-values", help="csv: comma-separated state values meaning not performed")
    run.add_argument(
        "--supersede", action="store_true", help="store a different file for a stored day as a new revision"
    )
    run.add_argument("--operator", help="who imports (default: the OS user)")
    run.set_defaults(run=cmd_run)

    listing = Parser(
        prog="tolem reconcile list", parents=[common], description="Discrepancies, newest first."
    )
    listing.add_argument("--provider", metavar="NAME", help="only this provider's")
    listing.add_argument("--all", action="store_true", help="resolved ones too")
    listing.add_argument("--limit", type=int, default=100, metavar="N", help="at most N (default 100)")
    listing.set_defaults(run=cmd_list)

    resolve = Parser(prog="tolem reconcile resolve", parents=[common], description="Resolve a discrepancy.")
    resolve.add_argument("id", metavar="ID", type=int, help="the discrepancy, as `reconcile list` shows it")
    resolve.add_argument("--note", required=True, help="why it is resolved; kept with who and when")
    resolve.add_argument("--operator", help="who resolves (default: the OS user)")
    resolve.set_defaults(run=cmd_resolve)

    credit = Parser(
        prog="tolem reconcile credit",
        parents=[common],
        description="Credit a payment the registry lists and we lack (missing_ours), then resolve.",
    )
    credit.add_argument("id", metavar="ID", type=int, help="a missing_ours discrepancy")
    credit.add_argument("--note", help="kept with the resolution (default: says it was credited)")
    credit.add_argument("--operator", help="who credits (default: the OS user)")
    credit.set_defaults(run=cmd_credit)
    return {"run": run, "list": listing, "resolve": resolve, "credit": credit}


def register(commands: Commands, common: Parser) -> None:
    """`tolem reconcile PROVIDER FILE …` and `tolem reconcile list|resolve|credit …`."""
    parsers = _subparsers(common)
    parser = commands.add_parser(
        "reconcile",
        parents=[common],
        help="diff an aggregator's registry against our payments; work discrepancies off",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "target",
        metavar="PROVIDER|list|resolve|credit|run",
        help="a provider (diff FILE against it), or what to do with discrepancies",
    )
    parser.add_argument("rest", nargs=argparse.REMAINDER, metavar="...", help="FILE and options; see above")

    async def dispatch(args: argparse.Namespace, settings: Settings) -> int:
        # A provider may be named like nothing else here, so a subcommand's name wins and
        # `run` reaches any provider.
        name = args.target if args.target in parsers else "run"
        rest = args.rest if name == args.target else [args.target, *args.rest]
        try:
            inner = parsers[name].parse_args(rest)
        except SystemExit as exc:  # --help printed what was asked
            return int(exc.code or 0)
        inner.json = getattr(inner, "json", False) or args.json
        run: Command = inner.run
        return await run(inner, settings)

    parser.set_defaults(run=dispatch)
