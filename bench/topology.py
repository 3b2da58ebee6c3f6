"""The pieces of a deployment beyond one machine, as throwaway processes on loopback ports:
PgBouncer in transaction pooling mode (bench/pgbouncer.py), HAProxy in front of several tolem
instances (bench/balancer.py), and a streaming standby with synchronous commit that can be
promoted when its primary is killed (bench/standby.py). This module has what they share.

Each piece is started from the Debian package's binary the way the throwaway cluster is
(`tolem.db.embedded`): as root, PgBouncer and PostgreSQL run as the `postgres` user, since both
refuse to run as root. `missing()` names the binaries that are not installed.
"""

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Final

from tolem.db.embedded import find_bin_dir

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


def run_as() -> str | None:
    """The user a daemon runs as: the service user when we are root, else ourselves."""
    return SERVICE_USER if os.geteuid() == 0 else None


def private_dir(prefix: str) -> Path:
    """A fresh directory that the service user owns (and can reach: parents are world-x)."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    os.chmod(path, 0o755)  # noqa: S103 - the service user must enter it
    user = run_as()
    if user is not None:
        entry = pwd.getpwnam(user)
        os.chown(path, entry.pw_uid, entry.pw_gid)
    return path


def wait_for_port(port: int, process: subprocess.Popen[bytes], log: Path, timeout: float = 15) -> None:
    """Until something listens on `port`; an exit or a timeout raises with the log's tail."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"exited with {process.returncode}: {log.read_text()[-1500:]}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port} after {timeout}s: {log.read_text()[-1500:]}")


def stop_process(process: subprocess.Popen[bytes] | None, signum: int = signal.SIGTERM) -> None:
    """Stops a daemon started here, if it runs: `signum`, then SIGKILL after 10 s."""
    if process is None or process.poll() is not None:
        return
    process.send_signal(signum)
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
