"""PostgreSQL implementation of the core's PaymentStore. Money moves only in sql functions."""

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

import asyncpg

from tolem.core.model import CheckResult, PayCommand, Payment, PaymentState
from tolem.db.pool import guarded

_ACCEPT: Final = "SELECT * FROM tolem_accept($1, $2, $3, $4, $5, $6, $7, $8, $9)"
_PERFORM: Final = "SELECT * FROM tolem_perform($1, $2, $3, $4, $5)"
_CANCEL: Final = "SELECT * FROM tolem_cancel($1, $2, $3, $4)"
_VOID: Final = "SELECT * FROM tolem_void($1, $2, $3, $4)"
_EXPIRE_RESERVATIONS: Final = "SELECT tolem_expire_reservations($1, $2, $3, $4)"
_FIND_PAYER: Final = """
SELECT py.id AS payer_id, py.account_id, py.name, py.payment_code, a.status
  FROM payers py JOIN accounts a ON a.id = py.account_id
 WHERE py.payment_code = $1
"""
PAYMENT_COLUMNS: Final = """
p.id, p.provider_id, p.external_id, p.account_id, p.payer_id, py.payment_code, p.amount_minor,
p.currency, p.state, p.provider_time, p.created_at, p.credited_at, p.cancelled_at, p.cancel_reason
"""
_GET_PAYMENT: Final = f"""
SELECT {PAYMENT_COLUMNS}
  FROM payments p JOIN payers py ON py.id = p.payer_id
 WHERE p.provider_id = $1
   AND ($2::text IS NULL OR p.external_id = $2)
   AND ($3::bigint IS NULL OR p.id = $3)
"""
_STATEMENT: Final = f"""
SELECT {PAYMENT_COLUMNS}
  FROM payments p JOIN payers py ON py.id = p.payer_id
 WHERE p.provider_id = $1 AND p.provider_time BETWEEN $2 AND $3
 ORDER BY p.provider_time, p.id
"""


@dataclass(frozen=True, slots=True)
class StoredOutcome:
    """Row of tolem_payment_result."""

    outcome: str
    replayed: bool
    payment: Payment | None


def payment_from_row(row: Any) -> Payment:
    """A Payment from a row carrying PAYMENT_COLUMNS."""
    return Payment(
        id=row["id"],
        provider_id=row["provider_id"],
        external_id=row["external_id"],
        account_id=row["account_id"],
        payer_id=row["payer_id"],
        payment_code=row["payment_code"],
        amount_minor=row["amount_minor"],
        currency=row["currency"],
        state=PaymentState(row["state"]),
        provider_time=row["provider_time"],
        created_at=row["created_at"],
        credited_at=row["credited_at"],
        cancelled_at=row["cancelled_at"],
        cancel_reason=row["cancel_reason"],
    )


def _outcome(row: Any) -> StoredOutcome:
    payment = payment_from_row(row) if row["id"] is not None else None
    return StoredOutcome(outcome=row["outcome"], replayed=row["replayed"], payment=payment)


class PgStore:
    """Each call takes a pooled connection for one transaction and gives it back."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool
        # asyncpg's pool hands a freed connection to whichever coroutine asks next, and a woken
        # waiter that lost the race queues again at the back: under load some requests waited
        # over a second while others took 4 ms. A semaphore admits waiters strictly in order.
        self._turns = asyncio.Semaphore(pool.get_max_size())

    @asynccontextmanager
    async def _connection(self) -> AsyncIterator[asyncpg.Connection]:
        async with guarded(), self._turns, self._pool.acquire() as conn:
            yield conn

    async def find_payer(self, payment_code: str) -> tuple[CheckResult, str] | None:
        async with self._connection() as conn:
            row = await conn.fetchrow(_FIND_PAYER, payment_code)
        if row is None:
            return None
        result = CheckResult(
            account_id=row["account_id"],
            payer_id=row["payer_id"],
            payer_name=row["name"],
            payment_code=row["payment_code"],
        )
        return result, row["status"]

    async def accept(
        self,
        provider_id: int,
        command: PayCommand,
        *,
        credit: bool,
        expire_before: datetime | None,
        expire_reason: int | None,
    ) -> StoredOutcome:
        # A single statement is its own transaction: one round trip per pay.
        async with self._connection() as conn:
            row = await conn.fetchrow(
                _ACCEPT,
                provider_id,
                command.external_id,
                command.payment_code,
                command.amount_minor,
                command.provider_time,
                command.provider_time_raw,
                credit,
                expire_before,
                expire_reason,
            )
        return _outcome(row)

    async def perform(
        self,
        provider_id: int,
        external_id: str | None,
        payment_id: int | None,
        *,
        expire_before: datetime | None,
        expire_reason: int | None,
    ) -> StoredOutcome:
        async with self._connection() as conn:
            row = await conn.fetchrow(
                _PERFORM,
                provider_id,
                external_id,
                payment_id,
                expire_before,
                expire_reason,
            )
        return _outcome(row)

    async def cancel(
        self,
        provider_id: int,
        external_id: str | None,
        payment_id: int | None,
        *,
        reason: int | None,
    ) -> StoredOutcome:
        async with self._connection() as conn:
            row = await conn.fetchrow(_CANCEL, provider_id, external_id, payment_id, reason)
        return _outcome(row)

    async def void(
        self,
        provider_id: int,
        external_id: str | None,
        payment_id: int | None,
        *,
        reason: int | None,
    ) -> StoredOutcome:
        async with self._connection() as conn:
            row = await conn.fetchrow(_VOID, provider_id, external_id, payment_id, reason)
        return _outcome(row)

    async def get_payment(
        self,
        provider_id: int,
        external_id: str | None,
        payment_id: int | None,
    ) -> Payment | None:
        async with self._connection() as conn:
            row = await conn.fetchrow(_GET_PAYMENT, provider_id, external_id, payment_id)
        return None if row is None else payment_from_row(row)

    async def statement(
        self,
        provider_id: int,
        since: datetime,
        until: datetime,
    ) -> list[Payment]:
        async with self._connection() as conn:
            rows = await conn.fetch(_STATEMENT, provider_id, since, until)
        return [payment_from_row(row) for row in rows]

    async def expire_reservations(
        self,
        provider_id: int,
        before: datetime,
        reason: int | None,
        limit: int,
    ) -> int:
        async with self._connection() as conn:
            count = await conn.fetchval(_EXPIRE_RESERVATIONS, provider_id, before, reason, limit)
        return int(count)
