"""The database writes an outbox event with every credit, reversal and void, in that transaction."""

from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from tests.billing.conftest import events
from tests.conftest import Factory
from tests.db.test_reconcile import at, reconcile, registry
from tolem.core import errors
from tolem.core.model import PayCommand
from tolem.core.service import PaymentService
from tolem.reconcile.credit import credit_missing

_ACCEPT = "SELECT * FROM tolem_accept($1, $2, $3, $4, NULL, NULL, true)"


async def kinds(pool: asyncpg.Pool) -> list[tuple[int, str, int]]:
    """(payment id, type, amount) of every event, in order."""
    return [(r["payment_id"], r["type"], r["amount_minor"]) for r in await events(pool)]


class TestEveryPath:
    async def test_pay_writes_one_credited_event_and_a_repeat_none(
        self, pool: asyncpg.Pool, factory: Factory, service: PaymentService
    ) -> None:
        """An OSMP-style pay writes payment.credited with the payment's fields; its replay writes nothing."""
        provider = await factory.provider()
        account_id, code = await factory.account()
        paid = await service.pay(provider, PayCommand("1", code, 150_00))
        await service.pay(provider, PayCommand("1", code, 150_00))
        [event] = await events(pool)
        payment = paid.payment
        assert (event["type"], event["payment_id"], event["account_id"], event["payer_id"]) == (
            "payment.credited",
            payment.id,
            account_id,
            payment.payer_id,
        )
        assert (event["amount_minor"], event["currency"], event["state"]) == (150_00, "KGS", "pending")
        assert event["occurred_at"] == payment.credited_at

    async def test_reserve_writes_nothing_and_perform_writes_the_credit(
        self, pool: asyncpg.Pool, factory: Factory, service: PaymentService
    ) -> None:
        """Payme's two phases: CreateTransaction's reservation is silent, PerformTransaction credits once."""
        provider = await factory.provider("payme", protocol="payme")
        _, code = await factory.account()
        reserved = await service.reserve(provider, PayCommand("p1", code, 5_00))
        assert await events(pool) == []
        await service.perform(provider, external_id="p1")
        await service.perform(provider, external_id="p1")
        assert await kinds(pool) == [(reserved.payment.id, "payment.credited", 5_00)]

    async def test_cancel_voids_a_reservation_and_reverses_a_credit(
        self, pool: asyncpg.Pool, factory: Factory, service: PaymentService
    ) -> None:
        """Cancel of a reservation is payment.voided; of a credit, payment.reversed after its credit."""
        provider = await factory.provider("payme", protocol="payme")
        _, code = await factory.account()
        first = await service.reserve(provider, PayCommand("a", code, 1_00))
        await service.cancel(provider, external_id="a", reason=3)
        second = await service.reserve(provider, PayCommand("b", code, 2_00))
        await service.perform(provider, external_id="b")
        await service.cancel(provider, external_id="b", reason=5)
        await service.cancel(provider, external_id="b", reason=5)
        assert await kinds(pool) == [
            (first.payment.id, "payment.voided", 1_00),
            (second.payment.id, "payment.credited", 2_00),
            (second.payment.id, "payment.reversed", 2_00),
        ]

    async def test_a_refused_reversal_writes_nothing(
        self, pool: asyncpg.Pool, factory: Factory, service: PaymentService
    ) -> None:
        """A cancel refused for insufficient funds moves no money and so announces none."""
        provider = await factory.provider()
        account_id, code = await factory.account()
        await service.pay(provider, PayCommand("1", code, 3_00))
        async with pool.acquire() as conn:
            ledger = await conn.fetchval("SELECT ledger_account_id FROM accounts WHERE id = $1", account_id)
            # The customer spent the money in the billing: the stored balance is gone.
            await conn.execute("UPDATE ledger_accounts SET balance_minor = 0 WHERE id = $1", ledger)
        with pytest.raises(errors.InsufficientFunds):
            await service.cancel(provider, external_id="1")
        assert [k[1] for k in await kinds(pool)] == ["payment.credited"]
        async with pool.acquire() as conn:
            await conn.execute("UPDATE ledger_accounts SET balance_minor = 300 WHERE id = $1", ledger)

    async def test_click_void_writes_voided(
        self, pool: asyncpg.Pool, factory: Factory, service: PaymentService
    ) -> None:
        """Click's Complete with an error voids the prepared payment: payment.voided."""
        provider = await factory.provider("click", protocol="click", secret="s3cret")
        _, code = await factory.account()
        prepared = await service.reserve(provider, PayCommand("c1", code, 9_00))
        await service.void(provider, payment_id=prepared.payment.id, reason=-9)
        await service.void(provider, payment_id=prepared.payment.id, reason=-9)
        assert await kinds(pool) == [(prepared.payment.id, "payment.voided", 9_00)]

    async def test_expiry_sweep_and_expiry_on_perform_write_voided(
        self, pool: asyncpg.Pool, factory: Factory, service: PaymentService
    ) -> None:
        """Reservations voided by the sweep, and by a perform past the limit, each write payment.voided."""
        provider = await factory.provider("payme", protocol="payme")
        _, code = await factory.account()
        old = datetime.now(UTC) - timedelta(hours=13)
        swept = await service.reserve(provider, PayCommand("s", code, 1_00, provider_time=old))
        late = await service.reserve(provider, PayCommand("l", code, 2_00, provider_time=old))
        limit = datetime.now(UTC) - timedelta(hours=12)
        with pytest.raises(errors.WrongState):
            await service.perform(provider, external_id="l", expire_before=limit, expire_reason=4)
        assert await service.expire_reservations(provider, before=limit, reason=4, limit=10) == 1
        assert sorted(await kinds(pool)) == sorted(
            [(late.payment.id, "payment.voided", 2_00), (swept.payment.id, "payment.voided", 1_00)]
        )

    async def test_reconciliation_credit_writes_credited(
        self, pool: asyncpg.Pool, factory: Factory, service: PaymentService
    ) -> None:
        """Crediting a payment the registry lists and we lacked announces it like any pay."""
        provider = await factory.provider("pay24")
        _, code = await factory.account()
        done = await reconcile(pool, provider, registry(("0070", at(25, 12), code, "7.00")))
        [missing] = done.differences
        async with pool.acquire() as conn:
            credited = await credit_missing(conn, service, missing.discrepancy_id, operator="alice")
        assert await kinds(pool) == [(credited.payment.id, "payment.credited", 7_00)]


