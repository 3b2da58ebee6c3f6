"""A private PostgreSQL cluster for machines where no database URL is configured.

It is started from the PostgreSQL server binaries on the machine (or, failing that, from the
optional `pgserver` wheel) and left running, so the next command reuses it. PostgreSQL refuses
to run as root; as root the cluster is owned by and run as the `postgres` user.

The cluster listens on one loopback port for its whole life, chosen when it is first started and
kept in the file `port` beside its data directory: a running `tolem serve` holds that address in
its pool and reconnects to it after the cluster restarts, which a new port on every start
would make impossible.

Where it lives does not depend on the working directory (a command from cron or a systemd unit
must find the same cluster as one typed in a shell): see `default_data_dir`. Only the commands
that set up a database create a cluster; every other command uses an existing one (starting
it if it is stopped) and otherwise says where it looked.
"""

import os
import pwd
import random
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

DATABASE_NAME: Final = "tolem"
PORT_FILE: Final = "port"
_UNPRIVILEGED_USER: Final = "postgres"
# Below Linux's default range for outgoing connections' local ports (32768-60999), so that no
# client connection made between two starts can be holding the cluster's port.
_PORT_RANGE: Final = range(20000, 32768)


class EmbeddedUnavailable(RuntimeError):
    """No way to start a private cluster here; the message says what to do instead."""


class NoCluster(EmbeddedUnavailable):
    """There is no cluster where one was looked for, and the command may not create one."""


# Root's own home is closed to the postgres user the cluster runs as; this is where Debian
# keeps services' state.
ROOT_DATA_DIR: Final = Path("/var/lib/tolem")


def default_data_dir(euid: int | None = None, environ: Mapping[str, str] | None = None) -> Path:
    """Where the private cluster lives unless TOLEM_DATA_DIR says otherwise.

    $XDG_DATA_HOME/tolem, else ~/.local/share/tolem (the XDG base directory rules), and
    /var/lib/tolem for root.
    """
    euid = os.geteuid() if euid is None else euid
    environ = os.environ if environ is None else environ
    if euid == 0:
        return ROOT_DATA_DIR
    xdg = environ.get("XDG_DATA_HOME", "")
    # The specification: a relative path in XDG_DATA_HOME is invalid and to be ignored.
    if xdg and Path(xdg).is_absolute():
        return Path(xdg) / "tolem"
    home = environ.get("HOME") or pwd.getpwuid(euid).pw_dir
    return Path(home) / ".local" / "share" / "tolem"


def exists(base_dir: Path) -> bool:
    """Whether a cluster was ever created under `base_dir` (by either way of running one)."""
    return any((base_dir / kind / "PG_VERSION").exists() for kind in ("pgdata", "pgserver"))


@dataclass(frozen=True, slots=True)
class Cluster:
    """A running private cluster."""

    data_dir: Path
    port: int
    log_file: Path
    uri: str | None = None
    # Whether this call started the server (rather than finding it running): worth saying.
    started: bool = False

    def dsn(self, database: str = DATABASE_NAME) -> str:
        """How to reach it: loopback TCP, or pgserver's own socket URI."""
        if self.uri is not None:
            return self.uri
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"


def find_bin_dir() -> Path | None:
    """Directory holding pg_ctl and initdb: from PATH, else the newest Debian-style install."""
    found = shutil.which("pg_ctl")
    if found and shutil.which("initdb"):
        return Path(found).resolve().parent
    candidates = sorted(
        Path("/usr/lib/postgresql").glob("*/bin"),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
    )
    for candidate in reversed(candidates):
        if (candidate / "pg_ctl").exists() and (candidate / "initdb").exists():
            return candidate
    return None


def _port_free(port: int) -> bool:
    """Whether a server could listen on 127.0.0.1:`port` now.

    SO_REUSEADDR as PostgreSQL sets it, so that connections of the cluster's previous run still
    in TIME_WAIT do not count as the port being taken; a listening socket still does.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _choose_port() -> int:
    for _ in range(100):
        port = random.randrange(_PORT_RANGE.start, _PORT_RANGE.stop)  # noqa: S311 - not a secret
        if _port_free(port):
            return port
    raise EmbeddedUnavailable(
        f"no free loopback port in {_PORT_RANGE.start}-{_PORT_RANGE.stop - 1} for the private cluster",
    )


def stored_port(base_dir: Path) -> int | None:
    """The cluster's port as recorded beside its data directory, if it has one."""
    try:
        return int((base_dir / PORT_FILE).read_text().strip())
    except (OSError, ValueError):
        return None


