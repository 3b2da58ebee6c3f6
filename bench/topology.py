"""The pieces of a deployment beyond one machine, as throwaway processes on loopback ports:
PgBouncer in transaction pooling mode, HAProxy in front of several tolem instances, and a
streaming standby with synchronous commit that can be promoted when its primary is killed.

Each piece is started from the Debian package's binary the way the throwaway cluster is
(`tolem.db.embedded`): as root, PgBouncer and PostgreSQL run as the `postgres` user, since both
refuse to run as root. `missing()` names the binaries that are not installed.
"""

import asyncio
import contextlib
import csv
import io
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import asyncpg

from bench.harness import Server, free_port
from tolem.db.embedded import Cluster, ensure_cluster, find_bin_dir, stop_cluster

# The user PostgreSQL and PgBouncer run as when we are root (both refuse root).
SERVICE_USER: Final = "postgres"
# Debian installs both daemons outside a normal user's PATH.
_SBIN: Final = ("/usr/sbin", "/usr/local/sbin")


def binary(name: str) -> str | None:
    """Where a daemon's binary is: PATH, else the sbin directories Debian uses."""
    found = shutil.which(name)
    if found:
        return found
    for directory in _SBIN:
        candidate = Path(directory) / name
        if candidate.exists():
            return str(candidate)
    return None


def missing(*names: str) -> list[str]:
    """Those of `names` (pgbouncer, haproxy, pg_basebackup) that are not installed."""
    absent = []
    for name in names:
        if name == "pg_basebackup":
            bin_dir = find_bin_dir()
            if bin_dir is None or not (bin_dir / name).exists():
                absent.append(name)
        elif binary(name) is None:
            absent.append(name)
    return absent


def _run_as() -> str | None:
    return SERVICE_USER if os.geteuid() == 0 else None


