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
import random
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Final
from urllib.parse import urlsplit

import asyncpg

from bench import peer
from bench.balancer import Balancer, Fleet
from bench.harness import Database, Server, free_port, seed
from bench.pgbouncer import PgBouncer
from bench.protocols import RequestBuilder, bare, lua_string, osmp, payme
from tolem.db.audit import audit

DRIVER = Path(__file__).with_name("driver.lua")
PAYME_PROVIDER = "bench-payme"
OSMP_PROVIDER = "bench-osmp"
BARE_PROVIDER = "bench-bare"
PAYME_LOGIN = "Paycom"
PASSWORD = "bench-key"  # noqa: S105 - a throwaway provider's key
TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Scenario:
    """What the load looks like."""

    name: str
    mode: str  # "check" or "pay"
    hot: bool = False
    retry_share: float = 0.0
    description: str = ""


SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario("check", "check", description="check of a random code"),
        Scenario("pay", "pay", description="pay with unique ids"),
        Scenario("retry", "pay", retry_share=0.1, description="pay, 10 % resends of earlier ids"),
        Scenario("hot", "pay", hot=True, description="every pay to one account"),
    )
}


@dataclass
class Figures:
    """One measurement of one server under one scenario."""

    scenario: str
    target: str
    requests: int = 0
    seconds: float = 0.0
    rps: float = 0.0
    payments_per_s: float = 0.0
    p50_ms: float = 0.0
    p90_ms: float = 0.0
    p99_ms: float = 0.0
    errors: int = 0
    cpu_server: float = 0.0
    cpu_db: float = 0.0
    cpu_wrk: float = 0.0
    rss_mb: float = 0.0
    stored_payments: int = 0
    ratio: float | None = None
    ratio_to: str = ""
    error_sample: str = ""
    notes: list[str] = field(default_factory=list)


# --- processes ----------------------------------------------------------------------------------


def cpu_ticks(pids: list[int]) -> dict[int, int]:
    """utime + stime of each pid still alive."""
    ticks = {}
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ticks[pid] = int(fields[11]) + int(fields[12])
    return ticks


