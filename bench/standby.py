"""A streaming standby with synchronous commit, and what a failover does to the clusters: kill
the primary, promote the standby, remove both afterwards (see bench/topology.py)."""

import asyncio
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Final

import asyncpg

from bench.topology import SERVICE_USER, private_dir, run_as
from tolem.db.embedded import Cluster, ensure_cluster, find_bin_dir, stop_cluster

STANDBY_NAME: Final = "standby1"


def _pg(command: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    bin_dir = find_bin_dir()
    assert bin_dir is not None
    return subprocess.run(
        [str(bin_dir / command), *args],
        user=run_as(),
        capture_output=True,
        text=True,
        check=True,
        timeout=timeout,
    )


async def start_standby(primary: Cluster, options: Sequence[str]) -> tuple[Cluster, Path]:
    """A streaming standby of `primary` (pg_basebackup -R), then makes it synchronous.

    The primary waits for the standby to flush every commit's WAL before the commit returns
    (`synchronous_standby_names`, with synchronous_commit at its default `on`), so a pay tolem
    acknowledged is on the standby's disk too. Returns the standby and its base directory.
    """
    base = private_dir("tolem-standby-")
    data_dir = base / "pgdata"
    await asyncio.to_thread(
        _pg,
        "pg_basebackup",
        "-h",
        "127.0.0.1",
        "-p",
        str(primary.port),
        "-U",
        SERVICE_USER,
        "-D",
        str(data_dir),
        "-X",
        "stream",
        "-c",
        "fast",
        "-R",
    )
    # The walreceiver reports cluster_name as its application_name, which names it as sync.
    standby = await asyncio.to_thread(
        ensure_cluster,
        base,
        options=(*options, "-c", f"cluster_name={STANDBY_NAME}"),
        create_database=False,
    )
    conn = await asyncpg.connect(primary.dsn("postgres"))
    try:
        await conn.execute(f"ALTER SYSTEM SET synchronous_standby_names = '{STANDBY_NAME}'")
        await conn.execute("SELECT pg_reload_conf()")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            state = await conn.fetchval(
                "SELECT sync_state FROM pg_stat_replication WHERE application_name = $1", STANDBY_NAME
            )
            if state == "sync":
                return standby, base
            await asyncio.sleep(0.1)
    finally:
        await conn.close()
    raise RuntimeError("the standby did not become synchronous in 30 s")


def kill_cluster(cluster: Cluster) -> None:
    """SIGKILL to the postmaster and every backend: a crash, no shutdown checkpoint, nothing
    flushed, no goodbye to clients beyond the kernel closing their sockets."""
    pid = int((cluster.data_dir / "postmaster.pid").read_text().split()[0])
    # pg_ctl starts the postmaster in a session of its own: its group is the whole server.
    os.killpg(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.02)


def promote(cluster: Cluster) -> None:
    """Ends recovery on a standby: it becomes a primary accepting writes (pg_ctl promote -w)."""
    _pg("pg_ctl", "-D", str(cluster.data_dir), "-w", "-t", "60", "promote")


def remove_cluster(cluster: Cluster, base: Path) -> None:
    """Stops a cluster started here and removes its files."""
    stop_cluster(cluster.data_dir, mode="immediate")
    shutil.rmtree(base, ignore_errors=True)
