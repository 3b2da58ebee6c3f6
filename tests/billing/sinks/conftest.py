"""Events built directly (sinks know no database) and a Progress that remembers what was saved."""

import socket
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest

from tolem.billing.sink import Event, EventType, Progress


def make_event(type_: EventType = "payment.credited", **fields: Any) -> Event:
    """One outbox event as the dispatcher would hand it over; any field can be overridden."""
    values: dict[str, Any] = {
        "id": uuid.uuid4(),
        "type": type_,
        "account_id": 42,
        "account_ref": "1977",
        "payer_ref": "310",
        "payment_code": "001234567897",
        "provider": "elsom",
        "provider_txn": "T-9001",
        "payment_id": 5001,
        "amount_minor": 15050,
        "currency": "KGS",
        "occurred_at": datetime(2026, 12, 1, 20, 30, 5, tzinfo=UTC),
        "created_at": datetime(2026, 12, 1, 20, 30, 5, 120000, tzinfo=UTC),
    }
    values.update(fields)
    return Event(**values)


@dataclass
class Saved:
    """What the dispatcher would commit for one event between attempts."""

    remote_ref: str | None = None
    saves: list[str] = field(default_factory=list)
    # Calls the receiver had seen when each save happened (proves save-before-setpaid).
    seen_at_save: list[int] = field(default_factory=list)
    calls: Callable[[], int] = lambda: 0

    def progress(self) -> Progress:
        async def save(ref: str) -> None:
            self.saves.append(ref)
            self.seen_at_save.append(self.calls())
            self.remote_ref = ref

        return Progress(remote_ref=self.remote_ref, save=save)


@pytest.fixture
def saved() -> Saved:
    """A fresh per-event progress store."""
    return Saved()


@pytest.fixture
def closed_port() -> int:
    """A local port nothing listens on (bound, then released), for connection-refused cases."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
