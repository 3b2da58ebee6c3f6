"""How long `tolem audit` takes on a large ledger, beside a plain scan of the same tables.

Fills a throwaway cluster with N payments through the real payment functions (a tenth of them
then cancelled, so reversals are audited too), then times each audit check and, as the in-run
reference, one `count(*)` over payments and transfers. Prints figures; asserts nothing.

    python -m bench.audit --payments 1000000
"""

import argparse
import asyncio
import sys
import time

import asyncpg

from bench.harness import Database, seed
from tolem.db.audit import audit

BATCH = 10_000


async def fill(conn: asyncpg.Connection, payments: int, codes: list[str]) -> None:
    """N credited payments spread over the accounts; every tenth cancelled again."""
    provider_id = await conn.fetchval("SELECT id FROM providers WHERE name = 'kiosk'")
    await conn.execute("CREATE TEMP TABLE codes (n int PRIMARY KEY, code text)")
    await conn.executemany("INSERT INTO codes VALUES ($1, $2)", list(enumerate(codes)))
    started = time.perf_counter()
    for first in range(0, payments, BATCH):
        last = min(first + BATCH, payments) - 1
        await conn.execute(
            """SELECT tolem_accept($1, g::text, c.code, 100 + g % 5000, now(), NULL, true)
                 FROM generate_series($2::int, $3::int) AS g
                 JOIN codes c ON c.n = g % $4""",
            provider_id,
            first,
            last,
            len(codes),
        )
        await conn.execute(
            "SELECT tolem_cancel($1, g::text, NULL, 1) FROM generate_series($2::int, $3::int) AS g"
            " WHERE g % 10 = 0",
            provider_id,
            first,
            last,
        )
        done = last + 1
        if done in (BATCH, 10 * BATCH) or done % (100 * BATCH) == 0:
            # Plans made while the tables were empty scan them whole (see performance notes).
            await conn.execute("ANALYZE payments, transfers, ledger_accounts")
        rate = done / (time.perf_counter() - started)
        print(f"  filled {done:>9,} payments ({rate:,.0f}/s)", file=sys.stderr)
    await conn.execute("VACUUM ANALYZE")


async def main_async(payments: int, accounts: int) -> None:
    """Fill, then time the reference scan and the audit in the same run."""
    database = await Database.create()
    try:
        codes = await seed(database.dsn, accounts=accounts)
        conn = await asyncpg.connect(database.dsn)
        try:
            await fill(conn, payments, codes)
            transfers = await conn.fetchval("SELECT count(*) FROM transfers")
            started = time.perf_counter()
            await conn.fetchval("SELECT (SELECT count(*) FROM payments) + (SELECT count(*) FROM transfers)")
            reference = time.perf_counter() - started
            timings: list[tuple[str, int, float]] = []
            started = time.perf_counter()
            found = await audit(conn, lambda name, count, seconds: timings.append((name, count, seconds)))
            total = time.perf_counter() - started
        finally:
            await conn.close()
    finally:
        await database.close()
    print(f"payments {payments:,}, transfers {transfers:,}, accounts {accounts:,}")
    print(f"reference: count(*) over payments and transfers  {reference:8.2f} s")
    for name, count, seconds in timings:
        print(f"  {name:<40} {seconds:8.2f} s  {count} violation(s)")
    print(
        f"audit total                                     {total:8.2f} s  ({total / reference:.1f}x the scan)"
    )
    print(f"violations: {len(found)}")


def main(argv: list[str] | None = None) -> int:
    """Parses the sizes and runs."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--payments", type=int, default=1_000_000)
    parser.add_argument("--accounts", type=int, default=10_000)
    args = parser.parse_args(argv)
    asyncio.run(main_async(args.payments, args.accounts))
    return 0


if __name__ == "__main__":
    sys.exit(main())
