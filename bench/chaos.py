"""Chaos runs: exactly-once under races, a server crash, a database outage and a slow database.

Runs the real server as a subprocess against a real throwaway PostgreSQL cluster and talks to it
over HTTP with the OSMP protocol, as kiosks do. Each scenario prints its figures and fails (exit
status 1) when a promise is broken: an acknowledged payment lost or credited twice, a success or
a final code answered while we could not know, or a replay answering differently.

    python -m bench.chaos                # default sizes
    python -m bench.chaos --scale 0.1    # what the test suite runs
"""

import argparse
import asyncio
import random
import re
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime

import aiohttp
import asyncpg

from bench.harness import Database, Server, seed
from tolem.db.audit import audit

_RESULT = re.compile(r"<result>(-?\d+)</result>")
_PRV = re.compile(r"<prv_txn>(\d+)</prv_txn>")
PROVIDER = "kiosk"


@dataclass(frozen=True)
class Answer:
    """What one request got back; `result` None means no answer at all."""

    result: int | None
    body: str
    at: float

    @property
    def prv_txn(self) -> str | None:
        """Our payment id, on a successful pay."""
        match = _PRV.search(self.body)
        return match.group(1) if match else None


@dataclass
class Figures:
    """What a scenario counts; the promise is that the last four are zero."""

    name: str
    requests: int = 0
    acknowledged: int = 0
    credits: int = 0
    doubles: int = 0
    lost: int = 0
    wrong_answers: int = 0
    audit_violations: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """All promised zeros are zeros."""
        return not (self.doubles or self.lost or self.wrong_answers or self.audit_violations)


class Kiosk:
    """An OSMP caller."""

    def __init__(self, session: aiohttp.ClientSession, url: str, timeout: float) -> None:
        self.session = session
        self.url = f"{url}/gw/{PROVIDER}"
        self.timeout = aiohttp.ClientTimeout(total=timeout)
        self.sent = 0

    async def pay(self, txn_id: str, code: str, amount: str) -> Answer:
        """One pay; connection failures and timeouts are 'no answer'."""
        params = {
            "command": "pay",
            "txn_id": txn_id,
            "account": code,
            "sum": amount,
            "txn_date": datetime.now(UTC).strftime("%Y%m%d%H%M%S"),
        }
        self.sent += 1
        try:
            async with self.session.get(self.url, params=params, timeout=self.timeout) as response:
                body = await response.text()
        except (aiohttp.ClientError, TimeoutError):
            return Answer(None, "", time.monotonic())
        match = _RESULT.search(body)
        return Answer(int(match.group(1)) if match else None, body, time.monotonic())


async def credits_by_txn(dsn: str) -> dict[str, int]:
    """Top-up transfers per provider transaction id (reversals aside)."""
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            """SELECT p.external_id, count(t.id) AS credits
                 FROM payments p LEFT JOIN transfers t ON t.payment_id = p.id AND t.code = 'topup'
                GROUP BY p.external_id""",
        )
        return {r["external_id"]: int(r["credits"]) for r in rows}
    finally:
        await conn.close()


async def count_audit(dsn: str) -> int:
    """Violations `tolem audit` finds."""
    conn = await asyncpg.connect(dsn)
    try:
        return len(await audit(conn))
    finally:
        await conn.close()


async def settle(figures: Figures, dsn: str, acknowledged: dict[str, Answer], all_ids: set[str]) -> None:
    """Compares what clients were told with what the ledger holds."""
    credits = await credits_by_txn(dsn)
    figures.acknowledged = len(acknowledged)
    figures.credits = sum(credits.values())
    figures.doubles = sum(1 for n in credits.values() if n > 1)
    figures.lost = sum(1 for txn in acknowledged if credits.get(txn, 0) != 1)
    missing = sum(1 for txn in all_ids if credits.get(txn, 0) != 1)
    if missing:
        figures.notes.append(f"{missing} id(s) never credited after resending")
        figures.lost += missing if not acknowledged else 0
    figures.audit_violations = await count_audit(dsn)


