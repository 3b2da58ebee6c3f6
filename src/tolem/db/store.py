"""PostgreSQL implementation of the core's PaymentStore. Money moves only in sql functions."""

import asyncio
import contextlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

import asyncpg
import structlog

from tolem.core import errors
from tolem.core.model import AccountStatus, CheckResult, PayCommand, Payment, PaymentState
from tolem.core.store import StoreOutcome
from tolem.db.pool import domain_error

_log = structlog.get_logger("tolem.store")

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
class _Call:
    """One statement waiting for a lane, and where its answer goes."""

    answer: asyncio.Future[Any]
    method: str
    query: str
    args: tuple[Any, ...]


# After these the session is gone (or in an unknown state): the lane lets the connection go.
_LOST_CONNECTION: Final = (asyncpg.InterfaceError, asyncpg.PostgresConnectionError, OSError, TimeoutError)


def _settle(call: _Call, exc: BaseException) -> None:
    if not call.answer.done():
        call.answer.set_exception(exc)


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
    """Runs each call as one statement on one of `lanes` connections, first come, first served.

    Each lane is a task that owns a pooled connection while calls are waiting and runs them one
    after another, sending the next statement as soon as the previous answer is in. A call's
    statement is therefore never more than one turn of the event loop behind the answer before
    it; handing the connection back to the pool and to the next waiting request between calls
    cost a turn more, and under load a turn is milliseconds (docs/performance.md has the
    measurements). The queue is strictly FIFO: asyncpg's own pool lets a newcomer take a freed
    connection ahead of a woken waiter, which had some requests wait over a second while most
    were answered at once. A lane gives its connection back when nothing is
    waiting, so the pool's other users (journal, provider reloads, admin) get one whenever the
    gateway is not saturated; the application sizes the pool with room for them.
    """

    def __init__(self, pool: asyncpg.Pool, *, lanes: int | None = None) -> None:
        self._pool = pool
        self._lane_count = lanes if lanes is not None else pool.get_max_size()
        self._calls: asyncio.Queue[_Call] = asyncio.Queue()
        self._lanes: list[asyncio.Task[None]] = []

    async def close(self) -> None:
        """Stops the lanes; calls running or still queued get TemporarilyUnavailable."""
        lanes, self._lanes = self._lanes, []
        for lane in lanes:
            lane.cancel()
        for lane in lanes:
            with contextlib.suppress(asyncio.CancelledError):
                await lane
        while not self._calls.empty():
            call = self._calls.get_nowait()
            if not call.answer.done():
                call.answer.set_exception(errors.TemporarilyUnavailable("store closed"))

    async def _run(self, method: str, query: str, *args: Any) -> Any:
        """`conn.<method>(query, *args)` on the next free lane; database errors mapped."""
        if not self._lanes:
            self._lanes = [
                asyncio.create_task(self._lane(), name=f"tolem-store-lane-{n}")
                for n in range(self._lane_count)
            ]
        answer: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._calls.put_nowait(_Call(answer, method, query, args))
        try:
            return await answer
        except Exception as exc:
            if (mapped := domain_error(exc)) is not None:
                raise mapped from exc
            raise

    async def _lane(self) -> None:
        while True:
            call = await self._calls.get()
            try:
                await self._serve(call)
            except asyncio.CancelledError:
                _settle(call, errors.TemporarilyUnavailable("store closed"))
                raise
            except Exception as exc:  # noqa: BLE001 - a lane that died would leave calls unserved
                _settle(call, exc)
                _log.exception("store_lane_error")

    async def _serve(self, call: _Call) -> None:
        """Runs `call` and every call queued behind it on one checkout of a connection."""
        try:
            conn = await self._pool.acquire()
        except Exception as exc:  # noqa: BLE001 - the caller gets it, the lane goes on
            _settle(call, exc)
            return
        try:
            while True:
                # A caller that gave up (its deadline passed) is skipped, never run late.
                if not call.answer.done() and not await self._answer(conn, call):
                    return  # the connection is gone; the pool replaces it
                if self._calls.empty():
                    return
                call = self._calls.get_nowait()
        finally:
            # A connection that died was already taken back by the pool.
            with contextlib.suppress(asyncpg.InterfaceError):
                await self._pool.release(conn)

    @staticmethod
    async def _answer(conn: asyncpg.Connection, call: _Call) -> bool:
        """Runs one call; whether the connection is still fit for the next."""
        try:
            result = await getattr(conn, call.method)(call.query, *call.args)
        except asyncio.CancelledError:
            # Closing: whether the statement committed is unknown.
            _settle(call, errors.TemporarilyUnavailable("store closed"))
            raise
        except _LOST_CONNECTION as exc:
            _settle(call, exc)
            return False
        except Exception as exc:  # noqa: BLE001 - the caller gets it
            _settle(call, exc)
            return True
        if not call.answer.done():
            call.answer.set_result(result)
        return True

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
