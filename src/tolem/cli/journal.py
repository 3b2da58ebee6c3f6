"""`tolem journal …`: what aggregators asked and what we answered."""

import argparse
import json
import os
from dataclasses import asdict
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from tolem.cli.common import Commands, Parser, UsageError, code, connected, emit, moment, to_json
from tolem.db import journal as journal_db
from tolem.settings import Settings


def _journal_dict(row: journal_db.JournalRow) -> dict[str, Any]:
    return asdict(row)


def _journal_text(row: journal_db.JournalRow, zone: ZoneInfo) -> str:
    # Local time of the deployment, as operators type --since/--until; the offset is shown.
    local = row.received_at.astimezone(zone)
    head = (
        f"{local:%Y-%m-%d %H:%M:%S.%f}"[:-3]
        + f"{local:%z}  #{row.id}  {row.provider}  {row.remote_addr or '-'}  {row.method} {row.command}  "
        f"txn={row.txn or '-'}  code={row.code_masked or '-'}  result={row.result or '-'}  "
        f"http={row.http_status}  {row.duration_us / 1000:.1f}ms"
    )
    lines = [head]
    if row.details:
        lines.append("    " + json.dumps(row.details, ensure_ascii=False))
    if row.response_body:
        lines.append("    " + row.response_body.replace("\n", "\n    "))
    return "\n".join(lines)


async def cmd_journal(args: argparse.Namespace, settings: Settings) -> int:
    """What aggregators asked and what we answered, newest first."""
    if args.limit < 1 or args.limit > 10_000:
        raise UsageError("--limit must be 1 to 10000")
    where = journal_db.JournalFilter(
        provider=args.provider,
        txn=args.txn,
        code=None if args.code is None else code(args.code),
        since=moment(args.since, settings),
        until=moment(args.until, settings),
    )
    async with connected(settings) as conn:
        rows = await journal_db.search(conn, where, limit=args.limit)
    emit(
        args,
        [_journal_dict(r) for r in rows],
        "\n".join(_journal_text(r, ZoneInfo(settings.timezone)) for r in rows) or "no matching calls",
    )
    return 0


async def cmd_journal_archive(args: argparse.Namespace, settings: Settings) -> int:
    """Moves journal rows older than --before into a JSON-lines file, then deletes them."""
    before = moment(args.before, settings)
    assert before is not None
    path = Path(args.to)
    try:
        out = path.open("x", encoding="utf-8")  # noqa: ASYNC230 - a CLI writing one file, closed below
    except FileExistsError as exc:
        raise UsageError(f"{path} exists; archives are never overwritten") from exc
    except OSError as exc:
        raise UsageError(f"cannot create {path}: {exc.strerror}") from exc

    def write(row: journal_db.JournalRow) -> None:
        out.write(to_json(_journal_dict(row)) + "\n")

    def sync() -> None:
        out.flush()
        os.fsync(out.fileno())

    moved = 0
    try:
        async with connected(settings) as conn:
            moved = await journal_db.archive(conn, before, write, sync)
    finally:
        out.close()
        if moved == 0:
            path.unlink(missing_ok=True)  # noqa: ASYNC240 - nothing was archived: no empty file
    emit(
        args,
        {"archived": moved, "before": before, "file": str(path) if moved else None},
        f"archived {moved} journal row(s) received before {before.isoformat()}"
        + (f" into {path}" if moved else ""),
    )
    return 0


def register(commands: Commands, common: Parser) -> None:
    """`tolem journal [filters]` and `tolem journal archive`."""
    journal = commands.add_parser(
        "journal", parents=[common], help="what aggregators asked and what we answered"
    )
    journal.add_argument("--provider", metavar="NAME", help="only this provider's calls")
    journal.add_argument("--txn", help="the provider's transaction id")
    journal.add_argument("--code", help="payment code (matched by its masked form)")
    journal.add_argument("--since", help="ISO date or date-time (zone: TOLEM_TIMEZONE unless given)")
    journal.add_argument("--until", help="ISO date or date-time, exclusive")
    journal.add_argument(
        "--limit", type=int, default=100, metavar="N", help="at most N calls (1-10000, default 100)"
    )
    journal.set_defaults(run=cmd_journal)
    j_cmds = journal.add_subparsers(dest="journal_command", parser_class=Parser)
    archive = j_cmds.add_parser(
        "archive",
        parents=[common],
        help="move old calls into a JSON-lines file, then delete them (payments untouched)",
    )
    archive.add_argument("--before", required=True, help="ISO date or date-time, exclusive")
    archive.add_argument("--to", required=True, metavar="FILE.jsonl", help="new file to write")
    archive.set_defaults(run=cmd_journal_archive)
