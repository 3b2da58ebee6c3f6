"""Chaos runs: exactly-once under races, a server crash, a database outage and a slow database.

Runs the real server as a subprocess against a real throwaway PostgreSQL cluster and talks to it
over HTTP as the aggregators do: OSMP kiosks, Payme (create, perform) and Click (prepare,
complete), each protocol in turn. Each scenario prints its figures and fails (exit
status 1) when a promise is broken: an acknowledged payment lost or credited twice, a success or
a final code answered while we could not know, or a replay answering differently.

    python -m bench.chaos                          # every protocol, default sizes
    python -m bench.chaos --scale 0.1              # what the test suite runs
    python -m bench.chaos --protocol payme --scenario outage
"""

import argparse
import asyncio
import base64
import contextlib
import hashlib
import json
import random
import re
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

import aiohttp
import asyncpg

from bench.harness import Database, Server, seed
from tolem.core.money import parse_amount
from tolem.db.audit import audit

_RESULT = re.compile(r"<result>(-?\d+)</result>")
_PRV = re.compile(r"<prv_txn>(\d+)</prv_txn>")
# One provider per protocol, as `seed` creates them; each scenario speaks one protocol.
PROVIDERS: Final = {"osmp": "kiosk", "payme": "wallet", "click": "click"}
PAYME_KEY: Final = "bench-key"
CLICK_SECRET: Final = "bench-secret"  # noqa: S105 - a throwaway cluster's provider
# Answers normalised across protocols: 0 acknowledged, RETRY "try again later" (or nothing).
OK: Final = 0
RETRY: Final = 1


@dataclass(frozen=True)
class Answer:
    """What one pay got back, normalised: `result` is OK, RETRY, None (no answer at all) or the
    protocol's own final code; `ref` is our payment id on success; `fingerprint` is what must be
    identical between a payment's first answer and every replay of it."""

    result: int | None
    at: float
    ref: str | None = None
    fingerprint: str = ""


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


def no_answer() -> Answer:
    """A connection failure or timeout."""
    return Answer(None, time.monotonic())


class Caller:
    """An aggregator: pays (`txn`, code, decimal amount) the way its protocol does."""

    def __init__(self, session: aiohttp.ClientSession, url: str, timeout: float, provider: str) -> None:
        self.session = session
        self.url = f"{url}/gw/{provider}"
        self.timeout = aiohttp.ClientTimeout(total=timeout)
        self.sent = 0
        self.slowest = 0.0  # seconds, of any single HTTP request

    @contextlib.contextmanager
    def timed(self) -> Iterator[None]:
        """Counts one request and keeps the slowest duration."""
        self.sent += 1
        started = time.monotonic()
        try:
            yield
        finally:
            self.slowest = max(self.slowest, time.monotonic() - started)

    async def prepare(self, txn: str, code: str, amount: str) -> Answer | None:
        """The first step of a two-step protocol (None for single-step ones)."""
        return None

    async def pay(self, txn: str, code: str, amount: str) -> Answer:
        """One whole payment attempt; two-step callers resume after a step that succeeded."""
        raise NotImplementedError


class Kiosk(Caller):
    """OSMP: a single `pay` request per attempt."""

    async def pay(self, txn: str, code: str, amount: str) -> Answer:
        params = {
            "command": "pay",
            "txn_id": txn,
            "account": code,
            "sum": amount,
            "txn_date": datetime.now(UTC).strftime("%Y%m%d%H%M%S"),
        }
        try:
            with self.timed():
                async with self.session.get(self.url, params=params, timeout=self.timeout) as response:
                    body = await response.text()
        except (aiohttp.ClientError, TimeoutError):
            return no_answer()
        match = _RESULT.search(body)
        if match is None:
            return no_answer()
        prv = _PRV.search(body)
        return Answer(int(match.group(1)), time.monotonic(), prv.group(1) if prv else None, body)


