"""The database keeps currencies apart: no transfer, payment or credit mixes two of them."""

import asyncpg
import pytest

from tests.conftest import Factory
from tolem.core import errors
from tolem.core.model import PayCommand
from tolem.core.service import PaymentService
from tolem.db.store import PgStore


async def _ledger_id(pool: asyncpg.Pool, account_id: int) -> int:
    async with pool.acquire() as conn:
        return int(await conn.fetchval("SELECT ledger_account_id FROM accounts WHERE id = $1", account_id))


async def _money(factory: Factory) -> tuple[int, int]:
    return (
        await factory.count("SELECT count(*) FROM payments"),
        await factory.count("SELECT count(*) FROM transfers"),
    )


class TestConstraints:
    async def test_transfer_between_two_currencies_is_refused(
        self, service: PaymentService, factory: Factory, pool: asyncpg.Pool
    ) -> None:
        """A transfer written by hand from a KGS to a UZS ledger account is refused, in either currency."""
        provider = await factory.provider()
        _, code = await factory.account()
        reserved = await service.reserve(provider, PayCommand("r-1", code, 100_00))
        uzs_account, _ = await factory.foreign_account("UZS")
        uzs_ledger = await _ledger_id(pool, uzs_account)
        clearing = await factory.count(
            "SELECT clearing_ledger_account_id FROM providers WHERE id = $1", provider.id
        )
        async with pool.acquire() as conn:
            for currency in ("KGS", "UZS"):
                with pytest.raises(asyncpg.ForeignKeyViolationError, match="currency"):
                    await conn.execute(
                        "INSERT INTO transfers (debit_ledger_account_id, credit_ledger_account_id, "
                        "amount_minor, currency, code, payment_id) VALUES ($1, $2, 100, $3, 'topup', $4)",
                        clearing,
                        uzs_ledger,
                        currency,
                        reserved.payment.id,
                    )
        assert await factory.count("SELECT count(*) FROM transfers") == 0

    async def test_transfer_in_a_third_currency_is_refused(
        self, service: PaymentService, factory: Factory, pool: asyncpg.Pool
    ) -> None:
        """Two KGS accounts cannot exchange an amount labelled in another currency."""
        provider = await factory.provider()
        account_id, code = await factory.account()
        reserved = await service.reserve(provider, PayCommand("r-1", code, 100_00))
        clearing = await factory.count(
            "SELECT clearing_ledger_account_id FROM providers WHERE id = $1", provider.id
        )
        async with pool.acquire() as conn:
            with pytest.raises(asyncpg.ForeignKeyViolationError):
                await conn.execute(
                    "INSERT INTO transfers (debit_ledger_account_id, credit_ledger_account_id, "
                    "amount_minor, currency, code, payment_id) VALUES ($1, $2, 100, 'USD', 'topup', $3)",
                    clearing,
                    await _ledger_id(pool, account_id),
                    reserved.payment.id,
                )

    async def test_payment_in_another_currency_than_its_account_is_refused(
        self, factory: Factory, pool: asyncpg.Pool
    ) -> None:
        """A payment row naming a UZS account and a KGS provider is refused whichever currency it states."""
        provider = await factory.provider()
        uzs_account, code = await factory.foreign_account("UZS")
        payer_id = await factory.count("SELECT id FROM payers WHERE payment_code = $1", code)
        async with pool.acquire() as conn:
            for currency in ("KGS", "UZS"):
                with pytest.raises(asyncpg.CheckViolationError, match="never converts"):
                    await conn.execute(
                        "INSERT INTO payments (provider_id, external_id, payer_id, account_id, amount_minor, "
                        "currency, state) VALUES ($1, 'x-1', $2, $3, 100, $4, 'reserved')",
                        provider.id,
                        payer_id,
                        uzs_account,
                        currency,
                    )
        assert await factory.count("SELECT count(*) FROM payments") == 0

    async def test_currency_links_are_fixed_for_life(self, factory: Factory, pool: asyncpg.Pool) -> None:
        """A ledger account keeps its currency, an account its ledger account, a provider its currency."""
        provider = await factory.provider()
        account_id, _ = await factory.account()
        uzs_account, _ = await factory.foreign_account("UZS")
        ledger_id = await _ledger_id(pool, account_id)
        async with pool.acquire() as conn:
            with pytest.raises(asyncpg.RestrictViolationError, match="for life"):
                await conn.execute("UPDATE ledger_accounts SET currency = 'UZS' WHERE id = $1", ledger_id)
            with pytest.raises(asyncpg.RestrictViolationError, match="for life"):
                await conn.execute(
                    "UPDATE accounts SET ledger_account_id = $2 WHERE id = $1",
                    account_id,
                    await _ledger_id(pool, uzs_account),
                )
            with pytest.raises(asyncpg.ForeignKeyViolationError):
                await conn.execute("UPDATE providers SET currency = 'UZS' WHERE id = $1", provider.id)