async def resend_until_answered(
    kiosk: Kiosk,
    pending: dict[str, tuple[str, str]],
    acknowledged: dict[str, Answer],
    figures: Figures,
    attempts: int = 50,
) -> None:
    """Clients resend everything they got no final answer for, as aggregators do for 24 h."""
    for _ in range(attempts):
        if not pending:
            return
        answers = await asyncio.gather(*(kiosk.pay(t, c, a) for t, (c, a) in pending.items()))
        for txn, answer in zip(list(pending), answers, strict=True):
            if answer.result == 0:
                first = acknowledged.setdefault(txn, answer)
                if first.prv_txn != answer.prv_txn:
                    figures.wrong_answers += 1
                del pending[txn]
            elif answer.result not in (None, 1):
                figures.wrong_answers += 1
                del pending[txn]
        await asyncio.sleep(0.2)


async def races(server: Server, dsn: str, codes: list[str], scale: float) -> Figures:
    """Many concurrent identical pays per id, for many ids: one credit each, identical answers."""
    figures = Figures("races")
    ids, copies = max(int(400 * scale), 20), 8
    plan = {f"1{n:06d}": (random.choice(codes), f"{random.randint(1, 500)}.00") for n in range(ids)}
    gate = asyncio.Semaphore(64)
    async with aiohttp.ClientSession() as session:
        kiosk = Kiosk(session, server.url, 30)

        async def one(txn: str) -> Answer:
            async with gate:
                return await kiosk.pay(txn, *plan[txn])

        calls = [txn for txn in plan for _ in range(copies)]
        random.shuffle(calls)
        answers = await asyncio.gather(*(one(t) for t in calls))
        figures.requests = kiosk.sent
    by_txn: dict[str, set[str]] = {}
    for txn, answer in zip(calls, answers, strict=True):
        by_txn.setdefault(txn, set()).add(answer.body)
        if answer.result != 0:
            figures.wrong_answers += 1
    figures.wrong_answers += sum(1 for bodies in by_txn.values() if len(bodies) != 1)
    acknowledged = {t: a for t, a in zip(calls, answers, strict=True) if a.result == 0}
    await settle(figures, dsn, acknowledged, set(plan))
    return figures


async def crash(server: Server, dsn: str, codes: list[str], scale: float) -> Figures:
    """SIGKILL the server mid-stream, restart it, resend what got no answer."""
    figures = Figures("crash")
    total = max(int(3000 * scale), 100)
    plan = {
        f"2{n:06d}": (random.choice(codes), f"{random.randint(1, 500)}.{random.randint(0, 99):02d}")
        for n in range(total)
    }
    queue: asyncio.Queue[str] = asyncio.Queue()
    for txn in plan:
        queue.put_nowait(txn)
    acknowledged: dict[str, Answer] = {}
    unanswered: dict[str, tuple[str, str]] = {}
    async with aiohttp.ClientSession() as session:
        kiosk = Kiosk(session, server.url, 10)

        async def client() -> None:
            while not queue.empty():
                txn = queue.get_nowait()
                answer = await kiosk.pay(txn, *plan[txn])
                if answer.result == 0:
                    acknowledged[txn] = answer
                elif answer.result in (None, 1):
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
            if (answer.result, answer.prv_txn) != (0, acknowledged[txn].prv_txn):
                figures.wrong_answers += 1
        await resend_until_answered(kiosk, unanswered, acknowledged, figures)
        figures.requests = kiosk.sent
    await settle(figures, dsn, acknowledged, set(plan))
    return figures


