"""Several tolem instances: HAProxy in front of them, one of them crashed while the others
answer, and all of them measured as one benchmark target (see bench/topology.py)."""

import asyncio
import contextlib
import csv
import io
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from bench.harness import Server, free_port
from bench.pgbouncer import PgBouncer
from bench.topology import binary, stop_process, wait_for_port


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
        wait_for_port(self.port, self.process, self.log_path)

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
        stop_process(self.process)
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
