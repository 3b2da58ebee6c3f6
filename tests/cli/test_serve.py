"""The service as a process: `tolem serve` with workers, and the private database default."""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest

import tolem
from tests.cli.conftest import clean_env, free_port, wait_ready
from tests.conftest import Factory

pytestmark = pytest.mark.slow


def listening_holders(port: int) -> dict[int, int]:
    """Process id -> how many descriptors it holds of the loopback socket listening on `port`."""
    inodes = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[1] == f"0100007F:{port:04X}" and fields[3] == "0A":
            inodes.add(f"socket:[{fields[9]}]")
    assert len(inodes) == 1, inodes
    holders: dict[int, int] = {}
    for fd_dir in Path("/proc").glob("[0-9]*/fd"):
        try:
            held = sum(1 for fd in fd_dir.iterdir() if os.readlink(fd) in inodes)
        except OSError:  # a process that ended meanwhile, or one we may not look into
            continue
        if held:
            holders[int(fd_dir.parent.name)] = held
    return holders


def children(pid: int) -> set[int]:
    """Process ids whose parent is `pid`."""
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rpartition(")")[2].split()[1])
        except (OSError, ValueError):
            continue
        if ppid == pid:
            found.add(int(stat.parent.name))
    return found


async def test_serve_with_two_workers(database_url: str, factory: Factory) -> None:
    """Two worker processes accept from one listening socket (the parent bound it and holds it
    no longer), answer /readyz, and stop cleanly on SIGTERM; the instance says once what it
    serves (version, address, workers, database, providers) and once that it stopped."""
    await factory.provider("kiosk", protocol="osmp")
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "tolem", "serve", "--port", str(port), "--workers", "2"],
        env=clean_env(TOLEM_DATABASE_URL=database_url, TOLEM_LOG_FORMAT="json"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        await wait_ready(f"http://127.0.0.1:{port}/readyz", process)
        holders = listening_holders(port)
        assert len(holders) == 2, holders
        assert set(holders) <= children(process.pid)
        async with aiohttp.ClientSession() as session:
            statuses = []
            for _ in range(20):
                async with session.get(f"http://127.0.0.1:{port}/healthz") as response:
                    statuses.append(response.status)
        assert statuses == [200] * 20
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=15)
        assert process.returncode == 0, err.decode()
        assert out.decode().count('"event":"request"') >= 20
        events = [json.loads(line) for line in out.decode().splitlines()]
        [serving] = [e for e in events if e["event"] == "serving"]
        assert serving["version"] == tolem.__version__
        assert serving["listen"] == [f"127.0.0.1:{port}"]
        assert serving["workers"] == 2
        assert serving["database"] == database_url.partition("@")[2]
        assert serving["providers"] == ["kiosk"]
        assert [e["exit_status"] for e in events if e["event"] == "stopped"] == [0]
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate()


async def test_served_process_never_logs_a_whole_code(database_url: str, factory: Factory) -> None:
    """The real server's output (stdout and stderr) shows codes masked: no access log with the
    query string, and the canonical line keeps only the last digits."""
    await factory.provider("kiosk", protocol="osmp")
    _, code = await factory.account()
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "tolem", "serve", "--port", str(port)],
        env=clean_env(TOLEM_DATABASE_URL=database_url, TOLEM_LOG_FORMAT="json"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        await wait_ready(f"http://127.0.0.1:{port}/readyz", process)
        async with aiohttp.ClientSession() as session:
            for command in ("check", "pay", "pay"):
                query = {
                    "command": command,
                    "txn_id": "77",
                    "account": code,
                    "sum": "10.00",
                    "txn_date": "20261129100000",
                }
                async with session.get(f"http://127.0.0.1:{port}/gw/kiosk", params=query) as response:
                    assert "<result>0</result>" in await response.text()
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=15)
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate()
    output = out.decode() + err.decode()
    assert output.count('"command":"pay"') == 2
    assert code[-4:] in output
    assert code not in output


def test_private_cluster_started_and_reused(data_dir: Path) -> None:
    """Without TOLEM_DATABASE_URL, commands start a private cluster once and reuse it."""
    env = clean_env(TOLEM_DATA_DIR=str(data_dir), TOLEM_LOG_FORMAT="json")
    first = subprocess.run(
        [sys.executable, "-m", "tolem", "migrate", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert first.returncode == 0, first.stderr
    assert '"0001_ledger.sql"' in first.stdout
    assert "private_database" in first.stderr
    pid_before = (data_dir / "pgdata" / "postmaster.pid").read_text().splitlines()[0]
    second = subprocess.run(
        [sys.executable, "-m", "tolem", "account", "create", "--email", "a@b.kg", "--name", "A", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert second.returncode == 0, second.stderr
    assert '"payment_code": "00' in second.stdout
    pid_after = (data_dir / "pgdata" / "postmaster.pid").read_text().splitlines()[0]
    assert pid_before == pid_after


async def test_a_second_instance_on_a_served_port_is_refused(database_url: str) -> None:
    """While one `tolem serve --workers 2` holds a port, another instance on that port, with one
    worker or several, exits non-zero naming --port and TOLEM_PORT (no traceback), and the first
    keeps answering."""
    port = free_port()
    env = clean_env(TOLEM_DATABASE_URL=database_url, TOLEM_LOG_FORMAT="json")
    first = subprocess.Popen(
        [sys.executable, "-m", "tolem", "serve", "--port", str(port), "--workers", "2"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        await wait_ready(f"http://127.0.0.1:{port}/readyz", first)
        for workers in ("2", "1"):
            second = subprocess.Popen(
                [sys.executable, "-m", "tolem", "serve", "--port", str(port), "--workers", workers],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,  # its workers, if it starts any, go with it
            )
            try:
                _, err = second.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(second.pid, signal.SIGKILL)
                second.communicate()
                raise AssertionError(f"a second instance with {workers} worker(s) kept running") from None
            message = err.decode()
            assert second.returncode not in (0, None), message
            assert f"127.0.0.1:{port}" in message
            assert "--port" in message
            assert "TOLEM_PORT" in message
            assert "Traceback" not in message
        ready = f"http://127.0.0.1:{port}/readyz"
        async with aiohttp.ClientSession() as session, session.get(ready) as response:
            assert response.status == 200
        assert first.poll() is None
    finally:
        first.terminate()
        first.communicate(timeout=15)


async def test_serve_under_another_currency_warns_and_credits_nothing(
    database_url: str, factory: Factory
) -> None:
    """`tolem serve` with TOLEM_CURRENCY=UZS on a KGS database says so and answers pays with 7."""
    await factory.provider("kiosk", protocol="osmp")
    account_id, code = await factory.account()
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "tolem", "serve", "--port", str(port)],
        env=clean_env(TOLEM_DATABASE_URL=database_url, TOLEM_LOG_FORMAT="json", TOLEM_CURRENCY="UZS"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        await wait_ready(f"http://127.0.0.1:{port}/readyz", process)
        query = {
            "command": "pay",
            "txn_id": "78",
            "account": code,
            "sum": "10.00",
            "txn_date": "20261129100000",
        }
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"http://127.0.0.1:{port}/gw/kiosk", params=query) as response,
        ):
            answer = await response.text()
        process.send_signal(signal.SIGTERM)
        out, _ = process.communicate(timeout=15)
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate()
    assert "<result>7</result><comment>currency refused</comment>" in answer
    assert '"event":"currency_mismatch"' in out.decode()
    assert await factory.balance(account_id) == 0
    assert await factory.count("SELECT count(*) FROM payments") == 0
