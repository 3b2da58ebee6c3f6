"""Running the real `tolem` entry point against the test database."""

import asyncio
import json
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest
import structlog

from tolem.db.embedded import stop_cluster


@dataclass
class Run:
    """Exit status and output of one CLI call."""

    code: int
    out: str
    err: str

    def json(self) -> Any:
        """stdout parsed as JSON."""
        return json.loads(self.out)


Cli = Callable[..., Awaitable[Run]]


def one_error_line(run: Run) -> None:
    """Bad input: non-zero exit and exactly one line on stderr."""
    assert run.code != 0
    lines = [line for line in run.err.splitlines() if line.strip()]
    assert len(lines) == 1, run.err
    assert lines[0].startswith("tolem: error: ")


async def count(pool: asyncpg.Pool, table: str) -> int:
    """Rows in a table."""
    async with pool.acquire() as conn:
        return int(await conn.fetchval(f"SELECT count(*) FROM {table}"))


@pytest.fixture(autouse=True)
def _reset_logging() -> Iterator[None]:
    """The CLI configures structlog for the process; give the next test a clean default."""
    yield
    structlog.reset_defaults()


@pytest.fixture
def cli(database_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Cli:
    """Calls tolem.cli.main in a thread (it runs its own event loop) with the test database."""
    from tolem.cli import main

    monkeypatch.setenv("TOLEM_DATABASE_URL", database_url)
    monkeypatch.setenv("TOLEM_LOG_FORMAT", "json")

    async def run(*args: str) -> Run:
        capsys.readouterr()
        saved = structlog.get_config()
        try:
            code = await asyncio.to_thread(main, list(args))
        finally:
            # main configures logging for a whole process (caching loggers on first use, on
            # streams captured for this call); the test goes on in this one, and its requests'
            # loggers must not bind to that configuration for the rest of the session.
            structlog.configure(**saved)
        captured = capsys.readouterr()
        return Run(code, captured.out, captured.err)

    return run


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


@pytest.fixture
def data_dir() -> Iterator[Path]:
    """A data directory the postgres user can reach (pytest's tmp_path is private to root)."""
    base = Path(tempfile.mkdtemp(prefix="tolem-private-"))
    os.chmod(base, 0o755)  # noqa: S103 - the cluster's owner must be able to enter it
    try:
        yield base / "tolem"
    finally:
        stop_cluster(base / "tolem" / "pgdata", mode="immediate")
        shutil.rmtree(base, ignore_errors=True)
