"""The billing bridge under chaos: every acknowledged credit applied once by a failing receiver.

`python -m bench.chaos --scenario billing` runs tolem serve against a throwaway cluster and sends
it OSMP pays from concurrent kiosks, a share of them sent twice at once. Each credit's outbox
event is carried by `tolem deliver --lease-seconds 2` processes to a Standard Webhooks receiver
in this process, which verifies every signature, dedupes by webhook-id and applies each event
once. The receiver refuses connections, then answers 503, then flaps (500s, and answers slower
than TOLEM_BILLING_TIMEOUT after applying), then is healthy; meanwhile dispatchers are SIGKILLed
while the receiver is answering them, and restarted. At the end every event must be delivered,
each acknowledged credit applied exactly once, no payment applied twice, and the audit clean.
"""

import argparse
import asyncio
import base64
import json
import os
import random
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from typing import Final

import aiohttp
import asyncpg

from bench.aggregators import OK, RETRY, Answer, caller, txn_ids
from bench.harness import Database, Server, free_port, seed
from bench.verdict import Figures, resend_until_answered, settle
from bench.webhook_receiver import Receiver
from tolem.core.money import parse_amount

LEASE_SECONDS: Final = 2.0
# The sinks' request timeout for the run: short, so that a slow answer is a timeout soon.
BILLING_TIMEOUT: Final = 1.0
RESENT_SHARE: Final = 0.1
REQUEST_DEADLINE: Final = 2.0
CLIENTS: Final = 16


@dataclass(frozen=True)
class Plan:
    """How big and how long: pays, the receiver's bad periods, kills and dispatchers."""

    pays: int = 1500
    down_seconds: float = 4.0  # half refusing connections, half answering 503
    flap_seconds: float = 8.0
    kills: int = 3
    dispatchers: int = 2
    # The bound on waiting for the outbox to empty once the receiver is healthy: an event that
    # failed often waits out a backoff window of up to ten minutes (db/outbox.py), by design.
    drain_seconds: float = 660.0

    @classmethod
    def scaled(cls, scale: float) -> "Plan":
        """The default plan with `scale` times the pays."""
        return cls(pays=max(int(1500 * scale), 100))


@dataclass
class BillingFigures(Figures):
    """The ledger's figures plus what reached the billing; the promises are the zeros below."""

    delivered: int = 0  # outbox events in state delivered
    deliveries_seen: int = 0  # requests the receiver got, repeats included
    ids_seen: int = 0  # event ids the receiver saw at least once
    applied: int = 0  # event ids the receiver applied (once each)
    repeats: int = 0  # deliveries of an id already applied: acknowledged, not applied again
    double_applied: int = 0  # payments applied under more than one event id
    unapplied: int = 0  # acknowledged credits with no applied event of their amount
    bad_signatures: int = 0
    pending_after: int = -1
    lag_after: float = -1.0  # tolem_outbox_lag_seconds scraped at the end
    kills: int = 0
    kills_mid_delivery: int = 0
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """The ledger's zeros, the billing's zeros, an empty outbox and at least two kills."""
        zeros = (self.double_applied, self.unapplied, self.bad_signatures, self.pending_after, self.lag_after)
        return super().ok and not any(zeros) and self.kills >= 2

    def summary(self) -> str:
        """The figures, one per line."""
        rows = [
            ("pays sent (HTTP requests)", self.requests),
            ("acknowledged credits", self.acknowledged),
            ("events delivered", self.delivered),
            ("deliveries seen by receiver", self.deliveries_seen),
            ("ids seen at least once", self.ids_seen),
            ("applied once", self.applied),
            ("repeats of an applied id (acknowledged only)", self.repeats),
            ("double-applied (must be 0)", self.double_applied),
            ("lost: acknowledged, not applied (must be 0)", self.unapplied),
            ("bad signatures (must be 0)", self.bad_signatures),
            ("audit", "clean" if not self.audit_violations else f"{self.audit_violations} violation(s)"),
            ("outbox pending after (must be 0)", self.pending_after),
            ("outbox lag after, s (must be 0)", f"{self.lag_after:g}"),
            ("dispatchers SIGKILLed", f"{self.kills} ({self.kills_mid_delivery} mid-delivery)"),
            ("duration, s", f"{self.seconds:.1f}"),
        ]
        return "\n".join(f"  {name:<46}{value}" for name, value in rows)


