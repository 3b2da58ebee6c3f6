"""How long the operator console's pages take on a large ledger.

Fills a throwaway cluster with N payments through the real payment functions (as bench.audit
does: a tenth of them cancelled), journals a page of calls for one busy account, starts a real
`tolem serve`, logs in as an operator and times each page over HTTP (median and slowest of
`--repeat` requests), beside the one SQL statement each page leans on most. Prints figures;
asserts nothing.

    python -m bench.console --payments 1000000
"""

import argparse
import asyncio
import re
import statistics
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import asyncpg

from bench.audit import fill
from bench.harness import Database, Server, seed
from bench.screens import DEMO_COST, DEMO_PASSWORD
from tolem.db import console as console_db
from tolem.db import journal as journal_db
from tolem.db import operators as operator_db
from tolem.db.operators import Role
from tolem.protocols.passwords import hash_password

ZONE = "Asia/Bishkek"


async def timed(repeat: int, call: Callable[[], Awaitable[Any]]) -> tuple[float, float]:
    """(median, slowest) milliseconds of `repeat` calls."""
    spent = []
    for _ in range(repeat):
        started = time.perf_counter()
        await call()
        spent.append((time.perf_counter() - started) * 1000)
    return statistics.median(spent), max(spent)


async def journal_busy_account(dsn: str, code: str) -> None:
    """Journal rows for the first account's payments, as the gateway would have written them."""
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            """SELECT pr.name, p.external_id FROM payments p JOIN payers py ON py.id = p.payer_id
                 JOIN providers pr ON pr.id = p.provider_id
                WHERE py.payment_code = $1 ORDER BY p.id DESC LIMIT 40""",
            code,
        )
        entries = [
            journal_db.JournalEntry(
                received_at=datetime.now(UTC),
                provider=r["name"],
                remote_addr="127.0.0.1",
                method="GET",
                command=command,
                txn=r["external_id"],
                code_masked="********" + code[-4:],
                result="0",
                http_status=200,
                response_body="<response><result>0</result></response>",
                duration_us=900,
                request_id=None,
                details={"amount": 100},
            )
            for r in rows
            for command in ("check", "pay")
        ]
        await journal_db.insert_many(conn, entries)
        await operator_db.add_operator(
            conn, "bench", Role.SUPPORT, hash_password(DEMO_PASSWORD, cost=DEMO_COST)
        )
        await conn.execute("ANALYZE")
    finally:
        await conn.close()


async def main_async(payments: int, accounts: int, repeat: int) -> None:
    """Fill, serve, log in, time."""
    database = await Database.create()
    server: Server | None = None
    try:
        codes = await seed(database.dsn, accounts=accounts)
        conn = await asyncpg.connect(database.dsn)
        try:
            await fill(conn, payments, codes)
        finally:
            await conn.close()
        await journal_busy_account(database.dsn, codes[0])
        server = Server.tolem(database.dsn)
        await server.start()
        conn = await asyncpg.connect(database.dsn)
        txn = str(payments // 2)
        figures: list[tuple[str, tuple[float, float]]] = []
        try:
            today = await timed(repeat, lambda: console_db.today_totals(conn, ZONE))
            figures.append(("SQL today_totals (all of it today)", today))
            # The next day: nothing to sum, so what is left is finding the day in the history.
            tomorrow = datetime.now(UTC) + timedelta(days=1)
            later = await timed(repeat, lambda: console_db.today_totals(conn, ZONE, at=tomorrow))
            figures.append(("SQL today_totals (tomorrow: history skipped)", later))
            figures.append(
                ("SQL payments_by_txn", await timed(repeat, lambda: console_db.payments_by_txn(conn, txn)))
            )
        finally:
            await conn.close()
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
            async with session.get(f"{server.url}/ops/login") as response:
                form = await response.text()
            token = re.search(r'name="csrf" value="([0-9a-f]+)"', form)
            assert token is not None
            login = {"name": "bench", "password": DEMO_PASSWORD, "csrf": token.group(1), "next": "/ops/"}
            async with session.post(f"{server.url}/ops/login", data=login) as response:
                assert response.status == 200, response.status

            def page(path: str) -> Callable[[], Awaitable[None]]:
                async def get() -> None:
                    async with session.get(f"{server.url}{path}", allow_redirects=False) as answer:
                        await answer.read()
                        assert answer.status in (200, 303), (path, answer.status)

                return get

            for name, path in (
                ("page: account (20 payments, 40 calls journaled)", "/ops/accounts/1"),
                ("page: search by email (redirect)", "/ops/search?q=user0@bench.kg"),
                ("page: search by txn id (redirect)", f"/ops/search?q={txn}"),
                ("page: search, nothing found", "/ops/search?q=nobody@nowhere.kg"),
                ("page: today", "/ops/today"),
                ("page: providers", "/ops/providers"),
            ):
                figures.append((name, await timed(repeat, page(path))))
        print(f"{payments:,} payments over {accounts:,} accounts; median and slowest of {repeat}:")
        for name, (median, slowest) in figures:
            print(f"  {name:<44} {median:8.1f} ms  (slowest {slowest:.1f} ms)")
    finally:
        if server is not None:
            server.stop()
        await database.close()


def main(argv: list[str] | None = None) -> None:
    """Entry point: `python -m bench.console`."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--payments", type=int, default=200_000)
    parser.add_argument("--accounts", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args(argv)
    asyncio.run(main_async(args.payments, args.accounts, args.repeat))


if __name__ == "__main__":
    main()
