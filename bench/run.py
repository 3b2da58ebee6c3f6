"""Benchmark: tolem beside a bare aiohttp + asyncpg reference (and optionally paytechuz), one run.

Starts a throwaway PostgreSQL cluster (durable commits), seeds accounts, starts each server in
turn with the same worker count and pool size, drives it with wrk (one thread, a Lua script per
protocol) and prints requests/s, latency percentiles, errors, the CPU split between server,
database and load generator, and tolem's ratio to the reference measured in the same run.

    python -m bench                                   # default: 10 s per measurement
    python -m bench --duration 3 --scenario check     # one scenario, shorter
    python -m bench --prior 1000000                   # also at 1 M stored payments
    python -m bench --peer                            # also paytechuz (own virtualenv)
    python -m bench --pgbouncer                       # also 1 and 2 instances via PgBouncer
    python -m bench --json                            # figures as JSON lines

Figures are printed, never asserted: a benchmark's numbers depend on the machine.
"""

import argparse
import asyncio
import json
import os
import shutil
import sys
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import asyncpg

from bench import peer
from bench.balancer import Fleet
from bench.figures import Figures, measure, median, set_ratio, throughput
from bench.harness import Database, Server
from bench.load import SCENARIOS
from bench.pgbouncer import PgBouncer
from bench.protocols import payme
from bench.targets import (
    PAYME_PROVIDER,
    PRIOR_SCENARIOS,
    Target,
    gateway_targets,
    load_prior_payments,
    pooled_targets,
    prior_label,
    seeded_servers,
)
from tolem.db.audit import audit


@dataclass
class Options:
    """What one run does."""

    seconds: float = 10.0
    connections: int = 64
    workers: int = 1
    pool: int = 8
    accounts: int = 5000
    prior: int = 0
    scenarios: list[str] = field(default_factory=lambda: list(SCENARIOS))
    repeat: int = 1
    with_peer: bool = False
    protocols: list[str] = field(default_factory=list)
    server_dsn: str | None = None
    pgbouncer: bool = False
    emit: Callable[[Figures], None] = lambda _f: None


@dataclass
class Report:
    """A run's figures and what `tolem audit` found in the ledger afterwards."""

    figures: list[Figures]
    audit_violations: list[str]


