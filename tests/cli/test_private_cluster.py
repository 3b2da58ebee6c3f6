"""The private cluster through real `tolem` processes: its port, its restarts, its location."""

import asyncio
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import asyncpg

from tests.cli.conftest import clean_env, free_port, wait_ready
from tolem.db.embedded import stop_cluster

_RESULT = re.compile(r"<result>(\d+)</result>")


def tolem(env: dict[str, str], *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """One `tolem` command as its own process."""
    return subprocess.run(
        [sys.executable, "-m", "tolem", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def served_port(data_dir: Path) -> int:
    """The port the live server of this data directory listens on (postmaster.pid, line 4)."""
    return int((data_dir / "pgdata" / "postmaster.pid").read_text().splitlines()[3])


async def osmp(session: aiohttp.ClientSession, url: str, command: str, txn: str, code: str) -> int:
    """The OSMP result code of one check or pay of 10.00."""
    query = {"command": command, "txn_id": txn, "account": code, "sum": "10.00", "txn_date": "20261129100000"}
    async with session.get(url, params=query) as response:
        body = await response.text()
    found = _RESULT.search(body)
    assert found is not None, body
    return int(found.group(1))


async def _accepting_after(port: int, since: float) -> float:
    """Seconds from `since` until PostgreSQL on `port` lets a session in."""
    while True:
        try:
            conn = await asyncpg.connect(f"postgresql://postgres@127.0.0.1:{port}/tolem", timeout=1)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError):
            assert time.monotonic() - since < 60, "the cluster did not come back in 60 s"
            await asyncio.sleep(0.005)
            continue
        await conn.close()
        return time.monotonic() - since


def _prepare(env: dict[str, str]) -> str:
    """Migrates the private cluster, adds an OSMP provider and an account; the account's code."""
    for args in (
        ("migrate",),
        ("provider", "add", "kiosk", "--protocol", "osmp", "--allow-ip", "127.0.0.1/32"),
    ):
        done = tolem(env, *args)
        assert done.returncode == 0, done.stderr
    created = tolem(env, "account", "create", "--email", "a@b.kg", "--name", "Asanov Asan", "--json")
    assert created.returncode == 0, created.stderr
    code = re.search(r'"payment_code": "(\w+)"', created.stdout)
    assert code is not None
    return code.group(1)


async def test_serve_recovers_when_the_private_cluster_restarts(data_dir: Path) -> None:
    """A running `tolem serve` answers only "retry" while its private cluster is stopped and
    succeeds again once it is started, without a restart: the cluster comes back on its port."""
    env = clean_env(TOLEM_DATA_DIR=str(data_dir), TOLEM_LOG_FORMAT="json", TOLEM_REQUEST_DEADLINE="2")
    code = _prepare(env)
    port_before = served_port(data_dir)
    port = free_port()
    url = f"http://127.0.0.1:{port}/gw/kiosk"
    server = subprocess.Popen(
        [sys.executable, "-m", "tolem", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        await wait_ready(f"http://127.0.0.1:{port}/readyz", server)
        async with aiohttp.ClientSession() as session:
            assert await osmp(session, url, "check", "1", code) == 0
            assert await osmp(session, url, "pay", "1", code) == 0

            await asyncio.to_thread(stop_cluster, data_dir / "pgdata")
            during = [await osmp(session, url, command, "2", code) for command in ("check", "pay") * 3]
            assert during == [1] * 6

            # While the cluster starts again, poll both it and the gateway, to time the gap
            # between PostgreSQL accepting connections and the gateway's first success.
            started = time.monotonic()
            restart = asyncio.create_task(asyncio.to_thread(tolem, env, "migrate"))
            accepting_task = asyncio.create_task(_accepting_after(port_before, started))
            before_success = []
            while (result := await osmp(session, url, "check", "3", code)) != 0:
                before_success.append(result)
                assert time.monotonic() - started < 60, "no success 60 s after the restart began"
                await asyncio.sleep(0.005)
            succeeded = time.monotonic() - started
            accepting = await accepting_task
            restarted = await restart
            assert restarted.returncode == 0, restarted.stderr
            assert served_port(data_dir) == port_before
            assert set(before_success) <= {1}
            assert await osmp(session, url, "pay", "3", code) == 0
            assert await osmp(session, url, "pay", "2", code) == 0
        assert server.poll() is None, "the server must have run throughout"
        print(
            f"cluster accepting {accepting:.3f} s after the restart began, first OSMP success at "
            f"{succeeded:.3f} s: {succeeded - accepting:.3f} s later, after {len(before_success)} "
            "retry answer(s)",
        )
    finally:
        server.terminate()
        server.communicate(timeout=15)
    shown = tolem(env, "account", "show", "--code", code)
    assert shown.returncode == 0, shown.stderr
    assert "balance: 30.00 KGS" in shown.stdout


def test_a_taken_port_is_named(data_dir: Path) -> None:
    """When the cluster's own port is taken by another program, starting it says so and which
    port, instead of moving to another port the running servers do not know."""
    env = clean_env(TOLEM_DATA_DIR=str(data_dir), TOLEM_LOG_FORMAT="json")
    assert tolem(env, "migrate").returncode == 0
    port = served_port(data_dir)
    stop_cluster(data_dir / "pgdata")
    with socket.socket() as squatter:
        # As servers do: the cluster's own closed connections may still be in TIME_WAIT.
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        squatter.bind(("127.0.0.1", port))
        squatter.listen()
        refused = tolem(env, "migrate")
    assert refused.returncode == 1
    assert f"port {port}" in refused.stderr
    assert "in use" in refused.stderr
    assert "Traceback" not in refused.stderr
    again = tolem(env, "migrate")
    assert again.returncode == 0, again.stderr
    assert served_port(data_dir) == port