def _store_port(base_dir: Path, port: int) -> None:
    """Records the port; written whole (a temporary file renamed) so a reader never sees half."""
    temporary = base_dir / f"{PORT_FILE}.new"
    temporary.write_text(f"{port}\n")
    temporary.replace(base_dir / PORT_FILE)


def _run_as() -> str | None:
    """The user the server must run as: ourselves, or `postgres` when we are root."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(_UNPRIVILEGED_USER)
    except KeyError as exc:
        raise EmbeddedUnavailable(
            "running as root and there is no 'postgres' user to run PostgreSQL as; "
            "set TOLEM_DATABASE_URL or use docker compose",
        ) from exc
    return _UNPRIVILEGED_USER


def _hand_over(path: Path, user: str) -> None:
    """Gives `path` to `user` and checks that user can reach it through every parent."""
    entry = pwd.getpwnam(user)
    os.chown(path, entry.pw_uid, entry.pw_gid)
    for parent in path.resolve().parents:
        mode = parent.stat().st_mode
        if not mode & 0o001 and parent.stat().st_uid != entry.pw_uid:
            raise EmbeddedUnavailable(
                f"the {user} user cannot enter {parent}; set TOLEM_DATA_DIR to a directory it "
                "can reach, set TOLEM_DATABASE_URL, or use docker compose",
            )


def _cmd(args: list[str], user: str | None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - fixed binaries, arguments built here
        args,
        user=user,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


@dataclass(frozen=True, slots=True)
class Postmaster:
    """A live server on a data directory, as its postmaster.pid describes it."""

    pid: int
    port: int
    socket_dir: str


def postmaster(data_dir: Path) -> Postmaster | None:
    """The live server on this data directory (postmaster.pid lines 1, 4 and 5), if any."""
    pid_file = data_dir / "postmaster.pid"
    try:
        lines = pid_file.read_text().splitlines()
        found = Postmaster(pid=int(lines[0]), port=int(lines[3]), socket_dir=lines[4].strip())
        os.kill(found.pid, 0)
    except (OSError, ValueError, IndexError):
        return None
    return found


def running_port(data_dir: Path) -> int | None:
    """Port of a live server on this data directory, if any."""
    found = postmaster(data_dir)
    return None if found is None else found.port


def ensure_cluster(
    base_dir: Path,
    *,
    options: tuple[str, ...] = (),
    create_database: bool = True,
    create: bool = True,
) -> Cluster:
    """Starts (or reuses) the cluster under `base_dir` and makes sure database `tolem` exists.

    With create=False a cluster that was never created is not: NoCluster is raised instead.
    """
    if not create and not exists(base_dir):
        raise NoCluster(f"no private cluster in {base_dir}")
    bin_dir = find_bin_dir()
    if bin_dir is None:
        return _pgserver_cluster(base_dir)
    user = _run_as()
    base_dir.mkdir(parents=True, exist_ok=True)
    data_dir = base_dir / "pgdata"
    log_file = base_dir / "postgres.log"
    if user is not None:
        _hand_over(base_dir, user)
    port = running_port(data_dir)
    started = port is None
    if port is not None:
        if stored_port(base_dir) is None:
            _store_port(base_dir, port)
    else:
        if not (data_dir / "PG_VERSION").exists():
            done = _cmd(
                [
                    str(bin_dir / "initdb"),
                    "-D",
                    str(data_dir),
                    "-U",
                    "postgres",
                    "--auth=trust",
                    "-E",
                    "UTF8",
                    "--locale=C.UTF-8",
                ],
                user,
            )
            if done.returncode != 0:
                raise EmbeddedUnavailable(f"initdb failed: {done.stderr.strip()[-500:]}")
        port = _cluster_port(base_dir)
        server_options = " ".join(
            ["-p", str(port), "-c", "listen_addresses=127.0.0.1", "-k", str(data_dir), *options],
        )
        done = _cmd(
            [
                str(bin_dir / "pg_ctl"),
                "-D",
                str(data_dir),
                "-l",
                str(log_file),
                "-w",
                "-t",
                "60",
                "-o",
                server_options,
                "start",
            ],
            user,
        )
        if done.returncode != 0:
            raise EmbeddedUnavailable(
                f"PostgreSQL did not start on port {port} (see {log_file}): {done.stderr.strip()[-300:]}",
            )
    cluster = Cluster(data_dir=data_dir, port=port, log_file=log_file, started=started)
    if create_database:
        _create_database(bin_dir, cluster, user)
    return cluster


def _cluster_port(base_dir: Path) -> int:
    """The port recorded for this cluster (chosen and recorded on its first start), if free."""
    port = stored_port(base_dir)
    if port is None:
        port = _choose_port()
        _store_port(base_dir, port)
    if not _port_free(port):
        raise EmbeddedUnavailable(
            f"port {port} of the private cluster in {base_dir} is in use by another program; "
            f"stop that program, or write another free port into {base_dir / PORT_FILE} "
            "(servers already running against this cluster must then be restarted)",
        )
    return port


def _pgserver_cluster(base_dir: Path) -> Cluster:
    """The cluster bundled in the optional pgserver wheel (as root it creates its own user)."""
    try:
        import pgserver  # noqa: PLC0415 - optional extra, only here
    except ImportError as exc:
        raise EmbeddedUnavailable(
            "TOLEM_DATABASE_URL is not set and no PostgreSQL server binaries (pg_ctl, initdb) "
            "were found; install PostgreSQL, pip install 'tolem[embedded]', set "
            "TOLEM_DATABASE_URL, or use docker compose",
        ) from exc
    data_dir = base_dir / "pgserver"
    server = pgserver.get_server(str(data_dir), cleanup_mode=None)
    exists = server.psql(f"SELECT 1 FROM pg_database WHERE datname = '{DATABASE_NAME}';")
    if "1 row" not in exists:
        server.psql(f"CREATE DATABASE {DATABASE_NAME};")
    return Cluster(data_dir=data_dir, port=0, log_file=data_dir / "log", uri=server.get_uri(DATABASE_NAME))


def _create_database(bin_dir: Path, cluster: Cluster, user: str | None) -> None:
    psql = [
        str(bin_dir / "psql"),
        "-h",
        "127.0.0.1",
        "-p",
        str(cluster.port),
        "-U",
        "postgres",
        "-d",
        "postgres",
        "-tAc",
    ]
    exists = _cmd([*psql, f"SELECT 1 FROM pg_database WHERE datname = '{DATABASE_NAME}'"], user)
    if exists.stdout.strip() != "1":
        created = _cmd([*psql, f"CREATE DATABASE {DATABASE_NAME}"], user)
        if created.returncode != 0 and "already exists" not in created.stderr:
            raise EmbeddedUnavailable(f"could not create database: {created.stderr.strip()}")


def stop_cluster(data_dir: Path, *, mode: str = "fast") -> None:
    """Stops a cluster started by ensure_cluster."""
    bin_dir = find_bin_dir()
    if bin_dir is None:
        return
    user = _run_as()
    _cmd([str(bin_dir / "pg_ctl"), "-D", str(data_dir), "-m", mode, "-w", "stop"], user)


@dataclass(frozen=True, slots=True)
class ClusterState:
    """What `tolem db status` reports about the cluster under a data directory."""

    base_dir: Path
    exists: bool
    port: int | None
    server: Postmaster | None

    @property
    def dsn(self) -> str | None:
        """How to reach it while it runs: loopback TCP, or the socket a pgserver cluster uses."""
        if self.server is None:
            return None
        if (self.base_dir / "pgserver" / "PG_VERSION").exists():
            return f"postgresql://postgres@/{DATABASE_NAME}?host={self.server.socket_dir}"
        return f"postgresql://postgres@127.0.0.1:{self.server.port}/{DATABASE_NAME}"


def cluster_state(base_dir: Path) -> ClusterState:
    """Whether there is a cluster under `base_dir`, its port and its server; starts nothing."""
    server = postmaster(base_dir / "pgdata") or postmaster(base_dir / "pgserver")
    port = server.port if server is not None else stored_port(base_dir)
    return ClusterState(base_dir=base_dir, exists=exists(base_dir), port=port, server=server)


# How long a fast shutdown may take: it waits for running transactions to be rolled back.
_STOP_SECONDS: Final = 60


def stop(base_dir: Path) -> bool:
    """Stops the cluster under `base_dir` (fast shutdown); False if it was not running."""
    for data_dir in (base_dir / "pgdata", base_dir / "pgserver"):
        server = postmaster(data_dir)
        if server is not None:
            break
    else:
        return False
    bin_dir = find_bin_dir()
    if data_dir.name == "pgdata" and bin_dir is not None:
        done = _cmd([str(bin_dir / "pg_ctl"), "-D", str(data_dir), "-m", "fast", "-w", "stop"], _run_as())
        if done.returncode != 0:
            raise EmbeddedUnavailable(f"pg_ctl stop failed: {done.stderr.strip()[-300:]}")
        return True
    # pgserver's binaries live inside its wheel; SIGINT is the fast shutdown pg_ctl would send.
    os.kill(server.pid, signal.SIGINT)
    deadline = time.monotonic() + _STOP_SECONDS
    while postmaster(data_dir) is not None:
        if time.monotonic() > deadline:
            raise EmbeddedUnavailable(f"PostgreSQL (pid {server.pid}) did not stop in {_STOP_SECONDS} s")
        time.sleep(0.1)
    return True
