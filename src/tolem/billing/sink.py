"""What a sink is given and what it answers: the one contract between the outbox and a billing.

A sink knows one receiver's wire format and nothing of the database; the dispatcher knows the
database and nothing of any wire format. Keeping the seam this narrow is what lets a stand-in
HTTP server test a sink and a real PostgreSQL test the dispatcher, each without the other.
"""

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, Protocol
from uuid import UUID

EventType = Literal["payment.credited", "payment.reversed", "payment.voided"]


@dataclass(frozen=True, slots=True)
class Event:
    """One outbox event as a receiver sees it; `id` is stable across every attempt."""

    id: UUID
    type: EventType
    account_id: int
    account_ref: str | None  # the billing's client id of the account, when bound
    payer_ref: str | None  # the billing's payer (profile) id, when bound
    payment_code: str
    provider: str
    provider_txn: str
    payment_id: int
    amount_minor: int
    currency: str
    occurred_at: datetime  # when the credit, reversal or void committed
    created_at: datetime  # when the event was written (same transaction)


@dataclass(frozen=True, slots=True)
class Delivered:
    """The receiver applied the event (or proved it had applied it before)."""

    detail: str = ""


@dataclass(frozen=True, slots=True)
class Retry:
    """Not applied, may succeed later: receiver down, 5xx, 429, timeout, unknown outcome."""

    reason: str
    after: float | None = None  # seconds the receiver asked us to wait (Retry-After), if any


@dataclass(frozen=True, slots=True)
class Refused:
    """The receiver will not take events any more (webhook 410): dead-letter now, no retries."""

    reason: str


@dataclass(frozen=True, slots=True)
class Manual:
    """This sink does not carry this kind of event; it is kept for an operator to act on."""

    reason: str


Outcome = Delivered | Retry | Refused | Manual


@dataclass(slots=True)
class Progress:
    """What an earlier attempt of this event left at the receiver, saved before it is relied on.

    BILLmanager cannot find a payment by our event id, so its sink saves the payment id that
    payment.add returned (through `save`, committed before the next call) and resumes from it.
    """

    remote_ref: str | None
    save: Callable[[str], Awaitable[None]]


class Sink(Protocol):
    """A billing receiver. `name` labels metrics and the events list (webhook, billmanager, whmcs)."""

    name: str

    async def deliver(self, event: Event, progress: Progress) -> Outcome:
        """Try once; never raise for the receiver's failures, answer Retry instead."""
        ...

    async def close(self) -> None:
        """Release the HTTP session."""
        ...