def children(pid: int) -> list[int]:
    """Direct children of a process."""
    out = subprocess.run(
        ["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True, check=False
    ).stdout
    return [int(p) for p in out.split()]


async def database_pids(database: Database, dsn: str) -> list[int]:
    """The PostgreSQL processes whose CPU counts as the database's: the whole cluster when it is
    ours, else the backends connected to the run's database (the machine may run others)."""
    if database.cluster is not None:
        head = (database.cluster.data_dir / "postmaster.pid").read_text().split()
        postmaster = int(head[0])
        return [postmaster, *children(postmaster)]
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        return [int(r["pid"]) for r in rows]
    finally:
        await conn.close()


def rss_mb(pid: int) -> float:
    """Resident memory of one process."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def worker_pids(server: Server | Fleet) -> list[int]:
    """The processes serving requests: the children when there are any, else the process."""
    if isinstance(server, Fleet):
        return server.pids()
    pids = server.pids()
    return pids[1:] if len(pids) > 1 else pids


def cores_used(before: dict[int, int], after: dict[int, int], seconds: float) -> float:
    """CPU time used between two samples, in cores."""
    used = sum(after[pid] - before.get(pid, 0) for pid in after)
    return used / TICKS / seconds if seconds > 0 else 0.0


# --- load ---------------------------------------------------------------------------------------


def wrk_script(builder: RequestBuilder, scenario: Scenario, codes: list[str], prefix: str) -> str:
    """The run's settings, the protocol's builder and the shared driver, as one Lua file."""
    # Nine random digits, first non-zero, per measurement: one run's ids are not another's.
    digits = str(random.randrange(100_000_000, 1_000_000_000))
    settings = "\n".join(
        [
            f"DIGITS = {lua_string(digits)}",
            f"MODE = {lua_string(scenario.mode)}",
            f"HOT = {'true' if scenario.hot else 'false'}",
            f"RETRY_SHARE = {scenario.retry_share}",
            f"TWO_PHASE = {'true' if builder.two_phase else 'false'}",
            f"PREFIX = {lua_string(prefix)}",
            "CODES = {" + ",".join(lua_string(c) for c in codes) + "}",
        ]
    )
    return f"{settings}\n{builder.lua}\n{DRIVER.read_text()}"


def run_wrk(
    url: str,
    script: str,
    *,
    seconds: float,
    connections: int,
    server_pids: Callable[[], list[int]],
    db_pids: list[int],
) -> tuple[dict[str, int], str, float, float, float]:
    """One wrk run; returns its figures, an error sample and the cores used by server, db, wrk."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as handle:
        handle.write(script)
    argv = [
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{max(round(seconds), 1)}s",
        "--timeout",
        "10s",
        "-s",
        handle.name,
        url,
    ]
    before_server, before_db = cpu_ticks(server_pids()), cpu_ticks(db_pids)
    started = time.monotonic()
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wrk_ticks = {process.pid: 0}
    after_server, after_db = before_server, before_db
    while process.poll() is None:
        # Sampled while alive: a reaped process's counters are gone.
        wrk_ticks.update(cpu_ticks([process.pid]))
        after_server, after_db = cpu_ticks(server_pids()), cpu_ticks(db_pids)
        time.sleep(0.1)
    out, err = process.communicate()
    elapsed = time.monotonic() - started
    Path(handle.name).unlink(missing_ok=True)
    result = next((line for line in out.splitlines() if line.startswith("BENCH_RESULT ")), None)
    if result is None:
        raise RuntimeError(f"wrk gave no result: {err.strip() or out.strip()}")
    sample = next((line[12:] for line in out.splitlines() if line.startswith("BENCH_ERROR ")), "")
    figures = json.loads(result.removeprefix("BENCH_RESULT "))
    return (
        figures,
        sample,
        cores_used(before_server, after_server, elapsed),
        cores_used(before_db, after_db, elapsed),
        wrk_ticks[process.pid] / TICKS / elapsed,
    )


# --- data ---------------------------------------------------------------------------------------


async def load_prior_payments(dsn: str, provider: str, count: int) -> None:
    """`count` credited payments with their transfers and balances, as years of history."""
    conn = await asyncpg.connect(dsn)
    try:
        async with conn.transaction():
            await conn.execute(
                """
                INSERT INTO payments (provider_id, external_id, payer_id, account_id, amount_minor,
                                      currency, state, provider_time, created_at, credited_at)
                SELECT pr.id, 'prior-' || g, py.ids[1 + g % py.n], py.accounts[1 + g % py.n],
                       10000, pr.currency, 'credited', t, t, t
                  FROM providers pr,
                       (SELECT array_agg(id ORDER BY id) AS ids,
                               array_agg(account_id ORDER BY id) AS accounts, count(*)::int AS n
                          FROM payers) py,
                       generate_series(1, $2) g,
                       LATERAL (SELECT now() - g * interval '1 minute' AS t) tt
                 WHERE pr.name = $1
                """,
                provider,
                count,
            )
            await conn.execute(
                """
                INSERT INTO transfers (debit_ledger_account_id, credit_ledger_account_id,
                                       amount_minor, currency, code, payment_id, created_at)
                SELECT pr.clearing_ledger_account_id, a.ledger_account_id, p.amount_minor,
                       p.currency, 'topup', p.id, p.created_at
                  FROM payments p JOIN accounts a ON a.id = p.account_id
                  JOIN providers pr ON pr.id = p.provider_id
                 WHERE p.external_id LIKE 'prior-%'
                """
            )
            await conn.execute(
                """
                UPDATE ledger_accounts l SET balance_minor = balance_minor + s.total
                  FROM (SELECT t.credit_ledger_account_id AS id, sum(t.amount_minor) AS total
                          FROM transfers t JOIN payments p ON p.id = t.payment_id
                         WHERE p.external_id LIKE 'prior-%' GROUP BY 1) s
                 WHERE l.id = s.id AND l.kind = 'customer'
                """
            )
        await conn.execute("VACUUM ANALYZE")
    finally:
        await conn.close()


async def settle_database(dsn: str) -> int:
    """Between measurements: flush dirty pages and refresh statistics; returns stored payments."""
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("CHECKPOINT")
        await conn.execute("VACUUM ANALYZE")
        return int(await conn.fetchval("SELECT count(*) FROM payments"))
    finally:
        await conn.close()


async def provider_id(dsn: str, name: str) -> int:
    """A provider's id by name."""
    conn = await asyncpg.connect(dsn)
    try:
        return int(await conn.fetchval("SELECT id FROM providers WHERE name = $1", name))
    finally:
        await conn.close()


# --- the run ------------------------------------------------------------------------------------


@dataclass
class Target:
    """A server under test, how to talk to it, and the account keys it knows."""

    name: str
    server: Server | Fleet
    builder: RequestBuilder
    codes: list[str]
    url_path: str = "/"
    check_name: str = ""
    # The target whose throughput this one is divided by (its name), if any.
    reference: str = ""
    # The scenarios it takes part in; None for all.
    scenarios: frozenset[str] | None = None
    protocol: str = ""
    # Which database it serves: "" for the run's (nearly empty) one, else the label of the one
    # holding the prior payments ("@1M"), and that database's DSN.
    group: str = ""
    dsn: str = ""
    # Another target (its name) whose throughput this one's is given against in a note.
    versus: str = ""

    def runs(self, scenario: str, protocols: list[str]) -> bool:
        """Whether this target is measured in a scenario."""
        wanted = not protocols or self.protocol in protocols
        in_group = not self.group or scenario in PRIOR_SCENARIOS
        return wanted and in_group and (self.scenarios is None or scenario in self.scenarios)

    def label(self, scenario: "Scenario") -> str:
        """The name shown for this target in a scenario."""
        return self.check_name if scenario.mode == "check" and self.check_name else self.name


# What is measured again against the database holding --prior payments.
PRIOR_SCENARIOS: Final = ("check", "pay")


async def measure(
    target: Target,
    scenario: Scenario,
    *,
    seconds: float,
    connections: int,
    database: Database,
) -> Figures:
    """Warm-up, settle the target's database, then one measured wrk run."""
    dsn = target.dsn or database.dsn
    stored = await settle_database(dsn)
    prefix = f"{scenario.name}-{uuid.uuid4().hex[:8]}-"
    url = target.server.url + target.url_path
    script = wrk_script(target.builder, scenario, target.codes, prefix + "w")
    await asyncio.to_thread(
        run_wrk,
        url,
        script,
        seconds=max(seconds / 5, 1),
        connections=connections,
        server_pids=lambda: worker_pids(target.server),
        db_pids=[],
    )
    script = wrk_script(target.builder, scenario, target.codes, prefix)
    raw, sample, cpu_server, cpu_db, cpu_wrk = await asyncio.to_thread(
        run_wrk,
        url,
        script,
        seconds=seconds,
        connections=connections,
        server_pids=lambda: worker_pids(target.server),
        db_pids=await database_pids(database, dsn),
    )
    elapsed = raw["duration_us"] / 1e6
    errors = raw["failed"] + raw["socket_errors"] + raw["status_errors"] + raw["timeouts"]
    return Figures(
        scenario=scenario.name,
        target=target.label(scenario),
        requests=raw["requests"],
        seconds=round(elapsed, 2),
        rps=round(raw["requests"] / elapsed, 1),
        payments_per_s=round(raw["committed"] / elapsed, 1) if scenario.mode == "pay" else 0.0,
        p50_ms=raw["p50_us"] / 1000,
        p90_ms=raw["p90_us"] / 1000,
        p99_ms=raw["p99_us"] / 1000,
        errors=errors,
        cpu_server=round(cpu_server, 2),
        cpu_db=round(cpu_db, 2),
        cpu_wrk=round(cpu_wrk, 2),
        rss_mb=round(max((rss_mb(p) for p in worker_pids(target.server)), default=0.0), 1),
        stored_payments=stored,
        error_sample=sample,
    )


def median(runs: list[Figures], repeat: int) -> Figures:
    """The run with the median throughput (the middle one; of two, the lower)."""
    ordered = sorted(runs, key=throughput)
    chosen = ordered[(len(ordered) - 1) // 2]
    if repeat > 1:
        chosen.notes.append(
            f"median of {repeat}: " + " / ".join(f"{throughput(f):.0f}" for f in runs) + " per s"
        )
    return chosen


def throughput(figures: Figures) -> float:
    """What a ratio compares: payments per second for pays, answers per second for checks."""
    return figures.payments_per_s if figures.payments_per_s else figures.rps


def set_ratio(figures: Figures, reference: Figures) -> None:
    """figures / reference, on throughput."""
    if throughput(reference) > 0:
        figures.ratio = round(throughput(figures) / throughput(reference), 2)
        figures.ratio_to = reference.target


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


async def _servers(options: Options, dsn: str) -> tuple[list[str], Server, Server]:
    """Seeds a migrated database; returns its codes, and tolem and the bare server for it."""
    codes = await seed(
        dsn,
        accounts=options.accounts,
        providers=((PAYME_PROVIDER, "payme"), (OSMP_PROVIDER, "osmp"), (BARE_PROVIDER, "osmp")),
        password=PASSWORD,
        # OSMP deployments put Basic credentials on top of the allow-list; so does the run.
        password_protocols=("payme", "osmp"),
    )
    bare_id = await provider_id(dsn, BARE_PROVIDER)
    tolem_server = Server.tolem(dsn, workers=options.workers, TOLEM_POOL_SIZE=str(options.pool))
    bare_port = free_port()
    bare_server = Server(
        [
            sys.executable,
            "-m",
            "bench.bare",
            "--dsn",
            dsn,
            "--port",
            str(bare_port),
            "--workers",
            str(options.workers),
            "--pool",
            str(options.pool),
            "--provider-id",
            str(bare_id),
        ],
        dict(os.environ),
        bare_port,
    )
    return codes, tolem_server, bare_server


def _targets(
    tolem_server: Server, bare_server: Server, codes: list[str], group: str, dsn: str
) -> list[Target]:
    """What is measured against one database: tolem's two gateways and their references."""
    payme_builder = payme(f"/gw/{PAYME_PROVIDER}", login=PAYME_LOGIN, password=PASSWORD)
    payme_scenarios = frozenset({"check", "pay"})
    return [
        Target(
            "bare osmp pay",
            bare_server,
            osmp("/osmp"),
            codes,
            check_name="bare osmp check",
            protocol="osmp",
            group=group,
            dsn=dsn,
        ),
        Target(
            "tolem osmp pay",
            tolem_server,
            osmp(f"/gw/{OSMP_PROVIDER}", login="osmp", password=PASSWORD),
            codes,
            check_name="tolem osmp check",
            reference="bare osmp pay",
            protocol="osmp",
            group=group,
            dsn=dsn,
        ),
        Target(
            "bare reserve+perform",
            bare_server,
            bare(two_phase=True),
            codes,
            check_name="bare check",
            scenarios=payme_scenarios,
            protocol="payme",
            group=group,
            dsn=dsn,
        ),
        Target(
            "tolem payme pair",
            tolem_server,
            payme_builder,
            codes,
            check_name="tolem payme check",
            reference="bare reserve+perform",
            scenarios=payme_scenarios,
            protocol="payme",
            group=group,
            dsn=dsn,
        ),
    ]


# What is measured through PgBouncer: OSMP check and pay, with one and with two instances.
POOLED_SCENARIOS: Final = frozenset({"check", "pay"})


def _pooled(options: Options, database: Database, codes: list[str]) -> tuple[PgBouncer, list[Target]]:
    """PgBouncer in front of the run's server, and tolem through it: one instance, and two
    behind HAProxy. PgBouncer's pool is the size of one instance's, so PostgreSQL sees as many
    connections as from the bare server, however many instances there are."""
    upstream = urlsplit(database.dsn)
    bouncer = PgBouncer(
        upstream.port or 5432,
        upstream_host=upstream.hostname or "127.0.0.1",
        user=upstream.username or "postgres",
        pool_size=options.pool,
        # The benchmark's deadline is tolem's default (5 s); these sit below it as tolem's own.
        statement_timeout_ms=4000,
    )

    def instance() -> Server:
        return Server.tolem(
            bouncer.dsn(database.name),
            workers=options.workers,
            TOLEM_POOL_SIZE=str(options.pool),
            TOLEM_DATABASE_POOLER="pgbouncer",
            TOLEM_TRUSTED_PROXIES="127.0.0.1/32",
        )

    pair = [instance(), instance()]
    fleets = {
        "pgb tolem": (Fleet([instance()], bouncer), "tolem osmp pay"),
        "pgb x2 tolem": (Fleet(pair, bouncer, Balancer([s.port for s in pair])), "pgb tolem osmp pay"),
    }
    targets = [
        Target(
            f"{label} osmp pay",
            fleet,
            osmp(f"/gw/{OSMP_PROVIDER}", login="osmp", password=PASSWORD),
            codes,
            check_name=f"{label} osmp check",
            reference="bare osmp pay",
            scenarios=POOLED_SCENARIOS,
            protocol="osmp",
            dsn=database.dsn,
            versus=versus,
        )
        for label, (fleet, versus) in fleets.items()
    ]
    return bouncer, targets


def prior_label(count: int) -> str:
    """How rows measured against the database with `count` prior payments are labelled."""
    return f"@{count // 1_000_000}M" if count >= 1_000_000 else f"@{count}"


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
        codes, tolem_server, bare_server = await _servers(options, database.dsn)
        servers += [tolem_server, bare_server]
        targets = _targets(tolem_server, bare_server, codes, "", database.dsn)
        if options.pgbouncer:
            bouncer, pooled = _pooled(options, database, codes)
            bouncer.start()
            targets += pooled
            servers += [t.server for t in pooled]
        if options.prior and any(name in PRIOR_SCENARIOS for name in options.scenarios):
            # Same cluster, a database of its own: the first one stays (nearly) empty.
            prior = await Database.create(database.server_dsn)
            databases.insert(0, prior)
            prior_codes, prior_tolem, prior_bare = await _servers(options, prior.dsn)
            await load_prior_payments(prior.dsn, PAYME_PROVIDER, options.prior)
            servers += [prior_tolem, prior_bare]
            targets += _targets(prior_tolem, prior_bare, prior_codes, prior_label(options.prior), prior.dsn)
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