def billing_env(dsn: str, url: str, secret: str) -> dict[str, str]:
    """What tolem needs to deliver to the receiver: the webhook sink with a short timeout."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOLEM_")}
    env.update(
        TOLEM_DATABASE_URL=dsn,
        TOLEM_LOG_FORMAT="json",
        TOLEM_BILLING_SINK="webhook",
        TOLEM_BILLING_URL=url,
        TOLEM_BILLING_SECRET=secret,
        TOLEM_BILLING_TIMEOUT=str(BILLING_TIMEOUT),
    )
    return env


class Dispatchers:
    """`tolem deliver --lease-seconds 2` processes, one per receiver slot; killed and restarted."""

    def __init__(self, dsn: str, receiver: Receiver, secret: str, count: int) -> None:
        self.processes = []
        for slot in range(count):
            port = free_port()  # its --metrics-port, answering once the process is up
            argv = [sys.executable, "-m", "tolem", "deliver", "--lease-seconds", f"{LEASE_SECONDS:g}"]
            argv += ["--metrics-port", str(port)]
            self.processes.append(Server(argv, billing_env(dsn, receiver.url(slot), secret), port))

    async def start(self) -> None:
        """Starts every dispatcher and waits until each is up."""
        await asyncio.gather(*(p.start("/metrics") for p in self.processes))

    async def kill_and_restart(self, slot: int) -> None:
        """SIGKILL, then the same command again: the events it held wait out their lease."""
        self.processes[slot].kill()
        await self.processes[slot].start("/metrics")

    def stop(self) -> None:
        """SIGTERM each: the round in flight finishes first."""
        for process in self.processes:
            process.stop()


async def load(
    server: Server, dsn: str, codes: list[str], plan: Plan, figures: BillingFigures
) -> dict[str, int]:
    """OSMP pays from concurrent kiosks, some sent twice at once; returns the acknowledged
    credits (txn to amount in minor units). What got no answer is resent until it does."""
    pays = {
        txn: (random.choice(codes), f"{random.randint(1, 500)}.{random.randint(0, 99):02d}")
        for txn in txn_ids(5, plan.pays)
    }
    sends: list[str] = []
    for txn in pays:  # a repeat right behind its original: two kiosks send it at once
        sends += [txn, txn] if random.random() < RESENT_SHARE else [txn]
    queue: asyncio.Queue[str] = asyncio.Queue()
    for txn in sends:
        queue.put_nowait(txn)
    acknowledged: dict[str, Answer] = {}
    unanswered: dict[str, tuple[str, str]] = {}
    async with aiohttp.ClientSession() as session:
        kiosk = caller("osmp", session, server.url, 10)

        async def client() -> None:
            while not queue.empty():
                txn = queue.get_nowait()
                answer = await kiosk.pay(txn, *pays[txn])
                if answer.result == OK:
                    if acknowledged.setdefault(txn, answer).fingerprint != answer.fingerprint:
                        figures.wrong_answers += 1
                    unanswered.pop(txn, None)
                elif answer.result in (None, RETRY):
                    if txn not in acknowledged:
                        unanswered[txn] = pays[txn]
                else:
                    figures.wrong_answers += 1

        await asyncio.gather(*(client() for _ in range(CLIENTS)))
        await resend_until_answered(kiosk, unanswered, acknowledged, figures)
        figures.requests = kiosk.sent
    figures.notes.append(f"{len(pays)} ids, {len(sends) - len(pays)} sent twice at once")
    await settle(figures, dsn, acknowledged, set(pays))
    return {txn: parse_amount(pays[txn][1]) for txn in acknowledged}


async def weather(receiver: Receiver, plan: Plan, flapping: asyncio.Event, killed: asyncio.Event) -> float:
    """Down (connections refused, then 503), flapping until the kills are done, then healthy
    from the (monotonic) time it returns."""
    await asyncio.sleep(plan.down_seconds / 2)
    receiver.weather = "unavailable"
    await receiver.open()
    await asyncio.sleep(plan.down_seconds / 2)
    receiver.weather = "flapping"
    flapping.set()
    await asyncio.gather(asyncio.sleep(plan.flap_seconds), killed.wait())
    receiver.weather = "healthy"
    return time.monotonic()


async def killer(
    receiver: Receiver,
    dispatchers: Dispatchers,
    plan: Plan,
    flapping: asyncio.Event,
    killed: asyncio.Event,
    figures: BillingFigures,
) -> None:
    """`plan.kills` times over the flap, SIGKILLs the dispatcher whose delivery the receiver has
    just begun to answer slowly (applied, not answered yet), and restarts it meanwhile."""
    await flapping.wait()
    started = time.monotonic()
    restarts = []
    for k in range(1, plan.kills + 1):
        await asyncio.sleep(max(0.0, started + k * plan.flap_seconds / (plan.kills + 1) - time.monotonic()))
        while not receiver.stalling.empty():  # stalls that began earlier may be over by now
            receiver.stalling.get_nowait()
        try:
            slot = await asyncio.wait_for(receiver.stalling.get(), 30)
        except TimeoutError:
            slot = random.randrange(plan.dispatchers)
        if slot in receiver.busy():
            figures.kills_mid_delivery += 1
        restarts.append(asyncio.create_task(dispatchers.kill_and_restart(slot)))
        figures.kills += 1
        await asyncio.sleep(0)  # the kill itself happens now, before the next one is chosen
    killed.set()
    await asyncio.gather(*restarts)


async def outbox_state(dsn: str) -> tuple[Counter[str], int]:
    """Outbox events per state, and the most attempts one event took."""
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT state, count(*) AS n, max(attempts) AS most FROM outbox_events GROUP BY state"
        )
    finally:
        await conn.close()
    return Counter({r["state"]: int(r["n"]) for r in rows}), max((int(r["most"]) for r in rows), default=0)


async def drained(dsn: str, seconds: float) -> bool:
    """Waits until no event is pending, at most `seconds`; whether it got there."""
    deadline = time.monotonic() + seconds
    while (await outbox_state(dsn))[0]["pending"] and time.monotonic() < deadline:
        await asyncio.sleep(0.25)
    return not (await outbox_state(dsn))[0]["pending"]


async def scrape_outbox(server: Server) -> tuple[int, float]:
    """tolem_outbox_pending_events and tolem_outbox_lag_seconds from the server's /metrics."""
    async with aiohttp.ClientSession() as session, session.get(f"{server.url}/metrics") as response:
        text = await response.text()
    values = dict(line.split(" ", 1) for line in text.splitlines() if line.startswith("tolem_outbox_"))
    return int(float(values["tolem_outbox_pending_events"])), float(values["tolem_outbox_lag_seconds"])


