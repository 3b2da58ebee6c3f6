"""The 12-hour rule: a transaction not performed within 12 hours of its Payme `time` is cancelled
with reason 4, by the call that finds it (Perform, a repeated Create) or by the sweep."""

import asyncio
import os
import sys
from datetime import UTC, datetime, timedelta

import asyncpg

from tests.conftest import ROOT, Factory
from tests.http.payme.conftest import Clock, Payme, err, ok
from tolem.cli.sweep import sweep_once
from tolem.core.model import PayCommand, PaymentState, Provider
from tolem.core.service import PaymentService
from tolem.db.store import PgStore
from tolem.protocols.payme import codes
from tolem.protocols.payme.sweep import sweep_provider

TXN = "6400a8b2c3d4e5f6a7b8c9d2"
LIMIT = timedelta(hours=12)
MS = timedelta(milliseconds=1)


async def _expect_timed_out(payme: Payme, txn: str) -> None:
    stored = await payme.stored(txn)
    assert (stored["state"], stored["reason"]) == ("voided", 4)
    assert await payme.check(txn) == ok(
        {
            "create_time": stored["create_time"],
            "perform_time": 0,
            "cancel_time": stored["cancel_time"],
            "transaction": stored["transaction"],
            "state": -1,
            "reason": 4,
        }
    )


async def test_perform_exactly_at_the_limit_still_credits(
    payme: Payme, account: tuple[int, str], clock: Clock
) -> None:
    """Twelve hours to the millisecond after `time` the transaction may still be performed."""
    account_id, code = account
    await payme.create(TXN, code, 500, clock.ms())
    clock.advance(LIMIT)
    assert (await payme.perform(TXN))["result"]["state"] == 2
    assert await payme.money(account_id) == (500, 1, 1)


async def test_perform_after_the_limit_cancels_with_reason_4(
    payme: Payme, account: tuple[int, str], clock: Clock
) -> None:
    """One millisecond past 12 hours Perform answers -31008 (timed out) and the transaction is -1/4."""
    account_id, code = account
    await payme.create(TXN, code, 500, clock.ms())
    clock.advance(LIMIT + MS)
    timed_out = err(codes.timed_out())
    assert await payme.perform(TXN) == timed_out
    assert timed_out["error"]["code"] == -31008
    assert timed_out["error"]["message"]["en"] == "The transaction timed out and was cancelled"
    await _expect_timed_out(payme, TXN)
    assert await payme.perform(TXN) == timed_out
    assert await payme.money(account_id) == (0, 1, 0)


async def test_repeat_create_after_the_limit_cancels_with_reason_4(
    payme: Payme, account: tuple[int, str], clock: Clock
) -> None:
    """A repeated Create past the limit answers -31008 and cancels the reservation (reason 4)."""
    account_id, code = account
    time_ms = clock.ms()
    first = await payme.create(TXN, code, 500, time_ms)
    clock.advance(LIMIT)
    assert await payme.create(TXN, code, 500, time_ms) == first
    clock.advance(MS)
    assert await payme.create(TXN, code, 500, time_ms) == err(codes.timed_out())
    await _expect_timed_out(payme, TXN)
    assert await payme.money(account_id) == (0, 1, 0)


async def test_new_create_already_past_the_limit_stores_nothing(
    payme: Payme, account: tuple[int, str], clock: Clock
) -> None:
    """A Create whose `time` is over 12 hours old is -31008 and leaves no transaction behind."""
    account_id, code = account
    stale = clock.ms(-(LIMIT + MS))
    assert await payme.create(TXN, code, 500, stale) == err(codes.timed_out())
    assert await payme.check(TXN) == err(codes.transaction_not_found())
    statement = await payme.call("GetStatement", {"from": stale - 1, "to": clock.ms()})
    assert statement == ok({"transactions": []})
    assert await payme.money(account_id) == (0, 0, 0)


async def test_cancel_after_expiry_answers_the_expiry(
    payme: Payme, account: tuple[int, str], clock: Clock
) -> None:
    """Payme's own timeout cancel (reason 4) after we expired it answers our stored cancel."""
    account_id, code = account
    await payme.create(TXN, code, 500, clock.ms())
    clock.advance(LIMIT + MS)
    await payme.perform(TXN)
    stored = await payme.stored(TXN)
    assert await payme.cancel(TXN, 4) == ok(
        {"transaction": stored["transaction"], "cancel_time": stored["cancel_time"], "state": -1}
    )
    assert await payme.money(account_id) == (0, 1, 0)


async def test_performed_transaction_never_times_out(
    payme: Payme, account: tuple[int, str], clock: Clock
) -> None:
    """A performed transaction repeats its answer days later; the limit only concerns state 1."""
    account_id, code = account
    await payme.create(TXN, code, 500, clock.ms())
    first = await payme.perform(TXN)
    clock.advance(timedelta(days=3))
    assert await payme.perform(TXN) == first
    assert (await payme.check(TXN))["result"]["state"] == 2
    assert await payme.money(account_id) == (500, 1, 1)


# --- the sweep --------------------------------------------------------------------------------