def _private_dir(prefix: str) -> Path:
    """A fresh directory that the service user owns (and can reach: parents are world-x)."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    os.chmod(path, 0o755)  # noqa: S103 - the service user must enter it
    user = _run_as()
    if user is not None:
        entry = pwd.getpwnam(user)
        os.chown(path, entry.pw_uid, entry.pw_gid)
    return path


def _wait_for_port(port: int, process: subprocess.Popen[bytes], log: Path, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"exited with {process.returncode}: {log.read_text()[-1500:]}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port} after {timeout}s: {log.read_text()[-1500:]}")


def _stop(process: subprocess.Popen[bytes] | None, signum: int = signal.SIGTERM) -> None:
    if process is None or process.poll() is not None:
        return
    process.send_signal(signum)
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


# --- PgBouncer ----------------------------------------------------------------------------------


@dataclass
class PgBouncer:
    """PgBouncer in transaction pooling mode in front of one PostgreSQL server.

    Every database name is passed through to the server (`*`). Authentication is `trust`, as
    the throwaway clusters use; a deployment uses scram-sha-256 with an auth_query
    (docs/deployment.md). The session timeouts tolem would send as startup parameters, which
    PgBouncer refuses, are set on each server connection by `connect_query` instead.
    """

    upstream_port: int
    upstream_host: str = "127.0.0.1"
    # The one role clients log in as (trust: PgBouncer logs in to the server as that role).
    user: str = SERVICE_USER
    pool_size: int = 10
    # tolem's default deadline is 5 s; the harness runs with 2 s. These sit below it, as the
    # pool's own statement_timeout and lock_timeout do when tolem connects directly.
    statement_timeout_ms: int = 1600
    # How long a client may wait for a server connection before PgBouncer gives up on it.
    query_wait_timeout: int = 10
    port: int = field(default_factory=free_port)
    directory: Path = field(default_factory=lambda: _private_dir("tolem-pgbouncer-"))
    process: subprocess.Popen[bytes] | None = None

    @property
    def log_path(self) -> Path:
        """PgBouncer's own log."""
        return self.directory / "pgbouncer.log"

    def dsn(self, database: str) -> str:
        """How tolem reaches `database` through the pooler."""
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{database}"

    def config(self) -> str:
        """pgbouncer.ini for this instance."""
        timeouts = (
            f"SET statement_timeout = {self.statement_timeout_ms}; "
            f"SET lock_timeout = {self.statement_timeout_ms}; "
            f"SET idle_in_transaction_session_timeout = {self.statement_timeout_ms * 2}"
        )
        return "\n".join(
            [
                "[databases]",
                f"* = host={self.upstream_host} port={self.upstream_port} connect_query='{timeouts}'",
                "[pgbouncer]",
                "listen_addr = 127.0.0.1",
                f"listen_port = {self.port}",
                "unix_socket_dir =",
                "auth_type = trust",
                f"auth_file = {self.directory / 'userlist.txt'}",
                f"admin_users = {self.user}",
                "pool_mode = transaction",
                f"default_pool_size = {self.pool_size}",
                "max_client_conn = 500",
                # The default 15 s would keep every client waiting that long after PostgreSQL
                # is back from an outage.
                "server_login_retry = 1",
                f"query_wait_timeout = {self.query_wait_timeout}",
                f"logfile = {self.log_path}",
                f"pidfile = {self.directory / 'pgbouncer.pid'}",
                "",
            ]
        )

    def start(self) -> None:
        """Writes the configuration and starts PgBouncer in the foreground of a subprocess."""
        executable = binary("pgbouncer")
        if executable is None:
            raise RuntimeError("pgbouncer is not installed (apt-get install pgbouncer)")
        (self.directory / "userlist.txt").write_text(f'"{self.user}" ""\n')
        ini = self.directory / "pgbouncer.ini"
        ini.write_text(self.config())
        self.process = subprocess.Popen(
            [executable, str(ini)],
            user=_run_as(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        _wait_for_port(self.port, self.process, self.log_path)

    def stats(self, database: str) -> dict[str, int]:
        """SHOW STATS for one database (transactions and queries PgBouncer passed on)."""
        bin_dir = find_bin_dir()
        assert bin_dir is not None
        # The admin console speaks only the simple query protocol, which psql uses.
        done = subprocess.run(
            [
                str(bin_dir / "psql"),
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-U",
                self.user,
                "-d",
                "pgbouncer",
                "--csv",
                "-c",
                "SHOW STATS",
            ],
            user=_run_as(),
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        )
        for row in csv.DictReader(io.StringIO(done.stdout)):
            if row["database"] == database:
                return {k: int(v) for k, v in row.items() if k != "database" and v.isdigit()}
        return {}

    def stop(self) -> None:
        """Stops PgBouncer (SIGTERM: immediate shutdown) and removes its directory."""
        _stop(self.process)
        self.process = None
        shutil.rmtree(self.directory, ignore_errors=True)


# --- HAProxy and several instances --------------------------------------------------------------


def _instance(row: dict[str, str]) -> bool:
    """Whether a statistics row is one tolem instance's (not a proxy's summary)."""
    return row["pxname"] == "tolem" and row["svname"] not in ("FRONTEND", "BACKEND")


@dataclass
class Balancer:
    """HAProxy spreading requests round-robin over tolem instances, health-checked on /readyz.

    A backend that refuses connections is retried on the other one (`retries`, `redispatch`).
    A request cut off inside a backend HAProxy may resend elsewhere or answer with an error;
    either is safe, since a pay is idempotent on its transaction id.
    """

    backends: Sequence[int]
    port: int = field(default_factory=free_port)
    stats_port: int = field(default_factory=free_port)
    directory: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="tolem-haproxy-")))
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """Where aggregators send requests."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        """HAProxy's output."""
        return self.directory / "haproxy.log"

    def config(self) -> str:
        """haproxy.cfg for this instance."""
        servers = [
            f"    server tolem{n} 127.0.0.1:{port} check" for n, port in enumerate(self.backends, start=1)
        ]
        return "\n".join(
            [
                "global",
                "    maxconn 2000",
                "defaults",
                "    mode http",
                "    timeout connect 1s",
                "    timeout client 30s",
                "    timeout server 30s",
                "    retries 3",
                "    option redispatch",
                "frontend gateway",
                f"    bind 127.0.0.1:{self.port}",
                # tolem believes the header only from TOLEM_TRUSTED_PROXIES.
                "    option forwardfor",
                "    default_backend tolem",
                "backend tolem",
                "    balance roundrobin",
                "    option httpchk GET /readyz",
                "    default-server inter 500ms fall 2 rise 2",
                *servers,
                "listen stats",
                f"    bind 127.0.0.1:{self.stats_port}",
                "    stats enable",
                "    stats uri /stats",
                "",
            ]
        )

    def start(self) -> None:
        """Starts HAProxy in the foreground of a subprocess."""
        executable = binary("haproxy")
        if executable is None:
            raise RuntimeError("haproxy is not installed (apt-get install haproxy)")
        cfg = self.directory / "haproxy.cfg"
        cfg.write_text(self.config())
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen([executable, "-db", "-f", str(cfg)], stdout=log, stderr=log)
        _wait_for_port(self.port, self.process, self.log_path)

    def statistics(self) -> list[dict[str, str]]:
        """HAProxy's statistics rows: the frontend's, each backend server's, the backend's."""
        url = f"http://127.0.0.1:{self.stats_port}/stats;csv"
        with urllib.request.urlopen(url, timeout=5) as response:
            return list(csv.DictReader(io.StringIO(response.read().decode().lstrip("# "))))

    def backends_state(self) -> list[dict[str, str]]:
        """The row of each tolem instance (status, answers by class, errors, ...)."""
        return [
            r
            for r in self.statistics()
            if r["pxname"] == "tolem" and r["svname"] not in ("FRONTEND", "BACKEND")
        ]

    def answered(self) -> dict[str, int]:
        """HTTP answers (any status) each instance gave."""
        statuses = ("hrsp_1xx", "hrsp_2xx", "hrsp_3xx", "hrsp_4xx", "hrsp_5xx")
        return {r["svname"]: sum(int(r[s] or 0) for s in statuses) for r in self.backends_state()}

    def failures(self) -> dict[str, int]:
        """Requests HAProxy moved to another instance (`redispatched`: refused connections, and
        requests sent into a frozen instance that never read them), requests an instance failed
        to answer (`cut_off`), and error answers HAProxy itself gave clients (`errors`)."""
        rows = self.statistics()
        servers = [r for r in rows if _instance(r)]
        front = next(r for r in rows if r["pxname"] == "gateway" and r["svname"] == "FRONTEND")
        return {
            "redispatched": sum(int(r["wredis"] or 0) for r in servers),
            "cut_off": sum(int(r["eresp"] or 0) for r in servers),
            "errors": int(front["hrsp_5xx"] or 0),
        }

    def stop(self) -> None:
        """Stops HAProxy and removes its directory."""
        _stop(self.process)
        self.process = None
        shutil.rmtree(self.directory, ignore_errors=True)


