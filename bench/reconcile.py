"""How long `tolem reconcile` takes on a large registry, and whether it finds what differs.

Fills a throwaway cluster (or --dsn's server) with N credited payments of one business day
through the real payment function, plus --other-days × N on the days around it, then writes a
QIWI registry of that day with known differences: some lines we lack, some payments it lacks,
some amounts and codes changed. Times the whole command (`tolem reconcile PROVIDER FILE`, its
own process), then its parts: reading the file, and diffing again (the same file, so nothing is
stored twice). Prints figures and the differences found beside those planted.

    python -m bench.reconcile --payments 100000
"""

import argparse
import asyncio
import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import asyncpg

from bench.harness import Database, seed
from tolem.core.model import WireProtocol
from tolem.db import providers as provider_db
from tolem.db import registries as registry_db
from tolem.reconcile import formats

BATCH = 10_000
ZONE = "Asia/Bishkek"
DAY = datetime(2026, 11, 25, tzinfo=ZoneInfo(ZONE))
# Every n-th payment gets one planted difference (disjoint residues).
MISSING_OURS, MISSING_THEIRS, AMOUNT, CODE = 101, 103, 107, 109


def planted(n: int) -> str | None:
    """Which difference payment n carries, if any."""
    for kind, every in (
        ("missing_ours", MISSING_OURS),
        ("missing_theirs", MISSING_THEIRS),
        ("amount_mismatch", AMOUNT),
        ("code_mismatch", CODE),
    ):
        if n % every == 0:
            return kind
    return None


def stamp(n: int, payments: int) -> datetime:
    """Payment n's time: spread over the day, the last one at 23:59:59."""
    seconds = (n * 86_399) // max(payments - 1, 1)
    return DAY + timedelta(seconds=seconds)