async def _reserve_many(
    service: PaymentService, provider: Provider, code: str, stamps: list[datetime]
) -> None:
    for n, stamp in enumerate(stamps):
        await service.reserve(provider, PayCommand(f"r-{n:03d}", code, 100, stamp, str(n)))


async def test_sweep_voids_only_stale_reservations(
    payme: Payme, service: PaymentService, provider: Provider, account: tuple[int, str], clock: Clock
) -> None:
    """The sweep voids reservations past 12 hours (reason 4) and leaves fresh or performed ones."""
    account_id, code = account
    await payme.create("performed", code, 500, clock.ms())
    await payme.perform("performed")
    clock.advance(timedelta(days=1))  # performed long ago by now: never swept
    now = clock()
    await _reserve_many(service, provider, code, [now - LIMIT - MS, now - LIMIT, now - timedelta(days=2)])
    voided = await sweep_once(payme.factory.pool, now=clock)
    assert voided == {"payme": 2}
    await _expect_timed_out(payme, "r-000")
    await _expect_timed_out(payme, "r-002")
    assert (await payme.stored("r-001"))["state"] == "reserved"
    assert (await payme.stored("performed"))["state"] == "credited"
    assert await sweep_once(payme.factory.pool, now=clock) == {"payme": 0}
    assert await payme.money(account_id) == (500, 4, 1)


async def test_sweep_is_bounded_per_batch(
    service: PaymentService, factory: Factory, provider: Provider, account: tuple[int, str]
) -> None:
    """One batch voids at most `batch` rows; a pass stops after `max_batches`, the next goes on."""
    _, code = account
    now = datetime.now(UTC)
    await _reserve_many(service, provider, code, [now - timedelta(hours=13)] * 10)
    assert await service.expire_reservations(provider, before=now - LIMIT, reason=4, limit=3) == 3
    assert await sweep_provider(service, provider, now, batch=2, max_batches=2) == 4
    assert await sweep_provider(service, provider, now, batch=2) == 3
    voided = "SELECT count(*) FROM payments WHERE state = 'voided' AND cancel_reason = 4"
    assert await factory.count(voided) == 10


async def test_concurrent_sweeps_void_each_row_once(
    database_url: str, factory: Factory, provider: Provider, account: tuple[int, str]
) -> None:
    """Two sweeps on their own connections over the same 150 stale rows void each exactly once."""
    _, code = account
    now = datetime.now(UTC)
    async with factory.pool.acquire() as conn:
        await conn.execute(
            "SELECT tolem_accept($1, 'c-' || n, $2, 100, $3, NULL, false) FROM generate_series(1, 150) n",
            provider.id,
            code,
            now - timedelta(hours=13),
        )
    pools = [await asyncpg.create_pool(database_url, min_size=1, max_size=1) for _ in range(2)]
    try:
        services = [PaymentService(PgStore(pool)) for pool in pools]
        counts = await asyncio.gather(*(sweep_provider(s, provider, now, batch=7) for s in services))
    finally:
        for pool in pools:
            await pool.close()
    # Each sweep counts only rows it voided itself: any row voided twice would push the sum
    # past 150, any row skipped for good would leave it short.
    assert sum(counts) == 150
    assert await factory.count("SELECT count(*) FROM payments WHERE state = 'voided'") == 150


async def test_sweep_leaves_a_row_being_performed_to_the_perform(
    service: PaymentService, factory: Factory, provider: Provider, account: tuple[int, str]
) -> None:
    """A row locked by an operation in progress is skipped, not waited for; the rest are voided."""
    _, code = account
    now = datetime.now(UTC)
    await _reserve_many(service, provider, code, [now - timedelta(hours=13)] * 3)
    async with factory.pool.acquire() as holder, holder.transaction():
        await holder.execute("SELECT 1 FROM payments WHERE external_id = 'r-001' FOR UPDATE")
        swept = await asyncio.wait_for(sweep_provider(service, provider, now), timeout=5)
    assert swept == 2
    states = "SELECT array_agg(state ORDER BY external_id) FROM payments"
    async with factory.pool.acquire() as conn:
        assert await conn.fetchval(states) == ["voided", "reserved", "voided"]
    assert await sweep_provider(service, provider, now) == 1


async def test_sweep_command_runs_once(
    database_url: str, service: PaymentService, factory: Factory, provider: Provider, account: tuple[int, str]
) -> None:
    """`tolem sweep --once` voids the stale reservations and exits 0."""
    _, code = account
    now = datetime.now(UTC)
    await _reserve_many(service, provider, code, [now - timedelta(hours=13), now])
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tolem",
        "sweep",
        "--once",
        env={**os.environ, "TOLEM_DATABASE_URL": database_url, "TOLEM_LOG_FORMAT": "json"},
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode == 0, stderr.decode()
    assert b'"payme_sweep"' in stdout
    assert b'"voided":{"payme":1}' in stdout
    assert (await service.status(provider, external_id="r-000")).state is PaymentState.VOIDED
    assert (await service.status(provider, external_id="r-001")).state is PaymentState.RESERVED
