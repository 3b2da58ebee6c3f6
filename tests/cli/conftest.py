"""Running the real `tolem` entry point against the test database."""

import asyncio
import json
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import structlog


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
        code = await asyncio.to_thread(main, list(args))
        captured = capsys.readouterr()
        return Run(code, captured.out, captured.err)

    return run