async def run(options: Options) -> Report:
    """Every chosen scenario for tolem and the bare reference, back to back, in one cluster.

    With `prior`, a second database in the same cluster holds that many stored payments and has
    its own tolem and bare server; check and pay are measured against both databases in the
    same interleaved rounds, so that the "flat at N stored" comparison is a same-run one too.
    """
    results: list[Figures] = []
    violations: list[str] = []

    def record(figures: Figures) -> Figures:
        results.append(figures)
        options.emit(figures)
        return figures

    database = await Database.create(options.server_dsn)
    databases = [database]
    servers: list[Server | Fleet] = []
    bouncer: PgBouncer | None = None
    try:
        codes, tolem_server, bare_server = await seeded_servers(
            database.dsn, accounts=options.accounts, workers=options.workers, pool=options.pool
        )
        servers += [tolem_server, bare_server]
        targets = gateway_targets(tolem_server, bare_server, codes, "", database.dsn)
        if options.pgbouncer:
            bouncer, pooled = pooled_targets(database, codes, workers=options.workers, pool=options.pool)
            bouncer.start()
            targets += pooled
            servers += [t.server for t in pooled]
        if options.prior and any(name in PRIOR_SCENARIOS for name in options.scenarios):
            # Same cluster, a database of its own: the first one stays (nearly) empty.
            prior = await Database.create(database.server_dsn)
            databases.insert(0, prior)
            prior_codes, prior_tolem, prior_bare = await seeded_servers(
                prior.dsn, accounts=options.accounts, workers=options.workers, pool=options.pool
            )
            await load_prior_payments(prior.dsn, PAYME_PROVIDER, options.prior)
            servers += [prior_tolem, prior_bare]
            targets += gateway_targets(
                prior_tolem, prior_bare, prior_codes, prior_label(options.prior), prior.dsn
            )
        for server in servers:
            await server.start()
        empty: dict[tuple[str, str], Figures] = {}
        for name in options.scenarios:
            scenario = SCENARIOS[name]
            chosen = [t for t in targets if t.runs(name, options.protocols)]
            # Interleaved repeats: a burst of load elsewhere on a shared machine hits all.
            runs: dict[tuple[str, str], list[Figures]] = {(t.group, t.name): [] for t in chosen}
            for _ in range(options.repeat):
                for target in chosen:
                    runs[(target.group, target.name)].append(
                        await measure(
                            target,
                            scenario,
                            seconds=options.seconds,
                            connections=options.connections,
                            database=database,
                        )
                    )
            medians = {key: median(figures, options.repeat) for key, figures in runs.items()}
            for target in chosen:
                mine = medians[(target.group, target.name)]
                if (reference := medians.get((target.group, target.reference))) is not None:
                    set_ratio(mine, reference)
                other = medians.get((target.group, target.versus))
                if other is not None and throughput(other) > 0:
                    mine.notes.append(f"{throughput(mine) / throughput(other):.2f}x {other.target}")
                mine.scenario = name + target.group
                if not target.group:
                    empty[(name, target.name)] = mine
                elif (same := empty.get((name, target.name))) is not None and throughput(same) > 0:
                    flat = throughput(mine) / throughput(same)
                    mine.notes.append(f"{flat:.2f}x the empty-database figure (same rounds)")
            # Empty-database rows first, as the table has always shown them.
            for target in sorted(chosen, key=lambda t: bool(t.group)):
                record(medians[(target.group, target.name)])
        if options.with_peer and "pay" in options.scenarios:
            record(await peer_pay(options, database, empty.get(("pay", "tolem payme pair"))))
        for server in servers:
            server.stop()
        # Speed means nothing if money went wrong: each ledger is checked after the load.
        for checked in databases:
            conn = await asyncpg.connect(checked.dsn)
            try:
                violations += [f"{v.check}: {v.detail}" for v in await audit(conn)]
            finally:
                await conn.close()
    finally:
        for server in servers:
            server.stop()
        if bouncer is not None:
            bouncer.stop()
        # The prior database first: closing the run's own database stops its cluster.
        for opened in databases:
            await opened.close()
    return Report(results, violations)


async def peer_pay(options: Options, database: Database, tolem_pay: Figures | None) -> Figures:
    """paytechuz's Payme create + perform on the same cluster, same workers and pool."""
    python = await asyncio.to_thread(peer.ensure_venv)
    dsn = await peer.create_database(database.server_dsn, f"peer_{uuid.uuid4().hex[:10]}")
    await asyncio.to_thread(peer.setup, python, dsn, options.accounts, options.pool)
    server = peer.server(
        python, dsn, workers=options.workers, pool=options.pool, overflow=options.connections
    )
    await server.start()
    try:
        builder = payme(peer.PATH, login="Paycom", password=peer.KEY, account_field="id")
        codes = [str(n) for n in range(1, options.accounts + 1)]
        target = Target(f"paytechuz {peer.PEER_VERSION}", server, builder, codes, dsn=dsn)
        figures = await measure(
            target,
            SCENARIOS["pay"],
            seconds=options.seconds,
            connections=options.connections,
            database=database,
        )
    finally:
        server.stop()
    if tolem_pay is not None and throughput(figures) > 0:
        tolem_pay.notes.append(f"{throughput(tolem_pay) / throughput(figures):.1f}x paytechuz")
    return figures


# --- output -------------------------------------------------------------------------------------

