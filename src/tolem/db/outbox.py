"""The outbox's delivery side: claiming events under a lease, settling attempts, operators' retries.

Every function is one short statement that commits on its own. A claim commits its lease before
any HTTP request is made, so no transaction (and no row lock) is ever held while a receiver
answers; a dispatcher that dies mid-delivery leaves a lease that simply runs out. `attempts` is
raised by each claim and serves as the claim's fencing token: a dispatcher whose lease ran out
and was taken over cannot settle the event any more (its `attempts` no longer matches).
"""

import base64
import random
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, Literal
from uuid import UUID

from tolem.billing.sink import Delivered, Event, Manual, Outcome, Refused, Retry
from tolem.core.payment_codes import mask

State = Literal["pending", "delivered", "dead", "manual"]
STATES: Final[tuple[State, ...]] = ("pending", "delivered", "dead", "manual")

# Backoff after a failed attempt: full jitter over a window that doubles from one second up to
# ten minutes, so receivers coming back from an outage are not hit by every dispatcher at once.
BACKOFF_BASE_SECONDS: Final = 1.0
BACKOFF_CAP_SECONDS: Final = 600.0
_MAX_ERROR: Final = 500

_EVENT_COLUMNS: Final = """
e.position, e.id, e.type, e.payment_id, e.account_id, a.external_ref AS account_ref,
py.external_ref AS payer_ref, py.payment_code, pr.name AS provider, p.external_id AS provider_txn,
e.amount_minor, e.currency, e.occurred_at, e.created_at, e.attempts, e.remote_ref
"""
_EVENT_JOINS: Final = """
  JOIN payments p ON p.id = e.payment_id
  JOIN payers py ON py.id = e.payer_id
  JOIN accounts a ON a.id = e.account_id
  JOIN providers pr ON pr.id = p.provider_id
"""
# The oldest due events whose account has no older pending event (leased elsewhere, waiting
# for its backoff, or due itself): one event per account at most, so an account's events are
# delivered in order while different accounts proceed side by side. SKIP LOCKED lets two
# dispatchers claim at once without waiting for each other; a row another one just leased is
# re-checked on its newest version and dropped.
_CLAIM: Final = f"""
WITH due AS (
    SELECT e.position
      FROM outbox_events e
     WHERE e.state = 'pending'
       AND e.next_attempt_at <= now()
       AND (e.lease_until IS NULL OR e.lease_until <= now())
       AND NOT EXISTS (
           SELECT 1 FROM outbox_events older
            WHERE older.account_id = e.account_id AND older.state = 'pending'
              AND older.position < e.position)
     ORDER BY e.position
     LIMIT $1
       FOR UPDATE SKIP LOCKED
), claimed AS (
    UPDATE outbox_events e
       SET lease_until = now() + make_interval(secs => $2), attempts = e.attempts + 1, sink = $3
      FROM due
     WHERE e.position = due.position
    RETURNING e.*
)
SELECT {_EVENT_COLUMNS}
  FROM claimed e {_EVENT_JOINS}
 ORDER BY e.position
"""
_DELIVERED: Final = """
UPDATE outbox_events
   SET state = 'delivered', delivered_at = now(), next_attempt_at = NULL, lease_until = NULL,
       last_error = NULL
 WHERE position = $1 AND attempts = $2 AND state = 'pending'
"""
# Dead once the event has waited its whole window since it was queued; else back in line.
_RETRY: Final = """
UPDATE outbox_events
   SET state = CASE WHEN queued_at + make_interval(secs => $4) <= now() THEN 'dead' ELSE 'pending' END,
       next_attempt_at = CASE WHEN queued_at + make_interval(secs => $4) <= now() THEN NULL
                              ELSE now() + make_interval(secs => $3) END,
       lease_until = NULL, last_error = $5
 WHERE position = $1 AND attempts = $2 AND state = 'pending'
RETURNING state
"""
_FINAL: Final = """
UPDATE outbox_events
   SET state = $3, next_attempt_at = NULL, lease_until = NULL, last_error = $4
 WHERE position = $1 AND attempts = $2 AND state = 'pending'
"""
# What operators see of an event beside its payload: where its delivery stands.
_LISTED_COLUMNS: Final = (
    f"{_EVENT_COLUMNS}, e.state, e.last_error, e.next_attempt_at, e.delivered_at, e.sink, e.queued_at"
)
_LIST: Final = f"""
SELECT {_LISTED_COLUMNS}
  FROM outbox_events e {_EVENT_JOINS}
 WHERE ($1::text IS NULL OR e.state = $1)
 ORDER BY e.position DESC
 LIMIT $2
"""
_REQUEUE: Final = """
UPDATE outbox_events
   SET state = 'pending', next_attempt_at = now(), lease_until = NULL, queued_at = now()
 WHERE {where}
RETURNING id
"""