async def wait_until_balanced(balancer: Balancer, servers: int, timeout: float = 15) -> None:
    """Until HAProxy's health checks count `servers` backends as up."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = await asyncio.to_thread(balancer.backends_state)
        if sum(1 for r in rows if r["status"] == "UP") >= servers:
            return
        await asyncio.sleep(0.1)
    raise RuntimeError(f"HAProxy did not see {servers} healthy backends in {timeout}s")


# How long the instance a crash kills is frozen first: long enough for the balancer to hand
# it requests before its health checks (every 500 ms, down after two) give up on it.
FREEZE_SECONDS: Final = 0.5


@dataclass
class OneOfMany:
    """The balancer's address as the server under test, with one instance behind it as the one
    a crash kills and restarts: what bench.chaos.crash does to a single server, done to one of
    several while the others keep answering.

    The victim is frozen (SIGSTOP) before the SIGKILL, so that requests are certainly in flight
    on it when it dies, some perhaps committed and never answered; the SIGKILL comes from a
    timer thread, and the clients keep sending meanwhile.
    """

    url: str
    victim: Server
    _killer: threading.Timer | None = None

    def kill(self) -> None:
        """SIGSTOP to the victim instance now, SIGKILL FREEZE_SECONDS later."""
        for pid in self.victim.pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGSTOP)
        self._killer = threading.Timer(FREEZE_SECONDS, self.victim.kill)
        self._killer.start()

    async def start(self) -> None:
        """The victim instance again (HAProxy takes it back once /readyz answers)."""
        if self._killer is not None:
            await asyncio.to_thread(self._killer.join)
        await self.victim.start()


# --- a synchronous standby ----------------------------------------------------------------------

STANDBY_NAME: Final = "standby1"


def _pg(command: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    bin_dir = find_bin_dir()
    assert bin_dir is not None
    return subprocess.run(
        [str(bin_dir / command), *args],
        user=_run_as(),
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
    base = _private_dir("tolem-standby-")
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


# --- several instances as one benchmark target -----------------------------------------------


@dataclass
class Fleet:
    """tolem instances measured as one server: behind a balancer when there are several, all
    through one PgBouncer. `pids` are every process on the way (instances and their workers,
    HAProxy, PgBouncer), so that the CPU and memory figures count the whole path."""

    servers: list[Server]
    bouncer: PgBouncer
    balancer: Balancer | None = None

    @property
    def url(self) -> str:
        """The balancer's address, or the one instance's."""
        return self.balancer.url if self.balancer is not None else self.servers[0].url

    async def start(self) -> None:
        """The instances, then the balancer once they answer."""
        for server in self.servers:
            await server.start()
        if self.balancer is not None:
            self.balancer.start()
            await wait_until_balanced(self.balancer, len(self.servers))

    def stop(self) -> None:
        """The balancer, then the instances (PgBouncer is stopped by whoever started it)."""
        if self.balancer is not None:
            self.balancer.stop()
        for server in self.servers:
            server.stop()

    def pids(self) -> list[int]:
        """Every serving process: each instance's workers (or the instance), HAProxy, PgBouncer."""
        pids = []
        for server in self.servers:
            own = server.pids()
            pids += own[1:] if len(own) > 1 else own
        for process in (self.balancer.process if self.balancer else None, self.bouncer.process):
            if process is not None:
                pids.append(process.pid)
        return pids
