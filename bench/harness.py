"""Shared plumbing for the chaos runs and benchmarks: a throwaway cluster, a seeded database,
and tolem (or any server) as a real subprocess on a free loopback port."""

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import asyncpg

from tolem.db import accounts as account_db
from tolem.db import providers as provider_db
from tolem.db.embedded import Cluster, ensure_cluster, find_bin_dir, stop_cluster
from tolem.db.migrate import migrate
from tolem.protocols.passwords import hash_password

# Durable commits, as production runs: the figures must mean something for a payment system.
CLUSTER_OPTIONS = ("-c", "max_connections=200", "-c", "shared_buffers=256MB")


def free_port() -> int:
    """An unused loopback TCP port."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Database:
    """A throwaway cluster (or a given server) with one fresh tolem database on it."""

    dsn: str
    cluster: Cluster | None
    base_dir: Path | None
    name: str

    @classmethod
    async def create(
        cls, server_dsn: str | None = None, options: Sequence[str] = CLUSTER_OPTIONS
    ) -> "Database":
        """Starts a cluster unless `server_dsn` is given, then creates and migrates a database."""
        cluster = base = None
        if server_dsn is None:
            base = Path(tempfile.mkdtemp(prefix="tolem-bench-"))
            os.chmod(base, 0o755)  # noqa: S103 - the postgres user must enter its data dir
            cluster = ensure_cluster(base, options=tuple(options), create_database=False)
            server_dsn = cluster.dsn("postgres")
        name = f"tolem_run_{uuid.uuid4().hex[:10]}"
        admin = await asyncpg.connect(server_dsn)
        try:
            await admin.execute(f'CREATE DATABASE "{name}"')
        finally:
            await admin.close()
        dsn = f"{server_dsn.rpartition('/')[0]}/{name}"
        conn = await asyncpg.connect(dsn)
        try:
            await migrate(conn)
        finally:
            await conn.close()
        return cls(dsn=dsn, cluster=cluster, base_dir=base, name=name)

    @property
    def server_dsn(self) -> str:
        """The same server's maintenance database, for creating and dropping others."""
        return self.dsn.rpartition("/")[0] + "/postgres"

    def stop_server(self, mode: str = "fast") -> None:
        """Stops PostgreSQL itself (outage drills); only for our own cluster."""
        assert self.cluster is not None, "outage drills need a throwaway cluster"
        stop_cluster(self.cluster.data_dir, mode=mode)

    def start_server(self) -> None:
        """Starts our cluster again on the same port."""
        assert self.cluster is not None
        assert self.base_dir is not None
        bin_dir = find_bin_dir()
        assert bin_dir is not None
        options = " ".join(
            [
                "-p",
                str(self.cluster.port),
                "-c",
                "listen_addresses=127.0.0.1",
                "-k",
                str(self.cluster.data_dir),
                *CLUSTER_OPTIONS,
            ]
        )
        user = "postgres" if os.geteuid() == 0 else None
        subprocess.run(
            [
                str(bin_dir / "pg_ctl"),
                "-D",
                str(self.cluster.data_dir),
                "-l",
                str(self.cluster.log_file),
                "-w",
                "-o",
                options,
                "start",
            ],
            user=user,
            check=True,
            capture_output=True,
            timeout=60,
        )

    async def close(self) -> None:
        """Drops everything this run created."""
        if self.cluster is not None:
            stop_cluster(self.cluster.data_dir, mode="immediate")
            if self.base_dir is not None:
                shutil.rmtree(self.base_dir, ignore_errors=True)
            return
        admin = await asyncpg.connect(self.server_dsn)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
        finally:
            await admin.close()


async def seed(
    dsn: str,
    *,
    accounts: int,
    providers: Sequence[tuple[str, str]] = (("kiosk", "osmp"),),
    password: str = "bench-key",
    secret: str = "bench-secret",
    password_protocols: Sequence[str] = ("payme",),
) -> list[str]:
    """Creates providers (loopback allow-list; a Basic password for `password_protocols`) and
    `accounts` accounts; returns their codes."""
    conn = await asyncpg.connect(dsn)
    try:
        for name, protocol in providers:
            await provider_db.add(
                conn,
                name=name,
                protocol=protocol,
                currency="KGS",
                allow_ips=["127.0.0.0/8"],
                login=None,
                password_hash=hash_password(password) if protocol in password_protocols else None,
                secret=secret if protocol == "click" else None,
                service_id="1" if protocol == "click" else None,
                min_amount_minor=None,
                max_amount_minor=None,
                timezone=None,
            )
        codes = []
        # One commit for all of them: a durable commit per account made seeding take seconds.
        async with conn.transaction():
            for n in range(accounts):
                _, code = await account_db.create_account(
                    conn,
                    email=f"user{n}@bench.kg",
                    name=f"User{n} Bench",
                    currency="KGS",
                )
                codes.append(code)
        # Fresh tables keep sequential-scan plans until analyzed (see performance notes).
        await conn.execute("ANALYZE")
        return codes
    finally:
        await conn.close()


@dataclass
class Server:
    """`tolem serve` (or another command) as a subprocess."""

    argv: list[str]
    env: dict[str, str]
    port: int
    process: subprocess.Popen[bytes] | None = None
    log_path: Path = field(
        default_factory=lambda: Path(tempfile.mkstemp(prefix="tolem-srv-", suffix=".log")[1])
    )

    @classmethod
    def tolem(cls, dsn: str, *, workers: int = 1, deadline: float = 5.0, **extra: str) -> "Server":
        """tolem serve on a free port against `dsn`, logging JSON to a file."""
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("TOLEM_")}
        env.update(
            TOLEM_DATABASE_URL=dsn,
            TOLEM_PORT=str(port),
            TOLEM_WORKERS=str(workers),
            TOLEM_LOG_FORMAT="json",
            TOLEM_REQUEST_DEADLINE=str(deadline),
            TOLEM_PROVIDER_CACHE_SECONDS="2",
            **extra,
        )
        return cls([sys.executable, "-m", "tolem", "serve"], env, port)

    @property
    def url(self) -> str:
        """Base URL."""
        return f"http://127.0.0.1:{self.port}"

    async def start(self, ready_path: str = "/healthz", timeout: float = 30) -> None:
        """Starts the process and waits until it answers."""
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(self.argv, env=self.env, stdout=log, stderr=log)
        log.close()
        deadline = time.monotonic() + timeout
        async with aiohttp.ClientSession() as session:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise RuntimeError(f"server exited: {self.log_path.read_text()[-2000:]}")
                try:
                    async with session.get(self.url + ready_path) as response:
                        if response.status == 200:
                            return
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.05)
        raise RuntimeError(f"server not ready in {timeout}s")

    def kill(self) -> None:
        """SIGKILL to the server and its workers: no shutdown handlers, no flushing: a crash."""
        if self.process is not None and self.process.poll() is None:
            for pid in reversed(self.pids()):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            self.process.wait(timeout=10)
        self.process = None

    def stop(self) -> None:
        """SIGTERM and wait."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def pids(self) -> list[int]:
        """The server's process and its children (workers)."""
        if self.process is None:
            return []
        out = subprocess.run(
            ["ps", "-o", "pid=", "--ppid", str(self.process.pid)], capture_output=True, text=True, check=False
        ).stdout
        return [self.process.pid, *(int(p) for p in out.split())]