COLUMNS = (
    ("scenario", 10, "scenario"),
    ("target", 22, "target"),
    ("req/s", 8, "rps"),
    ("pay/s", 7, "payments_per_s"),
    ("p50ms", 6, "p50_ms"),
    ("p90ms", 6, "p90_ms"),
    ("p99ms", 6, "p99_ms"),
    ("errors", 6, "errors"),
    ("cpu srv", 7, "cpu_server"),
    ("cpu db", 6, "cpu_db"),
    ("cpu wrk", 7, "cpu_wrk"),
    ("rss MB", 6, "rss_mb"),
    ("stored", 8, "stored_payments"),
    ("ratio", 5, "ratio"),
)


def _cell(value: object, width: int) -> str:
    if value is None:
        return "-".rjust(width)
    if isinstance(value, float):
        return f"{value:.1f}".rjust(width) if width > 5 else f"{value:.2f}".rjust(width)
    return str(value).rjust(width) if not isinstance(value, str) else value.ljust(width)


def table_line(figures: Figures) -> str:
    """One row of the table."""
    return " ".join(_cell(getattr(figures, attr), width) for _, width, attr in COLUMNS)


def header() -> str:
    """The table's header."""
    return " ".join(
        title.ljust(width) if i < 2 else title.rjust(width) for i, (title, width, _) in enumerate(COLUMNS)
    )


def machine() -> str:
    """What the figures were measured on."""
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        "unknown cpu",
    )
    return f"{os.cpu_count()} cores ({cpu}), {datetime.now(UTC):%Y-%m-%d %H:%M} UTC"


def main(argv: list[str] | None = None) -> int:
    """Parses options, runs, prints."""
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per measurement")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--pool", type=int, default=8, help="database connections per worker")
    parser.add_argument("--accounts", type=int, default=5000)
    parser.add_argument("--prior", type=int, default=0, help="also measure after storing N payments")
    parser.add_argument("--scenario", action="append", choices=sorted(SCENARIOS))
    parser.add_argument(
        "--repeat", type=int, default=1, help="interleaved runs per target; the median is shown"
    )
    parser.add_argument(
        "--protocol", action="append", choices=("osmp", "payme"), help="only these protocols' targets"
    )
    parser.add_argument("--peer", action="store_true", help=f"also paytechuz {peer.PEER_VERSION}")
    parser.add_argument("--dsn", help="use this PostgreSQL server (superuser DSN) instead of a new cluster")
    parser.add_argument(
        "--pgbouncer",
        action="store_true",
        help="also tolem through PgBouncer: one instance, and two behind HAProxy (OSMP check and pay)",
    )
    parser.add_argument("--json", action="store_true", help="one JSON object per measurement")
    args = parser.parse_args(argv)
    if shutil.which("wrk") is None:
        print("wrk is not installed (Debian: apt-get install wrk)", file=sys.stderr)
        return 2

    def emit(figures: Figures) -> None:
        if args.json:
            print(json.dumps(asdict(figures)), flush=True)
        else:
            print(table_line(figures), flush=True)

    if not args.json:
        print(f"# {machine()}; workers {args.workers}, pool {args.pool}, {args.connections} connections")
        print(header(), flush=True)
    report = asyncio.run(
        run(
            Options(
                seconds=args.duration,
                connections=args.connections,
                workers=args.workers,
                pool=args.pool,
                accounts=args.accounts,
                prior=args.prior,
                scenarios=args.scenario or list(SCENARIOS),
                repeat=max(args.repeat, 1),
                with_peer=args.peer,
                protocols=args.protocol or [],
                server_dsn=args.dsn,
                pgbouncer=args.pgbouncer,
                emit=emit,
            )
        )
    )
    if args.json:
        print(json.dumps({"audit_violations": report.audit_violations}))
    else:
        print(f"ledger audit after the run: {len(report.audit_violations)} violation(s)")
        for violation in report.audit_violations[:10]:
            print(f"  {violation}")
        for figures in report.figures:
            for note in figures.notes:
                print(f"  {figures.scenario} / {figures.target}: {note}")
            if figures.error_sample:
                print(f"  {figures.scenario} / {figures.target}: first error: {figures.error_sample}")
    return 1 if report.audit_violations else 0


if __name__ == "__main__":
    sys.exit(main())
