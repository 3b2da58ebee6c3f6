"""Chaos runs: exactly-once under races, a server crash, a database outage, a slow database,
and towards the billing through a failing receiver and killed dispatchers (bench/chaos_billing.py).

Runs the real server as a subprocess against a real throwaway PostgreSQL cluster and talks to it
over HTTP as the aggregators do: OSMP kiosks, Payme (create, perform) and Click (prepare,
complete), each protocol in turn. Each scenario prints its figures and fails (exit
status 1) when a promise is broken: an acknowledged payment lost or credited twice, a success or
a final code answered while we could not know, or a replay answering differently.

    python -m bench.chaos                          # every protocol, default sizes
    python -m bench.chaos --scale 0.1              # what the test suite runs
    python -m bench.chaos --protocol payme --scenario outage
    python -m bench.chaos --scenario billing --scale 3   # OSMP only, whatever --protocol says
"""

import argparse
import asyncio
import random
import sys
import time
from collections import Counter
from typing import Final

import aiohttp
import asyncpg

from bench import chaos_billing
from bench.aggregators import CALLERS, CLICK_SECRET, OK, PAYME_KEY, PROVIDERS, RETRY, Answer, caller, txn_ids
from bench.harness import Database, Server, seed
from bench.verdict import Figures, credits_by_txn, report, resend_until_answered, settle


async def races(server: Server, dsn: str, codes: list[str], scale: float, protocol: str) -> Figures:
    """Many concurrent identical pays per id, for many ids: one credit each, identical answers."""
    figures = Figures("races")
    ids, copies = max(int(400 * scale), 20), 8
    plan = {txn: (random.choice(codes), f"{random.randint(1, 500)}.00") for txn in txn_ids(1, ids)}
    gate = asyncio.Semaphore(64)
    async with aiohttp.ClientSession() as session:
        kiosk = caller(protocol, session, server.url, 30)

        async def one(txn: str) -> Answer:
            async with gate:
                return await kiosk.pay(txn, *plan[txn])

        async def first_step(txn: str) -> Answer | None:
            async with gate:
                return await kiosk.prepare(txn, *plan[txn])

        calls = [txn for txn in plan for _ in range(copies)]
        random.shuffle(calls)
        # Two-step protocols race each step on its own, as their aggregators send them.
        prepared = await asyncio.gather(*(first_step(t) for t in calls))
        by_ref: dict[str, set[str | None]] = {}
        for txn, answer in zip(calls, prepared, strict=True):
            if answer is not None:
                by_ref.setdefault(txn, set()).add(answer.ref if answer.result == OK else None)
        figures.wrong_answers += sum(1 for refs in by_ref.values() if len(refs) != 1 or None in refs)
        answers = await asyncio.gather(*(one(t) for t in calls))
        figures.requests = kiosk.sent
    by_txn: dict[str, set[str]] = {}
    for txn, answer in zip(calls, answers, strict=True):
        by_txn.setdefault(txn, set()).add(answer.fingerprint)
        if answer.result != OK:
            figures.wrong_answers += 1
    figures.wrong_answers += sum(1 for bodies in by_txn.values() if len(bodies) != 1)
    refused = Counter(str(a.result) for a in answers if a.result != OK)
    if refused:
        figures.notes.append(f"answers other than success: {dict(refused)}")
    acknowledged = {t: a for t, a in zip(calls, answers, strict=True) if a.result == OK}
    await settle(figures, dsn, acknowledged, set(plan))
    return figures


