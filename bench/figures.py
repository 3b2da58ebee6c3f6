"""One measurement of one target under one scenario, and what is made of several: the median of
repeated runs, and the ratio to a reference measured in the same run."""

import asyncio
import uuid
from dataclasses import dataclass, field

import asyncpg

from bench.harness import Database
from bench.load import Scenario, database_pids, rss_mb, run_wrk, worker_pids, wrk_script
from bench.targets import Target


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


async def settle_database(dsn: str) -> int:
    """Between measurements: flush dirty pages and refresh statistics; returns stored payments."""
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("CHECKPOINT")
        await conn.execute("VACUUM ANALYZE")
        return int(await conn.fetchval("SELECT count(*) FROM payments"))
    finally:
        await conn.close()


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
