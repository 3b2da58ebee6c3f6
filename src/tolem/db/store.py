"""PostgreSQL implementation of the core's PaymentStore. Money moves only in sql functions."""

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

import asyncpg

from tolem.core import errors
from tolem.core.model import AccountStatus, CheckResult, PayCommand, Payment, PaymentState
from tolem.core.store import StoreOutcome
from tolem.db.lanes import Lanes
from tolem.db.pool import domain_error

_ACCEPT: Final = "SELECT * FROM tolem_accept($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
_PERFORM: Final = "SELECT * FROM tolem_perform($1, $2, $3, $4, $5)"
_CANCEL: Final = "SELECT * FROM tolem_cancel($1, $2, $3, $4)"
_VOID: Final = "SELECT * FROM tolem_void($1, $2, $3, $4)"
_EXPIRE_RESERVATIONS: Final = "SELECT tolem_expire_reservations($1, $2, $3, $4)"
_FIND_PAYER: Final = """
SELECT py.id AS payer_id, py.account_id, py.name, py.payment_code, a.status, l.currency
  FROM payers py
  JOIN accounts a ON a.id = py.account_id
  JOIN ledger_accounts l ON l.id = a.ledger_account_id
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

    outcome: StoreOutcome
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
    try:
        outcome = StoreOutcome(row["outcome"])
    except ValueError:
        # A word this code does not know: whatever the function did, we cannot say; retry.
        raise errors.TemporarilyUnavailable(f"unexpected outcome {row['outcome']!r}") from None
    payment = payment_from_row(row) if row["id"] is not None else None
    return StoredOutcome(outcome=outcome, replayed=row["replayed"], payment=payment)


class PgStore:
    """Runs each call as one statement on one of `lanes` connections, first come, first served
    (tolem.db.lanes says why); `lanes` defaults to the pool's size."""

    def __init__(self, pool: asyncpg.Pool, *, lanes: int | None = None) -> None:
        self._lanes = Lanes(pool, count=lanes if lanes is not None else pool.get_max_size())

    async def close(self) -> None:
        """Stops the lanes; calls running or still queued get TemporarilyUnavailable."""
        await self._lanes.close()

    async def _run(self, method: str, query: str, *args: Any) -> Any:
        """`conn.<method>(query, *args)` on the next free lane; database errors mapped."""
        try:
            return await self._lanes.run(method, query, *args)
        except Exception as exc:
            if (mapped := domain_error(exc)) is not None:
                raise mapped from exc
            raise

    async def find_payer(self, payment_code: str) -> tuple[CheckResult, AccountStatus] | None:
        row = await self._run("fetchrow", _FIND_PAYER, payment_code)
        if row is None:
            return None
        result = CheckResult(
            account_id=row["account_id"],
            payer_id=row["payer_id"],
            payer_name=row["name"],
            payment_code=row["payment_code"],
            currency=row["currency"],
        )
        return result, AccountStatus(row["status"])

    async def accept(
        self,
        provider_id: int,
        command: PayCommand,
        *,
        credit: bool,
        expire_before: datetime | None,
        expire_reason: int | None,
        currency: str | None,
    ) -> StoredOutcome:
        # A single statement is its own transaction: one round trip per pay.
        row = await self._run(
            "fetchrow",
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
            currency,
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
        row = await self._run(
            "fetchrow",
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
        row = await self._run("fetchrow", _CANCEL, provider_id, external_id, payment_id, reason)
        return _outcome(row)

    async def void(
        self,
        provider_id: int,
        external_id: str | None,
        payment_id: int | None,
        *,
        reason: int | None,
    ) -> StoredOutcome:
        row = await self._run("fetchrow", _VOID, provider_id, external_id, payment_id, reason)
        return _outcome(row)

    async def get_payment(
        self,
        provider_id: int,
        external_id: str | None,
        payment_id: int | None,
    ) -> Payment | None:
        row = await self._run("fetchrow", _GET_PAYMENT, provider_id, external_id, payment_id)
        return None if row is None else payment_from_row(row)

    async def statement(
        self,
        provider_id: int,
        since: datetime,
        until: datetime,
    ) -> list[Payment]:
        rows = await self._run("fetch", _STATEMENT, provider_id, since, until)
        return [payment_from_row(row) for row in rows]

    async def expire_reservations(
        self,
        provider_id: int,
        before: datetime,
        reason: int | None,
        limit: int,
    ) -> int:
        count = await self._run("fetchval", _EXPIRE_RESERVATIONS, provider_id, before, reason, limit)
        return int(count)