class TestAtomic:
    async def test_a_rolled_back_credit_leaves_neither_transfer_nor_event(
        self, pool: asyncpg.Pool, factory: Factory
    ) -> None:
        """Inside the pay's transaction both exist; rolled back, neither does."""
        provider = await factory.provider()
        _, code = await factory.account()
        async with pool.acquire() as conn:
            tx = conn.transaction()
            await tx.start()
            await conn.fetchrow(_ACCEPT, provider.id, "1", code, 4_00)
            assert await conn.fetchval("SELECT count(*) FROM transfers") == 1
            assert await conn.fetchval("SELECT count(*) FROM outbox_events") == 1
            await tx.rollback()  # the caller failed after the pay
        assert await factory.count("SELECT count(*) FROM transfers") == 0
        assert await factory.count("SELECT count(*) FROM outbox_events") == 0

    async def test_the_event_commits_with_the_transfer(self, pool: asyncpg.Pool, factory: Factory) -> None:
        """Another session sees neither the transfer nor the event until the pay commits, then both."""
        provider = await factory.provider()
        _, code = await factory.account()
        async with pool.acquire() as conn:
            tx = conn.transaction()
            await tx.start()
            await conn.fetchrow(_ACCEPT, provider.id, "1", code, 4_00)
            assert await factory.count("SELECT count(*) FROM transfers") == 0
            assert await factory.count("SELECT count(*) FROM outbox_events") == 0
            await tx.commit()
        assert await factory.count("SELECT count(*) FROM transfers") == 1
        assert await factory.count("SELECT count(*) FROM outbox_events") == 1


class TestAppendOnly:
    async def test_payload_is_fixed_and_events_are_never_deleted(
        self, pool: asyncpg.Pool, factory: Factory, service: PaymentService
    ) -> None:
        """Identity and payload columns refuse changes and rows refuse deletion; delivery columns change."""
        provider = await factory.provider()
        _, code = await factory.account()
        await service.pay(provider, PayCommand("1", code, 1_00))
        async with pool.acquire() as conn:
            for change in (
                "amount_minor = 2",
                "id = gen_random_uuid()",
                "type = 'payment.voided'",
                "xid = '1'",
            ):
                with pytest.raises(asyncpg.RestrictViolationError):
                    await conn.execute(f"UPDATE outbox_events SET {change}")
            with pytest.raises(asyncpg.RestrictViolationError):
                await conn.execute("DELETE FROM outbox_events")
            with pytest.raises(asyncpg.RestrictViolationError):
                await conn.execute("TRUNCATE outbox_events CASCADE")
            await conn.execute("UPDATE outbox_events SET last_error = 'x', attempts = 3")
            assert await conn.fetchval("SELECT attempts FROM outbox_events") == 3

    async def test_states_keep_their_columns_consistent(
        self, pool: asyncpg.Pool, factory: Factory, service: PaymentService
    ) -> None:
        """A delivered event needs its time and sink; a pending one its next attempt."""
        provider = await factory.provider()
        _, code = await factory.account()
        await service.pay(provider, PayCommand("1", code, 1_00))
        async with pool.acquire() as conn:
            for change in (
                "state = 'delivered'",
                "next_attempt_at = NULL",
                "state = 'dead'",
                "delivered_at = now()",
                "attempts = -1",
            ):
                with pytest.raises(asyncpg.CheckViolationError):
                    await conn.execute(f"UPDATE outbox_events SET {change}")

    async def test_a_payers_billing_id_is_forever(self, pool: asyncpg.Pool, factory: Factory) -> None:
        """Once set, a payer's external_ref cannot change or be cleared; two payers cannot share one."""
        account_id, code = await factory.account()
        async with pool.acquire() as conn:
            await conn.execute("UPDATE payers SET external_ref = 'p-1' WHERE payment_code = $1", code)
            for value in ("'p-2'", "NULL"):
                with pytest.raises(asyncpg.RestrictViolationError):
                    await conn.execute(
                        f"UPDATE payers SET external_ref = {value} WHERE payment_code = $1", code
                    )
            with pytest.raises(asyncpg.UniqueViolationError):
                await conn.execute(
                    "INSERT INTO payers (account_id, payment_code, name, origin, external_ref) "
                    "VALUES ($1, 'X-1', 'n', 'imported', 'p-1')",
                    account_id,
                )