def tolem_audit(dsn: str) -> int:
    """`tolem audit --json` as an operator runs it; how many violations it reports."""
    done = subprocess.run(
        [sys.executable, "-m", "tolem", "audit", "--json"],
        env={k: v for k, v in os.environ.items() if not k.startswith("TOLEM_")} | {"TOLEM_DATABASE_URL": dsn},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    found = len(json.loads(done.stdout)["violations"]) if done.stdout.strip() else 0
    return found or (1 if done.returncode else 0)


def compare(figures: BillingFigures, receiver: Receiver, credits: dict[str, int]) -> None:
    """What the receiver applied against the acknowledged credits."""
    figures.deliveries_seen = receiver.deliveries
    figures.ids_seen = len(receiver.seen)
    figures.applied = len(receiver.applied)
    figures.bad_signatures = receiver.bad_signatures
    applied = Counter((d["data"]["provider_txn"], d["type"]) for d in receiver.applied.values())
    figures.double_applied = sum(1 for n in applied.values() if n > 1)
    amounts = {d["data"]["provider_txn"]: d["data"]["amount_minor"] for d in receiver.applied.values()}
    figures.unapplied = sum(1 for txn, amount in credits.items() if amounts.get(txn) != amount)
    figures.repeats = receiver.repeats
    figures.notes.append(f"receiver answers: {dict(sorted(receiver.answers.items()))}")


async def play(
    server: Server, database: Database, codes: list[str], plan: Plan, receiver: Receiver, secret: str
) -> BillingFigures:
    """The scenario against a started server and a receiver not yet listening."""
    figures = BillingFigures("billing osmp")
    dispatchers = Dispatchers(database.dsn, receiver, secret, plan.dispatchers)
    try:
        await dispatchers.start()
        flapping, killed = asyncio.Event(), asyncio.Event()
        started = time.monotonic()
        credits, healthy_at, _ = await asyncio.gather(
            load(server, database.dsn, codes, plan, figures),
            weather(receiver, plan, flapping, killed),
            killer(receiver, dispatchers, plan, flapping, killed, figures),
        )
        if await drained(database.dsn, plan.drain_seconds):
            healed, after = healthy_at - started, time.monotonic() - healthy_at
            figures.notes.append(f"receiver healthy {healed:.1f}s in, outbox empty {after:.1f}s later")
        else:
            figures.notes.append(f"outbox not empty {plan.drain_seconds:g}s after the receiver healed")
    finally:
        dispatchers.stop()
        await receiver.close()
    states, most = await outbox_state(database.dsn)
    figures.delivered = states["delivered"]
    figures.notes.append(f"outbox events by state: {dict(states)}; at most {most} attempts for one")
    figures.pending_after, figures.lag_after = await scrape_outbox(server)
    figures.audit_violations = await asyncio.to_thread(tolem_audit, database.dsn)
    compare(figures, receiver, credits)
    return figures


async def run(plan: Plan, workers: int = 1) -> BillingFigures:
    """The scenario on a throwaway cluster; tolem serve has the same billing settings as the
    dispatchers (it does not deliver itself: TOLEM_DELIVER_IN_SERVE stays off)."""
    started = time.monotonic()
    database = await Database.create()
    secret = "whsec_" + base64.b64encode(os.urandom(32)).decode()
    receiver = Receiver(secret, slow=BILLING_TIMEOUT * 1.5)
    billing = {
        k: v
        for k, v in billing_env(database.dsn, receiver.url(0), secret).items()
        if k.startswith("TOLEM_BILLING_")
    }
    server = Server.tolem(database.dsn, workers=workers, deadline=REQUEST_DEADLINE, **billing)
    try:
        codes = await seed(database.dsn, accounts=max(plan.pays // 4, 10))
        await server.start()
        ready = time.monotonic() - started
        figures = await play(server, database, codes, plan, receiver, secret)
    finally:
        server.stop()
        await database.close()
    figures.seconds = time.monotonic() - started
    figures.notes.append(f"cluster, {len(codes)} accounts and server ready in {ready:.1f}s")
    return figures


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The billing scenario's options (its pays scale with --scale)."""
    group = parser.add_argument_group("billing scenario")
    group.add_argument(
        "--billing-kills",
        type=int,
        default=Plan.kills,
        help="dispatcher SIGKILLs (default 3; a run with fewer than 2 fails)",
    )
    group.add_argument(
        "--billing-dispatchers", type=int, default=Plan.dispatchers, help="tolem deliver processes"
    )
    group.add_argument(
        "--billing-down", type=float, default=Plan.down_seconds, help="seconds the receiver is down"
    )
    group.add_argument("--billing-flap", type=float, default=Plan.flap_seconds, help="seconds it flaps")
    group.add_argument(
        "--billing-drain", type=float, default=Plan.drain_seconds, help="seconds to wait for an empty outbox"
    )


def plan_from(args: argparse.Namespace) -> Plan:
    """The plan the command line asked for."""
    return Plan(
        pays=Plan.scaled(args.scale).pays,
        down_seconds=args.billing_down,
        flap_seconds=args.billing_flap,
        kills=args.billing_kills,
        dispatchers=args.billing_dispatchers,
        drain_seconds=args.billing_drain,
    )
