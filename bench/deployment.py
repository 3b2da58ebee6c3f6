"""Chaos runs beyond one machine: through PgBouncer, across two instances behind HAProxy, and
through the failover of a PostgreSQL primary to its synchronous standby.

The aggregators (bench/aggregators.py), the scenarios (bench/chaos.py) and the ledger's verdict
(bench/verdict.py) are shared with the single-machine runs; this module only builds the
topology around them (bench/topology.py) and adds the failover scenario, which needs a standby.

    python -m bench.deployment                            # all three, every protocol
    python -m bench.deployment --scale 0.1 --protocol osmp    # what the test suite runs
    python -m bench.deployment --proof failover
"""

import argparse
import asyncio
import random
import sys
import time
from collections import Counter
from dataclasses import dataclass
from typing import Final

import aiohttp

from bench.aggregators import CALLERS, OK, RETRY, Answer, caller, txn_ids
from bench.balancer import Balancer, OneOfMany, wait_until_balanced
from bench.chaos import DEADLINE, play, prepare
from bench.harness import CLUSTER_OPTIONS, Database, Server
from bench.pgbouncer import PgBouncer
from bench.standby import kill_cluster, promote, remove_cluster, start_standby
from bench.verdict import Figures, report, resend_until_answered, settle

# What tolem needs to know about PgBouncer in front of it (README, docs/deployment.md).
POOLER: Final = {"TOLEM_DATABASE_POOLER": "pgbouncer"}
PGBOUNCER_SCENARIOS: Final = ("races", "crash", "outage")
# How long the failover takes to be decided: what a watchdog (Patroni, repmgr, an operator's
# script) needs to call the primary dead before it promotes the standby.
DETECTION_SECONDS: Final = 1.0


def _through(figures: Figures, bouncer: PgBouncer, database: Database, path: str) -> Figures:
    """Labels the figures with the path taken and proves the pays went through PgBouncer."""
    figures.name = f"{figures.name} {path}"
    stats = bouncer.stats(database.name)
    figures.notes.append(f"PgBouncer passed on {stats.get('total_xact_count', 0)} transactions")
    return figures


async def through_pgbouncer(scale: float, scenarios: list[str], workers: int, protocol: str) -> list[Figures]:
    """bench.chaos's scenarios with PgBouncer (transaction pooling) between tolem and PostgreSQL;
    the outage stops PostgreSQL behind a PgBouncer that stays up."""
    results = []
    for name in scenarios:
        database = await Database.create()
        assert database.cluster is not None
        bouncer = PgBouncer(database.cluster.port)
        server = Server.tolem(
            bouncer.dsn(database.name),
            workers=workers if name != "crash" else 1,
            deadline=DEADLINE,
            **POOLER,
        )
        try:
            bouncer.start()
            codes = await prepare(database, scale, protocol)
            await server.start()
            figures = await play(name, server, database, codes, scale, protocol)
            results.append(_through(figures, bouncer, database, "via pgbouncer"))
        finally:
            server.stop()
            bouncer.stop()
            await database.close()
    return results


async def two_instances(scale: float, protocol: str) -> list[Figures]:
    """Two tolem instances behind HAProxy, both through one PgBouncer to one database: the
    races scenario spreads identical pays over both; the crash scenario SIGKILLs one instance
    while the other keeps answering, then brings it back."""
    results = []
    for name in ("races", "crash"):
        database = await Database.create()
        assert database.cluster is not None
        bouncer = PgBouncer(database.cluster.port, pool_size=12)
        servers = [
            Server.tolem(
                bouncer.dsn(database.name),
                deadline=DEADLINE,
                TOLEM_TRUSTED_PROXIES="127.0.0.1/32",
                **POOLER,
            )
            for _ in range(2)
        ]
        balancer = Balancer([s.port for s in servers])
        try:
            bouncer.start()
            codes = await prepare(database, scale, protocol)
            for server in servers:
                await server.start()
            balancer.start()
            await wait_until_balanced(balancer, len(servers))
            target = OneOfMany(balancer.url, servers[0])
            figures = await play(name, target, database, codes, scale, protocol)  # type: ignore[arg-type]
            answered = balancer.answered()
            figures.notes.append(
                "answers per instance: " + ", ".join(f"{k} {v}" for k, v in sorted(answered.items()))
            )
            if name == "crash":
                failed = balancer.failures()
                figures.notes.append(
                    f"tolem1 frozen, killed and restarted, tolem2 served throughout; HAProxy: "
                    f"{failed['cut_off']} requests left unanswered inside tolem1, "
                    f"{failed['redispatched']} moved to tolem2, {failed['errors']} error answers"
                )
            if min(answered.values(), default=0) == 0:
                figures.notes.append("an instance answered nothing: the run proved nothing")
                figures.wrong_answers += 1
            results.append(_through(figures, bouncer, database, "2 instances"))
        finally:
            balancer.stop()
            for server in servers:
                server.stop()
            bouncer.stop()
            await database.close()
    return results


@dataclass
class Switch:
    """What the failover looked like from the aggregators' side."""

    acknowledged_before: int = 0  # pays sent before the primary was killed, acknowledged
    acknowledged_after: int = 0  # pays sent after it, acknowledged (by the new primary)
    retry_answers: int = 0  # "retry" answers to pays sent after the kill
    retry_seconds: float = 0.0  # from the kill to the first acknowledgement of a later pay
    promote_seconds: float = 0.0  # pg_ctl promote, until the standby accepted writes
    same_process: bool = False


