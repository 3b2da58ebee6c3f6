"""Discrepancies kept, resolved and credited; registries and discrepancies cannot be edited."""

import asyncio
import re
from typing import Any

import asyncpg
import pytest

from tests.conftest import Factory
from tests.db.reconciling import at, pay, reconcile, registry, rows
from tolem.core import errors
from tolem.core.model import Provider
from tolem.core.service import PaymentService
from tolem.db import reconcile as reconcile_db
from tolem.db.store import PgStore
from tolem.reconcile.credit import NotCreditable, credit_missing


class TestResolution:
    async def found(
        self, pool: asyncpg.Pool, factory: Factory, service: PaymentService
    ) -> tuple[Provider, str, dict[str, int]]:
        """A provider, a code, and the discrepancy id of each kind a small registry shows."""
        provider = await factory.provider("pay24")
        _, code = await factory.account()
        await pay(service, provider, "1", code, 1_00, at(25, 10))
        await pay(service, provider, "6", code, 6_00, at(25, 11))
        done = await reconcile(
            pool, provider, registry(("1", at(25, 10), code, "1.50"), ("7", at(25, 12), code, "7.00"))
        )
        return provider, code, {d.kind: d.discrepancy_id for d in done.differences}

    async def test_resolve_records_who_when_and_why_once(
        self, pool: asyncpg.Pool, factory: Factory, service: PaymentService
    ) -> None:
        """A resolution keeps operator, time and note; a second one is refused; open counts drop."""
        _, _, ids = await self.found(pool, factory, service)
        async with pool.acquire() as conn:
            done = await reconcile_db.resolve(
                conn, ids["amount_mismatch"], operator=" bob ", note="Pay24 agrees: 1.00"
            )
            assert (done.resolved_by, done.resolution_note, done.open) == ("bob", "Pay24 agrees: 1.00", False)
            assert done.resolved_at is not None
            with pytest.raises(reconcile_db.AlreadyResolved):
                await reconcile_db.resolve(conn, ids["amount_mismatch"], operator="carol", note="again")
            with pytest.raises(reconcile_db.DiscrepancyNotFound):
                await reconcile_db.resolve(conn, 999_999, operator="carol", note="x")
            with pytest.raises(ValueError, match="note"):
                await reconcile_db.resolve(conn, ids["missing_ours"], operator="carol", note="  ")
            assert await reconcile_db.open_counts(conn) == {"pay24": 2}
            still = await reconcile_db.list_discrepancies(conn)
            assert {d.kind for d in still} == {"missing_ours", "missing_theirs"}
            everything = await reconcile_db.list_discrepancies(conn, include_resolved=True)
            assert len(everything) == 3

    @pytest.mark.parametrize(
        "statement",
        [
            "DELETE FROM discrepancies",
            "UPDATE discrepancies SET txn = 'x'",
            "UPDATE discrepancies SET resolved_at = now(), resolved_by = 'x', resolution_note = 'y',"
            " kind = 'day_mismatch'",
            "UPDATE registry_lines SET amount_minor = 1",
            "DELETE FROM registry_lines",
            "UPDATE registries SET sha256 = repeat('0', 64)",
            "TRUNCATE discrepancies, registry_lines, registries",
        ],
    )
    async def test_registries_and_discrepancies_cannot_be_edited(
        self, pool: asyncpg.Pool, factory: Factory, service: PaymentService, statement: str
    ) -> None:
        """Registries are append-only; a discrepancy changes only by being resolved."""
        await self.found(pool, factory, service)
        async with pool.acquire() as conn:
            with pytest.raises(asyncpg.RestrictViolationError):
                await conn.execute(statement)

    async def test_a_resolution_may_only_name_the_credit_of_that_transaction(
        self, pool: asyncpg.Pool, factory: Factory, service: PaymentService
    ) -> None:
        """Pointing a missing payment's resolution at another payment is refused by the database."""
        _, _, ids = await self.found(pool, factory, service)
        other = (await rows(pool, "SELECT id FROM payments WHERE external_id = '1'"))[0]["id"]
        async with pool.acquire() as conn:
            with pytest.raises(asyncpg.CheckViolationError):
                await reconcile_db.resolve(
                    conn, ids["missing_ours"], operator="bob", note="x", credited_payment_id=other
                )


