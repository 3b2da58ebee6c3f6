"""Security checks shared by the protocol tests: who reached the ledger, and what the logs said."""

import contextlib
import inspect
import logging
from collections.abc import Iterator
from typing import Any

import pytest
import structlog

from tolem.db.store import PgStore


def spy_on_store(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Records every call into the payment store (the layer that reads and moves money).

    The store still runs against the real database; the spy only notes the method names.
    """
    calls: list[str] = []
    for name, method in inspect.getmembers(PgStore, inspect.iscoroutinefunction):
        if name.startswith("_"):
            continue

        def recording(method: Any = method, name: str = name) -> Any:
            async def wrapper(self: PgStore, *args: Any, **kwargs: Any) -> Any:
                calls.append(name)
                return await method(self, *args, **kwargs)

            return wrapper

        monkeypatch.setattr(PgStore, name, recording())
    return calls


@contextlib.contextmanager
def captured_logs(caplog: pytest.LogCaptureFixture) -> Iterator[list[str]]:
    """Every structlog event and standard-library record emitted inside, rendered as text."""
    lines: list[str] = []
    caplog.set_level(logging.DEBUG)
    with structlog.testing.capture_logs() as events:
        yield lines
    lines.extend(repr(event) for event in events)
    # aiohttp's test server keeps an access log (with query strings); `tolem serve` turns it
    # off, which tests/cli/test_serve.py checks on the real process's output.
    lines.extend(
        record.getMessage() + repr(record.args)
        for record in caplog.records
        if record.name != "aiohttp.access"
    )


def assert_no_secrets(lines: list[str], *secrets: str) -> None:
    """No line holds any of the secrets, and the lines are not empty (something was logged)."""
    assert lines, "nothing was logged, so nothing was checked"
    for secret in secrets:
        assert len(secret) >= 6, "a short secret would match by accident"
        leaking = [line for line in lines if secret in line]
        assert not leaking, f"{secret[:2]}… appears in {leaking[:1]}"