async def crash(server: Server, dsn: str, codes: list[str], scale: float, protocol: str) -> Figures:
    """SIGKILL the server mid-stream, restart it, resend what got no answer."""
    figures = Figures("crash")
    total = max(int(3000 * scale), 100)
    plan = {
        txn: (random.choice(codes), f"{random.randint(1, 500)}.{random.randint(0, 99):02d}")
        for txn in txn_ids(2, total)
    }
    queue: asyncio.Queue[str] = asyncio.Queue()
    for txn in plan:
        queue.put_nowait(txn)
    acknowledged: dict[str, Answer] = {}
    unanswered: dict[str, tuple[str, str]] = {}
    async with aiohttp.ClientSession() as session:
        kiosk = caller(protocol, session, server.url, 10)

        async def client() -> None:
            while not queue.empty():
                txn = queue.get_nowait()
                answer = await kiosk.pay(txn, *plan[txn])
                if answer.result == OK:
                    acknowledged[txn] = answer
                elif answer.result in (None, RETRY):
                    unanswered[txn] = plan[txn]
                else:
                    figures.wrong_answers += 1

        async def killer() -> None:
            while len(acknowledged) < total // 3:
                await asyncio.sleep(0.01)
            server.kill()
            figures.notes.append(f"killed after {len(acknowledged)} acknowledged")

        await asyncio.gather(killer(), *(client() for _ in range(32)))
        await server.start()
        figures.notes.append(f"{len(unanswered)} without answer before restart")
        # A sample of acknowledged ones is resent too: replays must answer identically.
        for txn in random.sample(sorted(acknowledged), min(len(acknowledged), total // 10)):
            answer = await kiosk.pay(txn, *plan[txn])
            if (answer.result, answer.fingerprint) != (OK, acknowledged[txn].fingerprint):
                figures.wrong_answers += 1
        await resend_until_answered(kiosk, unanswered, acknowledged, figures)
        figures.requests = kiosk.sent
    await settle(figures, dsn, acknowledged, set(plan))
    return figures


async def outage(
    server: Server, database: Database, codes: list[str], scale: float, protocol: str
) -> Figures:
    """PostgreSQL stops under load: only "retry" answers meanwhile; afterwards all succeed once."""
    figures = Figures("database outage")
    total = max(int(1500 * scale), 60)
    plan = {txn: (random.choice(codes), "10.00") for txn in txn_ids(3, total)}
    acknowledged: dict[str, Answer] = {}
    pending: dict[str, tuple[str, str]] = {}
    down: list[float] = []  # [stopped_at, restarted_at]
    during = Counter[str]()
    async with aiohttp.ClientSession() as session:
        kiosk = caller(protocol, session, server.url, 15)
        queue: asyncio.Queue[str] = asyncio.Queue()
        for txn in plan:
            queue.put_nowait(txn)

        # Clients hold still while PostgreSQL is being stopped, so that the stop cannot drain
        # the queue before it has finished: every request sent after it meets a dead database.
        flowing = asyncio.Event()
        flowing.set()
        in_flight = 0

        async def client() -> None:
            nonlocal in_flight
            while True:
                await flowing.wait()
                if queue.empty():
                    return
                txn = queue.get_nowait()
                sent_at = time.monotonic()
                in_flight += 1
                try:
                    answer = await kiosk.pay(txn, *plan[txn])
                finally:
                    in_flight -= 1
                inside = len(down) == 1 and sent_at > down[0]
                if inside:
                    during["retry" if answer.result == RETRY else f"result {answer.result}"] += 1
                    if answer.result != RETRY:
                        figures.wrong_answers += 1
                if answer.result == OK:
                    acknowledged[txn] = answer
                elif answer.result in (None, RETRY):
                    pending[txn] = plan[txn]
                else:
                    figures.wrong_answers += 1
                if inside:
                    await asyncio.sleep(0.01)

        async def operator() -> None:
            while len(acknowledged) < total // 4:
                await asyncio.sleep(0.01)
            flowing.clear()
            while in_flight:
                await asyncio.sleep(0.01)
            await asyncio.to_thread(database.stop_server, "fast")
            down.append(time.monotonic())
            flowing.set()
            while queue.qsize() > total // 4:
                await asyncio.sleep(0.05)
            # Marked before starting: once PostgreSQL accepts connections again, which is before
            # start_server returns, a success is a real one and must not count as "while down".
            down.append(time.monotonic())
            await asyncio.to_thread(database.start_server)

        await asyncio.gather(operator(), *(client() for _ in range(16)))
        figures.notes.append(f"answers while down: {dict(during)}")
        await resend_until_answered(kiosk, pending, acknowledged, figures)
        figures.requests = kiosk.sent
    assert server.process is not None
    assert server.process.poll() is None
    figures.notes.append("same server process throughout")
    await settle(figures, database.dsn, acknowledged, set(plan))
    return figures


async def slow(server: Server, dsn: str, codes: list[str], deadline: float, protocol: str) -> Figures:
    """A lock held elsewhere: answers still come within the deadline as "retry", nothing written."""
    figures = Figures("slow database")
    victim = codes[0]
    plan = dict.fromkeys(txn_ids(4, 20), (victim, "5.00"))
    blocker = await asyncpg.connect(dsn)
    acknowledged: dict[str, Answer] = {}
    try:
        transaction = blocker.transaction()
        await transaction.start()
        await blocker.execute(
            "SELECT 1 FROM ledger_accounts WHERE id = (SELECT a.ledger_account_id FROM payers p "
            "JOIN accounts a ON a.id = p.account_id WHERE p.payment_code = $1) FOR UPDATE",
            victim,
        )
        async with aiohttp.ClientSession() as session:
            kiosk = caller(protocol, session, server.url, deadline * 3)
            answers = await asyncio.gather(*(kiosk.pay(t, c, a) for t, (c, a) in plan.items()))
            slowest = kiosk.slowest
            figures.notes.append(f"slowest answer {slowest:.2f}s (deadline {deadline}s)")
            if slowest > deadline + 1:
                figures.wrong_answers += 1
            figures.wrong_answers += sum(1 for a in answers if a.result != RETRY)
            written = await credits_by_txn(dsn)
            # A two-step protocol's reservation is a legitimate row; a credit never is, and an
            # OSMP pay is one transaction, so any row of it would be half of one.
            half = sum(1 for t in plan if written.get(t, 0) > 0 or (protocol == "osmp" and t in written))
            figures.notes.append(f"{half} payments half-written while locked")
            figures.wrong_answers += half
            await transaction.rollback()
            pending = dict(plan)
            await resend_until_answered(kiosk, pending, acknowledged, figures)
            figures.requests = kiosk.sent
    finally:
        await blocker.close()
    await settle(figures, dsn, acknowledged, set(plan))
    return figures


SCENARIOS: Final = ("races", "crash", "outage", "slow", "billing")
# The servers' request deadline in every scenario: short, so that "retry" comes quickly.
DEADLINE: Final = 2.0


async def prepare(database: Database, scale: float, protocol: str) -> list[str]:
    """Seeds a scenario's database: its protocol's provider and accounts; returns their codes."""
    return await seed(
        database.dsn,
        accounts=max(int(200 * scale), 10),
        providers=[(PROVIDERS[protocol], protocol)],
        password=PAYME_KEY,
        secret=CLICK_SECRET,
    )


async def play(
    name: str,
    server: Server,
    database: Database,
    codes: list[str],
    scale: float,
    protocol: str,
    deadline: float = DEADLINE,
) -> Figures:
    """One scenario against a started server (or anything with its `url`, `kill`, `start`);
    the ledger is read directly from `database`, whatever path the server takes to it."""
    if name == "races":
        figures = await races(server, database.dsn, codes, scale, protocol)
    elif name == "crash":
        figures = await crash(server, database.dsn, codes, scale, protocol)
    elif name == "outage":
        figures = await outage(server, database, codes, scale, protocol)
    else:
        figures = await slow(server, database.dsn, codes, deadline, protocol)
    figures.name = f"{name} {protocol}"
    return figures


async def run(
    scale: float,
    scenarios: list[str],
    workers: int,
    protocol: str = "osmp",
    billing: chaos_billing.Plan | None = None,
) -> list[Figures]:
    """Every chosen scenario on one throwaway cluster, each on a fresh database."""
    results: list[Figures] = []
    for name in scenarios:
        if name == "billing":
            # It brings its own receiver and dispatchers around the server, and speaks OSMP.
            results.append(await chaos_billing.run(billing or chaos_billing.Plan.scaled(scale), workers))
            continue
        database = await Database.create()
        server = Server.tolem(database.dsn, workers=workers if name != "crash" else 1, deadline=DEADLINE)
        try:
            codes = await prepare(database, scale, protocol)
            await server.start()
            results.append(await play(name, server, database, codes, scale, protocol))
        finally:
            server.stop()
            await database.close()
    return results


def main(argv: list[str] | None = None) -> int:
    """Runs the scenarios and exits 1 if any promise was broken."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0, help="size multiplier")
    parser.add_argument("--scenario", action="append", choices=SCENARIOS)
    parser.add_argument("--protocol", action="append", choices=sorted(CALLERS))
    parser.add_argument("--workers", type=int, default=1)
    chaos_billing.add_arguments(parser)
    args = parser.parse_args(argv)
    chosen = args.scenario or list(SCENARIOS)
    per_protocol = [name for name in chosen if name != "billing"]
    figures: list[Figures] = []
    for protocol in (args.protocol or sorted(CALLERS)) if per_protocol else []:
        figures += asyncio.run(run(args.scale, per_protocol, args.workers, protocol))
    if "billing" in chosen:
        plan = chaos_billing.plan_from(args)
        figures += asyncio.run(run(args.scale, ["billing"], args.workers, billing=plan))
    report(figures)
    for f in figures:
        if isinstance(f, chaos_billing.BillingFigures):
            print(f"{f.name}:\n{f.summary()}")
    return 0 if all(f.ok for f in figures) else 1


if __name__ == "__main__":
    sys.exit(main())