@dataclass(frozen=True, slots=True)
class Claimed:
    """An event leased to one dispatcher: what to send, and the token to settle it with."""

    position: int
    attempt: int
    remote_ref: str | None
    event: Event


@dataclass(frozen=True, slots=True)
class Listed:
    """An event as operators see it: the code masked."""

    id: UUID
    position: int
    type: str
    state: State
    payment_id: int
    account_id: int
    code_masked: str
    provider: str
    provider_txn: str
    amount_minor: int
    currency: str
    attempts: int
    last_error: str | None
    next_attempt_at: datetime | None
    delivered_at: datetime | None
    sink: str | None
    created_at: datetime
    queued_at: datetime
    remote_ref: str | None


# Not delivered, and not leased to a dispatcher right now.
_RETRYABLE: Final = "id = $1 AND state <> 'delivered' AND (lease_until IS NULL OR lease_until <= now())"


class NotRetryable(Exception):
    """No such event, or it was delivered already."""


def event_from_row(row: Any) -> Event:
    """A sink's Event from a row carrying _EVENT_COLUMNS."""
    return Event(
        id=row["id"],
        type=row["type"],
        account_id=row["account_id"],
        account_ref=row["account_ref"],
        payer_ref=row["payer_ref"],
        payment_code=row["payment_code"],
        provider=row["provider"],
        provider_txn=row["provider_txn"],
        payment_id=row["payment_id"],
        amount_minor=row["amount_minor"],
        currency=row["currency"].strip(),
        occurred_at=row["occurred_at"],
        created_at=row["created_at"],
    )


async def claim(source: Any, *, limit: int, lease_seconds: float, sink: str) -> list[Claimed]:
    """Leases up to `limit` due events (at most one per account, oldest first) for `sink`."""
    rows = await source.fetch(_CLAIM, limit, lease_seconds, sink)
    return [
        Claimed(
            position=r["position"], attempt=r["attempts"], remote_ref=r["remote_ref"], event=event_from_row(r)
        )
        for r in rows
    ]


def backoff(attempt: int, *, rng: random.Random | None = None) -> float:
    """Seconds to wait after failed attempt number `attempt` (1-based): full jitter, capped."""
    window = min(BACKOFF_CAP_SECONDS, BACKOFF_BASE_SECONDS * 2 ** min(max(attempt - 1, 0), 30))
    return (rng or random).uniform(0, window)


def _error(text: str) -> str:
    return (text or "-")[:_MAX_ERROR]


async def settle(source: Any, claimed: Claimed, outcome: Outcome, *, give_up_seconds: float) -> State | None:
    """Records an attempt's outcome; the event's new state, or None when the lease was lost."""
    position, attempt = claimed.position, claimed.attempt
    if isinstance(outcome, Delivered):
        done = await source.execute(_DELIVERED, position, attempt)
        return "delivered" if done == "UPDATE 1" else None
    if isinstance(outcome, Retry):
        delay = backoff(attempt)
        if outcome.after is not None:
            delay = max(delay, min(outcome.after, BACKOFF_CAP_SECONDS))
        reason = _error(outcome.reason)
        state: State | None = await source.fetchval(_RETRY, position, attempt, delay, give_up_seconds, reason)
        return state
    final: State = "dead" if isinstance(outcome, Refused) else "manual"
    assert isinstance(outcome, Refused | Manual)
    done = await source.execute(_FINAL, position, attempt, final, _error(outcome.reason))
    return final if done == "UPDATE 1" else None


class LeaseLost(Exception):
    """Another dispatcher took the event over; this attempt must not go on at the receiver."""


async def save_ref(source: Any, position: int, attempt: int, ref: str) -> None:
    """Stores what an attempt left at the receiver; committed at once, before it is relied on.

    Fenced like settle: an attempt whose lease ran out and was taken over cannot overwrite the
    newer attempt's reference, and learns so before its next call to the receiver.
    """
    status = await source.execute(
        "UPDATE outbox_events SET remote_ref = $3"
        " WHERE position = $1 AND attempts = $2 AND state = 'pending'",
        position,
        attempt,
        ref,
    )
    if status != "UPDATE 1":
        raise LeaseLost(f"outbox event at position {position} was taken over")