async def outage(server: Server, database: Database, codes: list[str], scale: float) -> Figures:
    """PostgreSQL stops under load: only "retry" answers meanwhile; afterwards all succeed once."""
    figures = Figures("database outage")
    total = max(int(1500 * scale), 60)
    plan = {f"3{n:06d}": (random.choice(codes), "10.00") for n in range(total)}
    acknowledged: dict[str, Answer] = {}
    pending: dict[str, tuple[str, str]] = {}
    down: list[float] = []  # [stopped_at, restarted_at]
    during = Counter[str]()
    async with aiohttp.ClientSession() as session:
        kiosk = Kiosk(session, server.url, 15)
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
                    during["retry" if answer.result == 1 else f"result {answer.result}"] += 1
                    if answer.result != 1:
                        figures.wrong_answers += 1
                if answer.result == 0:
                    acknowledged[txn] = answer
                elif answer.result in (None, 1):
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


async def slow(server: Server, dsn: str, codes: list[str], deadline: float) -> Figures:
    """A lock held elsewhere: answers still come within the deadline as "retry", nothing written."""
    figures = Figures("slow database")
    victim = codes[0]
    plan = {f"4{n:06d}": (victim, "5.00") for n in range(20)}
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
            kiosk = Kiosk(session, server.url, deadline * 3)
            started = time.monotonic()
            answers = await asyncio.gather(*(kiosk.pay(t, c, a) for t, (c, a) in plan.items()))
            slowest = max(a.at for a in answers) - started
            figures.notes.append(f"slowest answer {slowest:.2f}s (deadline {deadline}s)")
            if slowest > deadline + 1:
                figures.wrong_answers += 1
            figures.wrong_answers += sum(1 for a in answers if a.result != 1)
            written = await credits_by_txn(dsn)
            half = sum(1 for t in plan if t in written)
            figures.notes.append(f"{half} payment rows written while locked")
            figures.wrong_answers += half
            await transaction.rollback()
            pending = dict(plan)
            await resend_until_answered(kiosk, pending, acknowledged, figures)
            figures.requests = kiosk.sent
    finally:
        await blocker.close()
    await settle(figures, dsn, acknowledged, set(plan))
    return figures


def report(all_figures: list[Figures]) -> None:
    """One table, then notes."""
    header = ("scenario", "requests", "acked", "credits", "doubles", "lost", "wrong", "audit")
    print("  ".join(f"{h:>16}" if i == 0 else f"{h:>8}" for i, h in enumerate(header)))
    for f in all_figures:
        cells = (
            f.name,
            f.requests,
            f.acknowledged,
            f.credits,
            f.doubles,
            f.lost,
            f.wrong_answers,
            f.audit_violations,
        )
        print("  ".join(f"{c:>16}" if i == 0 else f"{c:>8}" for i, c in enumerate(cells)))
    for f in all_figures:
        for note in f.notes:
            print(f"  {f.name}: {note}")


async def run(scale: float, scenarios: list[str], workers: int) -> list[Figures]:
    """Every chosen scenario on one throwaway cluster, each on a fresh database."""
    deadline = 2.0
    results = []
    for name in scenarios:
        database = await Database.create()
        server = Server.tolem(database.dsn, workers=workers if name != "crash" else 1, deadline=deadline)
        try:
            codes = await seed(database.dsn, accounts=max(int(200 * scale), 10))
            await server.start()
            if name == "races":
                results.append(await races(server, database.dsn, codes, scale))
            elif name == "crash":
                results.append(await crash(server, database.dsn, codes, scale))
            elif name == "outage":
                results.append(await outage(server, database, codes, scale))
            elif name == "slow":
                results.append(await slow(server, database.dsn, codes, deadline))
        finally:
            server.stop()
            await database.close()
    return results


def main(argv: list[str] | None = None) -> int:
    """Runs the scenarios and exits 1 if any promise was broken."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0, help="size multiplier")
    parser.add_argument("--scenario", action="append", choices=["races", "crash", "outage", "slow"])
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args(argv)
    figures = asyncio.run(
        run(args.scale, args.scenario or ["races", "crash", "outage", "slow"], args.workers)
    )
    report(figures)
    return 0 if all(f.ok for f in figures) else 1


if __name__ == "__main__":
    sys.exit(main())