async def fill(conn: asyncpg.Connection, payments: int, other_days: int, codes: list[str]) -> None:
    """The day's payments (less those the registry has and we lack), and the neighbours' days."""
    provider_id = await conn.fetchval("SELECT id FROM providers WHERE name = 'kiosk'")
    await conn.execute("CREATE TEMP TABLE codes (n int PRIMARY KEY, code text)")
    await conn.executemany("INSERT INTO codes VALUES ($1, $2)", list(enumerate(codes)))
    started = time.perf_counter()
    # The same spread as stamp(): whole seconds, the last payment at 23:59:59.
    moment = f"$2::timestamptz + make_interval(secs => g::bigint * 86399 / {max(payments - 1, 1)})"
    for first in range(0, payments, BATCH):
        last = min(first + BATCH, payments) - 1
        await conn.execute(
            f"""SELECT tolem_accept($1, g::text, c.code, 100 + g % 5000, {moment}, 'bench', true)
                  FROM generate_series($3::int, $4::int) AS g
                  JOIN codes c ON c.n = g % $5
                 WHERE g % {MISSING_OURS} <> 0""",
            provider_id,
            DAY,
            first,
            last,
            len(codes),
        )
        if first == 0:
            await conn.execute("ANALYZE payments, transfers, ledger_accounts")
        print(
            f"  day: {last + 1:>9,} payments ({(last + 1) / (time.perf_counter() - started):,.0f}/s)",
            file=sys.stderr,
        )
    for d in range(other_days):
        # Alternately the days before and after: the diff must not read them.
        offset = (d // 2 + 1) * (-1 if d % 2 == 0 else 1)
        for first in range(0, payments, BATCH):
            last = min(first + BATCH, payments) - 1
            await conn.execute(
                f"""SELECT tolem_accept($1, 'd' || $6 || '-' || g, c.code, 100 + g % 5000, {moment},
                                        'bench', true)
                      FROM generate_series($3::int, $4::int) AS g
                      JOIN codes c ON c.n = g % $5""",
                provider_id,
                DAY + timedelta(days=offset),
                first,
                last,
                len(codes),
                str(d),
            )
        print(f"  other day {d + 1}/{other_days} filled", file=sys.stderr)
    await conn.execute("VACUUM ANALYZE")
    # The fill's dirty pages are written now, not by a checkpoint in the middle of the timing.
    await conn.execute("CHECKPOINT")


def registry_text(payments: int, codes: list[str]) -> str:
    """The aggregator's registry of the day, differences planted."""
    tz = ZoneInfo(ZONE)
    lines = []
    total = 0
    for n in range(payments):
        kind = planted(n)
        if kind == "missing_theirs":
            continue
        amount = 100 + n % 5000 + (1 if kind == "amount_mismatch" else 0)
        code = codes[(n + 1) % len(codes)] if kind == "code_mismatch" else codes[n % len(codes)]
        when = stamp(n, payments).astimezone(tz)
        lines.append(f"{n}\t{when:%d.%m.%Y}\t{when:%H:%M:%S}\t{code}\t{amount // 100}.{amount % 100:02d}")
        total += amount
    lines.append(f"Total: {len(lines)} {total // 100}.{total % 100:02d}")
    return "\n".join(lines) + "\n"


def expected(payments: int) -> dict[str, int]:
    """How many differences of each kind were planted."""
    found: dict[str, int] = {}
    for n in range(payments):
        kind = planted(n)
        if kind is not None:
            found[kind] = found.get(kind, 0) + 1
    return found


async def main_async(
    payments: int, accounts: int, other_days: int, server_dsn: str | None, as_json: bool
) -> int:
    """Fill, write the registry, then time the command and its parts in the same run."""
    database = await Database.create(server_dsn)
    workdir = Path(tempfile.mkdtemp(prefix="tolem-bench-reconcile-"))
    try:
        codes = await seed(database.dsn, accounts=accounts)
        conn = await asyncpg.connect(database.dsn)
        try:
            await fill(conn, payments, other_days, codes)
            stored = await conn.fetchval("SELECT count(*) FROM payments")
            path = workdir / "kiosk_20261125.txt"
            path.write_text(registry_text(payments, codes), encoding="utf-8")
            # The command as an operator runs it: its own process, interpreter start included.
            env = {**os.environ, "TOLEM_DATABASE_URL": database.dsn, "TOLEM_LOG_FORMAT": "json"}
            started = time.perf_counter()
            run = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "tolem", "reconcile", "kiosk", str(path), "--json", "--operator", "b",
                env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            )  # fmt: skip
            out, err = await run.communicate()
            command = time.perf_counter() - started
            status = run.returncode
            if status not in (0, 1):
                raise RuntimeError(f"tolem reconcile failed ({status}): {err.decode()[-500:]}")
            report = json.loads(out)
            data = path.read_bytes()
            started = time.perf_counter()
            parsed = formats.parse(
                data, formats.Format.QIWI, zone=ZoneInfo(ZONE), key=formats.txn_key(WireProtocol.OSMP)
            )
            parse = time.perf_counter() - started
            provider = await provider_db.get(conn, "kiosk")
            started = time.perf_counter()
            again = await registry_db.import_registry(
                conn,
                provider=provider,
                day=DAY.date(),
                zone=ZONE,
                parsed=parsed,
                file_name=path.name,
                sha256=hashlib.sha256(data).hexdigest(),
                imported_by="bench",
            )
            diff = time.perf_counter() - started
            # In-run references: the least any reader of the file does (split it into fields), and
            # the one join the diff cannot avoid (every line to its payment by the unique key).
            started = time.perf_counter()
            fields = [line.split("\t") for line in data.decode().splitlines()]
            split = time.perf_counter() - started
            started = time.perf_counter()
            await conn.fetchval(
                """SELECT count(p.id) FROM registry_lines l
                     LEFT JOIN payments p ON p.provider_id = $1 AND p.external_id = l.txn
                    WHERE l.registry_id = $2""",
                provider.id,
                again.registry.id,
            )
            join = time.perf_counter() - started
            found: dict[str, int] = {}
            for d in report["differences"]:
                found[d["kind"]] = found.get(d["kind"], 0) + 1
        finally:
            await conn.close()
    finally:
        await database.close()
        shutil.rmtree(workdir, ignore_errors=True)
    wanted = expected(payments)
    figures = {
        "registry_lines": len(parsed.lines),
        "payments_stored": stored,
        "command_s": round(command, 3),
        "parse_s": round(parse, 3),
        "diff_again_s": round(diff, 3),
        "store_and_diff_s": round(command - parse, 3),
        "reference_split_s": round(split, 3),
        "reference_join_s": round(join, 3),
        "exit_status": status,
        "differences": found,
        "planted": wanted,
        "found_all": found == wanted
        and not again.stored_now
        and len(again.differences) == sum(wanted.values()),
    }
    if as_json:
        print(json.dumps(figures))
    else:
        print(f"registry of {len(parsed.lines):,} lines against {stored:,} stored payments")
        print(f"  tolem reconcile (read, store, diff, report)  {command:8.2f} s   exit {status}")
        print(f"  reading and checking the file               {parse:8.2f} s")
        print(f"  diffing again (nothing stored)              {diff:8.2f} s")
        print(f"  reference: splitting {len(fields):,} lines into fields   {split:8.2f} s")
        print(f"  reference: lines joined to payments, count  {join:8.2f} s")
        print(f"  differences found {found}")
        print(f"  planted           {wanted}")
    return 0 if figures["found_all"] else 1


def main(argv: list[str] | None = None) -> int:
    """Parses the sizes and runs."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--payments", type=int, default=100_000)
    parser.add_argument("--accounts", type=int, default=2_000)
    parser.add_argument("--other-days", type=int, default=2, help="as many payments on each of N other days")
    parser.add_argument("--dsn", help="a superuser DSN of a running server (default: a throwaway cluster)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    return asyncio.run(main_async(args.payments, args.accounts, args.other_days, args.dsn, args.json))


if __name__ == "__main__":
    sys.exit(main())
