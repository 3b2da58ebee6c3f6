"""The service as a process: `tolem serve` with workers, and the private database default."""

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from tests.conftest import Factory
from tolem.db.embedded import stop_cluster


def free_port() -> int:
    """An unused loopback port."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def clean_env(**extra: str) -> dict[str, str]:
    """The environment without any TOLEM_ setting, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOLEM_")}
    env.update(extra)
    return env


async def wait_ready(url: str, process: subprocess.Popen[bytes], seconds: float = 20) -> None:
    """Polls until the URL answers 200, failing early if the process died."""
    deadline = asyncio.get_running_loop().time() + seconds
    async with aiohttp.ClientSession() as session:
        while asyncio.get_running_loop().time() < deadline:
            assert process.poll() is None, "server exited"
            try:
                async with session.get(url) as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientConnectionError:
                pass
            await asyncio.sleep(0.1)
    raise AssertionError(f"{url} not ready in {seconds}s")


async def test_serve_with_two_workers(database_url: str) -> None:
    """Two worker processes share one port, answer /readyz, and stop cleanly on SIGTERM."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "tolem", "serve", "--port", str(port), "--workers", "2"],
        env=clean_env(TOLEM_DATABASE_URL=database_url, TOLEM_LOG_FORMAT="json"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        await wait_ready(f"http://127.0.0.1:{port}/readyz", process)
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


@pytest.fixture
def data_dir() -> Iterator[Path]:
    """A data directory the postgres user can reach (pytest's tmp_path is private to root)."""
    base = Path(tempfile.mkdtemp(prefix="tolem-private-"))
    os.chmod(base, 0o755)  # noqa: S103 - the cluster's owner must be able to enter it
    try:
        yield base / ".tolem"
    finally:
        stop_cluster(base / ".tolem" / "pgdata", mode="immediate")
        shutil.rmtree(base, ignore_errors=True)


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