class TestCredit:
    async def test_crediting_twice_at_once_credits_once(
        self, pool: asyncpg.Pool, factory: Factory, service: PaymentService
    ) -> None:
        """Two operators credit the same missing payment together: one credit through tolem_accept,
        one resolution naming it; the balance moves once and a new diff agrees."""
        provider = await factory.provider("pay24")
        account_id, code = await factory.account()
        done = await reconcile(pool, provider, registry(("0070", at(25, 12), code, "7.00")))
        [missing] = done.differences

        async def credit(operator: str) -> Any:
            async with pool.acquire() as conn:
                try:
                    return await credit_missing(
                        conn, PaymentService(PgStore(pool)), missing.discrepancy_id, operator=operator
                    )
                except reconcile_db.AlreadyResolved as exc:
                    return exc

        outcomes = await asyncio.gather(credit("alice"), credit("bob"))
        assert await factory.balance(account_id) == 7_00
        credited = [o for o in outcomes if not isinstance(o, reconcile_db.AlreadyResolved)]
        assert len(credited) >= 1
        payment_ids = {o.payment.id for o in credited}
        assert len(payment_ids) == 1
        [row] = await rows(pool, "SELECT * FROM discrepancies WHERE id = $1", missing.discrepancy_id)
        assert row["credited_payment_id"] in payment_ids
        assert row["resolved_by"] in {"alice", "bob"}
        assert "credited from registry" in row["resolution_note"] or "already paid" in row["resolution_note"]
        [payment] = await rows(
            pool, "SELECT external_id, provider_time, provider_time_raw, state FROM payments"
        )
        assert tuple(payment) == ("70", at(25, 12), "25.11.2026 12:00:00", "credited")
        with pytest.raises(reconcile_db.AlreadyResolved):
            async with pool.acquire() as conn:
                await credit_missing(conn, service, missing.discrepancy_id, operator="carol")
        assert await factory.balance(account_id) == 7_00
        again = await reconcile(pool, provider, registry(("0070", at(25, 12), code, "7.00")))
        assert again.agree

    async def test_a_refused_credit_leaves_the_discrepancy_open(
        self, pool: asyncpg.Pool, factory: Factory, service: PaymentService
    ) -> None:
        """A blocked account refuses the credit (nothing moves); other kinds cannot be credited at all."""
        provider = await factory.provider("pay24")
        account_id, code = await factory.account()
        await pay(service, provider, "1", code, 1_00, at(25, 10))
        done = await reconcile(
            pool, provider, registry(("1", at(25, 10), code, "2.00"), ("2", at(25, 11), code, "2.00"))
        )
        ids = {d.kind: d.discrepancy_id for d in done.differences}
        await factory.block(account_id)
        async with pool.acquire() as conn:
            with pytest.raises(errors.AccountBlocked):
                await credit_missing(conn, service, ids["missing_ours"], operator="bob")
            with pytest.raises(NotCreditable):
                await credit_missing(conn, service, ids["amount_mismatch"], operator="bob")
            assert (await reconcile_db.get_discrepancy(conn, ids["missing_ours"])).open
        assert await factory.balance(account_id) == 1_00


async def test_kinds_are_the_schemas_words(pool: asyncpg.Pool) -> None:
    """The kinds the code names are exactly those ck__discrepancies__kind admits."""
    definition = await pool.fetchval(
        "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conname = 'ck__discrepancies__kind'"
    )
    assert set(re.findall(r"'(\w+)'", definition)) == set(reconcile_db.KINDS)
