"""Load on one server: the scenarios, a scenario's wrk script, one wrk run, and the CPU and
memory of the processes involved (the server's, the database's, wrk's own)."""

import json
import os
import random
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from bench.balancer import Fleet
from bench.harness import Database, Server
from bench.protocols import RequestBuilder, lua_string

DRIVER = Path(__file__).with_name("driver.lua")
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