def _listed(r: Any) -> Listed:
    return Listed(
        id=r["id"],
        position=r["position"],
        type=r["type"],
        state=r["state"],
        payment_id=r["payment_id"],
        account_id=r["account_id"],
        code_masked=mask(r["payment_code"]) or "",
        provider=r["provider"],
        provider_txn=r["provider_txn"],
        amount_minor=r["amount_minor"],
        currency=r["currency"].strip(),
        attempts=r["attempts"],
        last_error=r["last_error"],
        next_attempt_at=r["next_attempt_at"],
        delivered_at=r["delivered_at"],
        sink=r["sink"],
        created_at=r["created_at"],
        queued_at=r["queued_at"],
        remote_ref=r["remote_ref"],
    )


async def list_events(source: Any, *, state: State | None = None, limit: int = 50) -> list[Listed]:
    """Events, newest first, optionally of one state."""
    return [_listed(r) for r in await source.fetch(_LIST, state, limit)]


async def retry(source: Any, event_id: UUID) -> None:
    """Puts a dead, manual or waiting event back in line now; its attempts are kept."""
    found = await source.fetchval(_REQUEUE.format(where=_RETRYABLE), event_id)
    if found is None:
        state = await source.fetchval("SELECT state FROM outbox_events WHERE id = $1", event_id)
        if state is None:
            raise NotRetryable(f"no event {event_id}")
        why = "was delivered" if state == "delivered" else "is being delivered right now"
        raise NotRetryable(f"event {event_id} {why}")


async def retry_dead(source: Any) -> int:
    """Puts every dead event back in line now; how many."""
    rows = await source.fetch(_REQUEUE.format(where="state = 'dead'"))
    return len(rows)


# An account's events, reached through its payments: outbox_events has no index on account_id
# for every state (only for pending ones), while payments (account_id, created_at) and the
# events' unique (payment_id, type) are indexed, so this reads only the account's own rows.
_ACCOUNT_EVENTS: Final = f"""
SELECT {_LISTED_COLUMNS}
  FROM payments mine
  JOIN outbox_events e ON e.payment_id = mine.id {_EVENT_JOINS}
 WHERE mine.account_id = $1
 ORDER BY e.position DESC
 LIMIT $2
"""


async def account_events(source: Any, account_id: int, *, limit: int) -> list[Listed]:
    """The account's newest `limit` events, newest first."""
    return [_listed(r) for r in await source.fetch(_ACCOUNT_EVENTS, account_id, limit)]


@dataclass(frozen=True, slots=True)
class Backlog:
    """What operators watch: pending events and the age of the oldest."""

    pending: int
    oldest_seconds: float


async def backlog(source: Any) -> Backlog:
    """Pending count and the oldest pending event's age (0 when none)."""
    row = await source.fetchrow(
        "SELECT count(*) AS pending, coalesce(extract(epoch FROM now() - min(created_at)), 0) AS age "
        "FROM outbox_events WHERE state = 'pending'"
    )
    return Backlog(pending=int(row["pending"]), oldest_seconds=float(row["age"]))


# --- the pull feed ----------------------------------------------------------------------------

# An event is handed out only when its transaction is older than every transaction still
# running (the snapshot's xmin): none of those can commit an event that sorts before it any
# more, so paging by (xid, position) never skips an event that commits late, nor repeats one.
_FEED: Final = f"""
SELECT {_EVENT_COLUMNS}, e.xid::text AS xid
  FROM outbox_events e {_EVENT_JOINS}
 WHERE e.xid < pg_snapshot_xmin(pg_current_snapshot())
   AND ($1::text IS NULL OR (e.xid, e.position) > ($1::text::xid8, $2::bigint))
 ORDER BY e.xid, e.position
 LIMIT $3
"""


class BadCursor(ValueError):
    """A cursor this feed did not hand out."""


def encode_cursor(xid: int, position: int) -> str:
    """The opaque cursor after the event of transaction `xid` at `position`."""
    return base64.urlsafe_b64encode(f"{xid}:{position}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[int, int]:
    """(xid, position) of a cursor; raises BadCursor."""
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
        xid, position = (int(part) for part in text.split(":"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadCursor("not a cursor this feed handed out") from exc
    if xid < 0 or position < 1 or xid >= 2**63:
        raise BadCursor("not a cursor this feed handed out")
    return xid, position


async def feed(source: Any, *, after: str | None, limit: int) -> tuple[list[Event], str | None]:
    """Events after `after` in feed order, and the cursor to continue from (unchanged when none)."""
    xid, position = decode_cursor(after) if after is not None else (None, None)
    rows = await source.fetch(_FEED, None if xid is None else str(xid), position, limit)
    if not rows:
        return [], after
    last = rows[-1]
    return [event_from_row(r) for r in rows], encode_cursor(int(last["xid"]), last["position"])
