"""The service's retry policy, with a store that fails on purpose (no database needed)."""

from datetime import datetime
from typing import Any

import pytest

from tolem.core import errors
from tolem.core.model import PayCommand, Provider, WireProtocol
from tolem.core.service import MAX_ATTEMPTS, Observer, PaymentService


class FlakyStore:
    """Raises RetryableConflict `failures` times, then reports an unknown code."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.calls = 0

    async def accept(self, *_: Any, **__: Any) -> Any:
        """Fails as configured."""
        self.calls += 1
        if self.calls <= self.failures:
            raise errors.RetryableConflict("deadlock")

        class Row:
            outcome, replayed, payment = "unknown_code", False, None

        return Row()

    async def find_payer(self, code: str) -> None:
        """Never reached by these tests."""

    async def perform(self, *_: Any, **__: Any) -> Any:
        """Never reached by these tests."""

    async def cancel(self, *_: Any, **__: Any) -> Any:
        """Never reached by these tests."""

    async def get_payment(self, *_: Any) -> None:
        """Never reached by these tests."""

    async def statement(self, *_: Any) -> list[Any]:
        """Never reached by these tests."""
        return []


class Counting(Observer):
    """Counts retries."""

    def __init__(self) -> None:
        self.retries = 0

    def retried(self) -> None:
        """One more."""
        self.retries += 1


PROVIDER = Provider(1, "p", WireProtocol.OSMP, True, (), None, None, None, None, None, None, "KGS", None)
COMMAND = PayCommand("t", "12345", 100, datetime(2026, 1, 1), None)


async def test_retries_then_succeeds() -> None:
    """Fewer failures than the bound are rerun transparently and counted."""
    store, observer = FlakyStore(MAX_ATTEMPTS - 1), Counting()
    with pytest.raises(errors.UnknownCode):
        await PaymentService(store, observer=observer).pay(PROVIDER, COMMAND)  # type: ignore[arg-type]
    assert store.calls == MAX_ATTEMPTS
    assert observer.retries == MAX_ATTEMPTS - 1


async def test_gives_up_as_temporarily_unavailable() -> None:
    """Past the bound the caller is told to retry later, never a final answer."""
    store = FlakyStore(100)
    with pytest.raises(errors.TemporarilyUnavailable):
        await PaymentService(store).pay(PROVIDER, COMMAND)  # type: ignore[arg-type]
    assert store.calls == MAX_ATTEMPTS


async def test_unknown_outcome_word_is_temporary() -> None:
    """An outcome the service does not know is never turned into a final refusal."""

    class Odd(FlakyStore):
        async def accept(self, *_: Any, **__: Any) -> Any:
            class Row:
                outcome, replayed, payment = "something_new", False, None

            return Row()

    with pytest.raises(errors.TemporarilyUnavailable):
        await PaymentService(Odd(0)).pay(PROVIDER, COMMAND)  # type: ignore[arg-type]