class Wallet(Caller):
    """Payme: CreateTransaction then PerformTransaction; like Payme, it repeats the step that
    got no answer or -32400 and never re-creates a transaction it already created."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.created: set[str] = set()
        token = base64.b64encode(f"Paycom:{PAYME_KEY}".encode()).decode()
        self.headers = {"Authorization": f"Basic {token}"}

    async def _call(self, method: str, params: dict[str, Any]) -> dict[str, Any] | None:
        document = {"jsonrpc": "2.0", "id": self.sent, "method": method, "params": params}
        try:
            with self.timed():
                async with self.session.post(
                    self.url, json=document, headers=self.headers, timeout=self.timeout
                ) as response:
                    body: dict[str, Any] = await response.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError):
            return None
        return body

    @staticmethod
    def _failed(body: dict[str, Any] | None) -> Answer | None:
        if body is None or body.get("error", {}).get("code") == -32400:
            return Answer(RETRY if body else None, time.monotonic())
        if "error" in body:
            return Answer(int(body["error"]["code"]), time.monotonic())
        return None

    async def prepare(self, txn: str, code: str, amount: str) -> Answer:
        params = {
            "id": txn,
            "time": int(time.time() * 1000),
            "amount": parse_amount(amount),
            "account": {"code": code},
        }
        created = await self._call("CreateTransaction", params)
        failed = self._failed(created)
        if failed is not None:
            return failed
        assert created is not None
        self.created.add(txn)
        result = created["result"]
        return Answer(OK, time.monotonic(), str(result["transaction"]), str(result["transaction"]))

    async def pay(self, txn: str, code: str, amount: str) -> Answer:
        if txn not in self.created:
            created = await self.prepare(txn, code, amount)
            if created.result != OK:
                return created
        performed = await self._call("PerformTransaction", {"id": txn})
        failed = self._failed(performed)
        if failed is not None:
            return failed
        assert performed is not None
        result = performed["result"]
        return Answer(OK, time.monotonic(), str(result["transaction"]), json.dumps(result, sort_keys=True))


class ClickCaller(Caller):
    """Click: Prepare then Complete, signed; HTTP 503 is its "retry". A repeated Complete of a
    credited payment is -4 "Already paid" with the same confirm id, which acknowledges it."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.prepared: dict[str, str] = {}

    async def _post(self, fields: dict[str, str]) -> dict[str, Any] | None:
        parts = [fields["click_trans_id"], fields["service_id"], CLICK_SECRET, fields["merchant_trans_id"]]
        parts += [fields["merchant_prepare_id"]] if fields["action"] == "1" else []
        parts += [fields["amount"], fields["action"], fields["sign_time"]]
        fields["sign_string"] = hashlib.md5("".join(parts).encode()).hexdigest()  # noqa: S324 - Click's
        try:
            with self.timed():
                async with self.session.post(self.url, data=fields, timeout=self.timeout) as response:
                    if response.status == 503:
                        return {"error": "retry"}
                    body: dict[str, Any] = await response.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError):
            return None
        return body

    @staticmethod
    def _fields(txn: str, code: str, amount: str) -> dict[str, str]:
        return {
            "click_trans_id": txn,
            "service_id": "1",
            "click_paydoc_id": txn,
            "merchant_trans_id": code,
            "amount": amount,
            "action": "0",
            "error": "0",
            "error_note": "Success",
            "sign_time": datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S"),
        }

    async def prepare(self, txn: str, code: str, amount: str) -> Answer:
        prepared = await self._post(self._fields(txn, code, amount))
        if prepared is None or prepared["error"] == "retry":
            return Answer(RETRY if prepared else None, time.monotonic())
        if prepared["error"] != 0:
            return Answer(int(prepared["error"]), time.monotonic())
        ref = str(prepared["merchant_prepare_id"])
        self.prepared[txn] = ref
        return Answer(OK, time.monotonic(), ref, ref)

    async def pay(self, txn: str, code: str, amount: str) -> Answer:
        if txn not in self.prepared:
            prepared = await self.prepare(txn, code, amount)
            if prepared.result != OK:
                return prepared
        fields = self._fields(txn, code, amount)
        completed = await self._post(fields | {"action": "1", "merchant_prepare_id": self.prepared[txn]})
        if completed is None or completed["error"] == "retry":
            return Answer(RETRY if completed else None, time.monotonic())
        if completed["error"] not in (0, -4):
            return Answer(int(completed["error"]), time.monotonic())
        ref = str(completed["merchant_confirm_id"])
        return Answer(OK, time.monotonic(), ref, ref)


CALLERS: Final[dict[str, type[Caller]]] = {"osmp": Kiosk, "payme": Wallet, "click": ClickCaller}


def caller(protocol: str, session: aiohttp.ClientSession, url: str, timeout: float) -> Caller:
    """The aggregator for a protocol, aimed at that protocol's provider."""
    return CALLERS[protocol](session, url, timeout, PROVIDERS[protocol])


def txn_ids(prefix: int, count: int) -> list[str]:
    """Transaction ids every protocol accepts (digits), distinct per scenario."""
    return [f"{prefix}{n:07d}" for n in range(count)]


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
    kiosk: Caller,
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
            if answer.result == OK:
                first = acknowledged.setdefault(txn, answer)
                if first.fingerprint != answer.fingerprint:
                    figures.wrong_answers += 1
                del pending[txn]
            elif answer.result not in (None, RETRY):
                figures.wrong_answers += 1
                del pending[txn]
        await asyncio.sleep(0.2)


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


SCENARIOS: Final = ("races", "crash", "outage", "slow")
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


async def run(scale: float, scenarios: list[str], workers: int, protocol: str = "osmp") -> list[Figures]:
    """Every chosen scenario on one throwaway cluster, each on a fresh database."""
    results = []
    for name in scenarios:
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
    args = parser.parse_args(argv)
    figures: list[Figures] = []
    for protocol in args.protocol or sorted(CALLERS):
        figures += asyncio.run(run(args.scale, args.scenario or list(SCENARIOS), args.workers, protocol))
    report(figures)
    return 0 if all(f.ok for f in figures) else 1


if __name__ == "__main__":
    sys.exit(main())
