"""Outbox test helpers: a receiver stand-in implementing the Sink protocol, and event queries."""

import asyncio
from collections.abc import Callable
from typing import Any

import asyncpg
import pytest

from tests.cli.conftest import _reset_logging, cli  # noqa: F401 - the CLI tests' fixtures
from tolem.billing.sink import Delivered, Event, Outcome, Progress


class StandIn:
    """A billing receiver: applies each event id once, answering what `answer` decides.

    `applied` counts how often each event id was applied (an idempotent receiver: a repeat of an
    id already applied is acknowledged without applying it again); `calls` counts every call.
    """

    def __init__(self, name: str = "standin", answer: Callable[[Event, int], Outcome] | None = None) -> None:
        self.name = name
        self._answer = answer or (lambda _event, _call: Delivered())
        self.calls: dict[str, int] = {}
        self.applied: dict[str, int] = {}
        self.order: list[tuple[int, str]] = []
        self.delay = 0.0
        self.closed = False

    async def deliver(self, event: Event, progress: Progress) -> Outcome:
        """Answers as told; applies a Delivered event once per id."""
        key = str(event.id)
        self.calls[key] = self.calls.get(key, 0) + 1
        if self.delay:
            await asyncio.sleep(self.delay)
        outcome = self._answer(event, self.calls[key])
        if isinstance(outcome, Delivered) and key not in self.applied:
            self.applied[key] = 1
            self.order.append((event.account_id, event.type))
        return outcome

    async def close(self) -> None:
        """Nothing to release."""
        self.closed = True


async def until(condition: Callable[[], bool], seconds: float, step: float = 0.01) -> bool:
    """Waits until `condition()` holds or `seconds` pass; whether it held."""
    deadline = asyncio.get_running_loop().time() + seconds
    while not condition() and asyncio.get_running_loop().time() < deadline:  # noqa: ASYNC110 - another party's state
        await asyncio.sleep(step)
    return condition()


async def events(pool: asyncpg.Pool, where: str = "true", *args: Any) -> list[asyncpg.Record]:
    """Outbox rows matching `where`, in order."""
    async with pool.acquire() as conn:
        return list(await conn.fetch(f"SELECT * FROM outbox_events WHERE {where} ORDER BY position", *args))


@pytest.fixture
def standin() -> StandIn:
    """A receiver that delivers everything."""
    return StandIn()
