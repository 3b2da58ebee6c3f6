"""What the outbox trigger costs a pay: credits through tolem_accept with it and without it.

One throwaway cluster (durable commits, as bench.run's), the same database and accounts for
both: each round times N credits with the outbox triggers enabled and N with them disabled
(`ALTER TABLE payments DISABLE TRIGGER`), alternating which goes first, each credit its own
statement and transaction as the gateway sends it, from `--clients` connections at once. The
medians of the rounds are printed with their ratio; asserts nothing.

    python -m bench.outbox_cost --credits 4000 --rounds 5 --clients 1
"""

import argparse
import asyncio
import itertools
import statistics
import sys
import time

import asyncpg

from bench.harness import Database, seed

_ACCEPT = "SELECT (tolem_accept($1, $2, $3, 100, now(), NULL, true)).outcome"
_TRIGGERS = ("tr__payments__outbox_insert", "tr__payments__outbox_update")
_txn = itertools.count()


async def _credits(pool: asyncpg.Pool, provider_id: int, codes: list[str], count: int, clients: int) -> float:
    """Seconds for `count` credits spread over `clients` connections."""

    async def client(n: int) -> None:
        async with pool.acquire() as conn:
            for i in range(n, count, clients):
                outcome = await conn.fetchval(_ACCEPT, provider_id, f"b{next(_txn)}", codes[i % len(codes)])
                assert outcome == "ok", outcome

    started = time.perf_counter()
    await asyncio.gather(*(client(n) for n in range(clients)))
    return time.perf_counter() - started


async def _set_triggers(pool: asyncpg.Pool, enabled: bool) -> None:
    verb = "ENABLE" if enabled else "DISABLE"
    async with pool.acquire() as conn:
        for name in _TRIGGERS:
            await conn.execute(f"ALTER TABLE payments {verb} TRIGGER {name}")


async def main_async(credits: int, rounds: int, clients: int, accounts: int, durable: bool) -> None:
    """Warm up, then alternate the two variants for `rounds` rounds."""
    database = await Database.create()
    try:
        codes = await seed(database.dsn, accounts=accounts)
        # Without durable commits the WAL flush no longer hides the statement's own work.
        settings = {} if durable else {"synchronous_commit": "off"}
        pool = await asyncpg.create_pool(
            database.dsn, min_size=clients, max_size=clients, server_settings=settings
        )
        try:
            provider_id = await pool.fetchval("SELECT id FROM providers WHERE name = 'kiosk'")
            await _credits(pool, provider_id, codes, credits, clients)  # warm-up, plans, caches
            await pool.execute("VACUUM ANALYZE")
            times: dict[bool, list[float]] = {True: [], False: []}
            for n in range(rounds):
                for enabled in (True, False) if n % 2 == 0 else (False, True):
                    await _set_triggers(pool, enabled)
                    times[enabled].append(await _credits(pool, provider_id, codes, credits, clients))
                    print(
                        f"  round {n + 1} trigger {'on ' if enabled else 'off'} {times[enabled][-1]:.3f} s",
                        file=sys.stderr,
                    )
            await _set_triggers(pool, True)
            events = await pool.fetchval("SELECT count(*) FROM outbox_events")
        finally:
            await pool.close()
    finally:
        await database.close()
    on, off = statistics.median(times[True]), statistics.median(times[False])
    commits = "durable" if durable else "synchronous_commit off"
    print(f"{credits:,} credits per run, {clients} client(s), {commits}, {rounds} rounds, medians:")
    print(f"  trigger on   {on:7.3f} s  {credits / on:8,.0f} credits/s  {on / credits * 1e6:7.0f} us each")
    print(f"  trigger off  {off:7.3f} s  {credits / off:8,.0f} credits/s  {off / credits * 1e6:7.0f} us each")
    print(f"  on / off time ratio {on / off:.3f}  (events written: {events:,})")


def main(argv: list[str] | None = None) -> int:
    """Parses the sizes and runs."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--credits", type=int, default=4000, help="credits per timed run")
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds; medians are shown")
    parser.add_argument("--clients", type=int, default=1, help="connections crediting at once")
    parser.add_argument("--accounts", type=int, default=1000, help="accounts the credits are spread over")
    parser.add_argument("--no-sync", action="store_true", help="commits without waiting for the WAL flush")
    args = parser.parse_args(argv)
    asyncio.run(main_async(args.credits, args.rounds, args.clients, args.accounts, not args.no_sync))
    return 0


if __name__ == "__main__":
    sys.exit(main())