async def failover(scale: float, protocol: str, workers: int = 1) -> tuple[Figures, Switch]:
    """Pays flow into a primary with a synchronous standby; the primary is SIGKILLed, the
    standby promoted a moment later. tolem, given both hosts (target_session_attrs=read-write),
    must answer only "retry" until the standby takes writes, then acknowledge again without a
    restart; every pay acknowledged before or after must be on the new primary exactly once."""
    figures = Figures(f"failover {protocol}")
    switch = Switch()
    database = await Database.create()
    primary = database.cluster
    assert primary is not None
    standby, standby_base = await start_standby(primary, CLUSTER_OPTIONS)
    dsn = (
        f"postgresql://postgres@127.0.0.1:{primary.port},127.0.0.1:{standby.port}/{database.name}"
        "?target_session_attrs=read-write"
    )
    server = Server.tolem(dsn, workers=workers, deadline=DEADLINE)
    try:
        codes = await prepare(database, scale, protocol)
        await server.start()
        assert server.process is not None
        first_pid = server.process.pid
        total = max(int(1500 * scale), 150)
        plan = {txn: (random.choice(codes), f"{random.randint(1, 500)}.00") for txn in txn_ids(5, total)}
        queue = list(plan)
        acknowledged: dict[str, Answer] = {}
        pending: dict[str, tuple[str, str]] = {}
        killed_at: float | None = None
        promoting_at: float | None = None
        first_ok_after: float | None = None
        during = Counter[str]()
        async with aiohttp.ClientSession() as session:
            kiosk = caller(protocol, session, server.url, 15)

            async def client() -> None:
                nonlocal first_ok_after
                while queue:
                    txn = queue.pop()
                    # As an aggregator does: the same pay again after "retry", until answered.
                    for _ in range(200):
                        sent_at = time.monotonic()
                        answer = await kiosk.pay(txn, *plan[txn])
                        after_kill = killed_at is not None and sent_at > killed_at
                        if answer.result == OK:
                            acknowledged[txn] = answer
                            if not after_kill:
                                switch.acknowledged_before += 1
                                break
                            switch.acknowledged_after += 1
                            if promoting_at is None or answer.at < promoting_at:
                                # No server took writes then: a success would be invented.
                                figures.wrong_answers += 1
                            if first_ok_after is None:
                                first_ok_after = answer.at
                            break
                        if after_kill:
                            during["retry" if answer.result == RETRY else f"result {answer.result}"] += 1
                        if answer.result != RETRY:
                            # No answer from a live tolem, or a final code: neither is honest.
                            figures.wrong_answers += 1
                            if answer.result is not None:
                                break
                        if after_kill:
                            switch.retry_answers += 1
                        await asyncio.sleep(0.05)
                    else:
                        pending[txn] = plan[txn]

            async def operator() -> None:
                nonlocal killed_at, promoting_at
                while len(acknowledged) < total // 3:
                    await asyncio.sleep(0.01)
                await asyncio.to_thread(kill_cluster, primary)
                killed_at = time.monotonic()
                await asyncio.sleep(DETECTION_SECONDS)
                promoting_at = time.monotonic()
                await asyncio.to_thread(promote, standby)
                switch.promote_seconds = round(time.monotonic() - promoting_at, 2)

            await asyncio.gather(operator(), *(client() for _ in range(16)))
            await resend_until_answered(kiosk, pending, acknowledged, figures)
            figures.requests = kiosk.sent
        if killed_at is not None and first_ok_after is not None:
            switch.retry_seconds = round(first_ok_after - killed_at, 2)
        switch.same_process = server.process is not None and server.process.pid == first_pid
        if not switch.same_process or server.process.poll() is not None:
            figures.wrong_answers += 1
        figures.notes.append(f"answers to pays sent during the switch: {dict(during)}")
        figures.notes.append(
            f"acknowledged before the kill {switch.acknowledged_before}, after it "
            f"{switch.acknowledged_after}; 'retry' for {switch.retry_seconds} s "
            f"({switch.retry_answers} answers); promotion took {switch.promote_seconds} s; "
            f"{'same' if switch.same_process else 'another'} tolem process throughout"
        )
        # The old primary is gone for good: the verdict is the promoted standby's ledger.
        await settle(figures, standby.dsn(database.name), acknowledged, set(plan))
    finally:
        server.stop()
        remove_cluster(standby, standby_base)
        await database.close()
    return figures, switch


PROOFS: Final = ("pgbouncer", "instances", "failover")


async def run(scale: float, proofs: list[str], protocols: list[str], workers: int) -> list[Figures]:
    """The chosen proofs for each protocol, each on fresh clusters."""
    figures: list[Figures] = []
    for protocol in protocols:
        if "pgbouncer" in proofs:
            figures += await through_pgbouncer(scale, list(PGBOUNCER_SCENARIOS), workers, protocol)
        if "instances" in proofs:
            figures += await two_instances(scale, protocol)
        if "failover" in proofs:
            figures.append((await failover(scale, protocol, workers))[0])
    return figures


def main(argv: list[str] | None = None) -> int:
    """Runs the proofs and exits 1 if any promise was broken."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0, help="size multiplier")
    parser.add_argument("--proof", action="append", choices=PROOFS)
    parser.add_argument("--protocol", action="append", choices=sorted(CALLERS))
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args(argv)
    figures = asyncio.run(
        run(args.scale, args.proof or list(PROOFS), args.protocol or sorted(CALLERS), args.workers)
    )
    report(figures)
    return 0 if all(f.ok for f in figures) else 1


if __name__ == "__main__":
    sys.exit(main())