class TestAccept:
    async def test_pay_into_an_account_of_another_currency_is_refused(
        self, service: PaymentService, factory: Factory
    ) -> None:
        """A KGS provider's pay and reservation to a UZS account are CurrencyRefused; nothing is stored."""
        provider = await factory.provider()
        uzs_account, code = await factory.foreign_account("UZS")
        with pytest.raises(errors.CurrencyRefused):
            await service.pay(provider, PayCommand("p-1", code, 100_00))
        with pytest.raises(errors.CurrencyRefused):
            await service.reserve(provider, PayCommand("p-2", code, 100_00))
        with pytest.raises(errors.CurrencyRefused):
            await service.check(provider, code, 100_00)
        assert await _money(factory) == (0, 0)
        assert await factory.balance(uzs_account) == 0

    async def test_deployment_of_another_currency_credits_nothing(
        self, service: PaymentService, factory: Factory, pool: asyncpg.Pool
    ) -> None:
        """A service stating UZS over a KGS database refuses new payments and still replays old ones."""
        provider = await factory.provider()
        account_id, code = await factory.account()
        first = await service.pay(provider, PayCommand("p-1", code, 100_00))
        uzs = PaymentService(PgStore(pool), currency="UZS")
        again = await uzs.pay(provider, PayCommand("p-1", code, 100_00))
        assert (again.payment.id, again.replayed) == (first.payment.id, True)
        with pytest.raises(errors.CurrencyRefused):
            await uzs.pay(provider, PayCommand("p-2", code, 100_00))
        with pytest.raises(errors.CurrencyRefused):
            await uzs.check(provider, code, 100_00)
        assert await _money(factory) == (1, 1)
        assert await factory.balance(account_id) == 100_00
        kgs = PaymentService(PgStore(pool), currency="KGS")
        await kgs.pay(provider, PayCommand("p-2", code, 100_00))
        assert await factory.balance(account_id) == 200_00

    async def test_perform_of_an_older_mixed_reservation_is_refused(
        self, service: PaymentService, factory: Factory, pool: asyncpg.Pool
    ) -> None:
        """A reservation written across currencies before 0010 is refused on perform, not retried."""
        provider = await factory.provider()
        uzs_account, code = await factory.foreign_account("UZS")
        payer_id = await factory.count("SELECT id FROM payers WHERE payment_code = $1", code)
        async with pool.acquire() as conn, conn.transaction():
            await conn.execute("SET LOCAL session_replication_role = replica")
            await conn.execute(
                "INSERT INTO payments (provider_id, external_id, payer_id, account_id, amount_minor, "
                "currency, state) VALUES ($1, 'old-1', $2, $3, 100, 'KGS', 'reserved')",
                provider.id,
                payer_id,
                uzs_account,
            )
        try:
            with pytest.raises(errors.CurrencyRefused):
                await service.perform(provider, external_id="old-1")
            assert await factory.count("SELECT count(*) FROM transfers") == 0
            assert await factory.balance(uzs_account) == 0
        finally:
            async with pool.acquire() as conn, conn.transaction():
                await conn.execute("SET LOCAL session_replication_role = replica")
                await conn.execute("DELETE FROM payments WHERE external_id = 'old-1'")
