"""PgBouncer in transaction pooling mode, as a throwaway process in front of one PostgreSQL
server (see bench/topology.py)."""

import csv
import io
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from bench.harness import free_port
from bench.topology import SERVICE_USER, binary, private_dir, run_as, stop_process, wait_for_port
from tolem.db.embedded import find_bin_dir


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
    directory: Path = field(default_factory=lambda: private_dir("tolem-pgbouncer-"))
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
            user=run_as(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for_port(self.port, self.process, self.log_path)

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
            user=run_as(),
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
        stop_process(self.process)
        self.process = None
        shutil.rmtree(self.directory, ignore_errors=True)
