"""Registries stored and diffed against real payments: every kind of difference, the day's
bounds in the registry's zone, re-imports, revisions and concurrent imports."""

import asyncio
from datetime import date

import asyncpg
import pytest

from tests.conftest import Factory
from tests.db.reconciling import DAY, at, kinds, pay, reconcile, registry, rows
from tolem.core.service import PaymentService
from tolem.db import reconcile as reconcile_db
from tolem.db import registries as registry_db


class TestDiff:
    async def test_every_kind_of_difference_is_found_and_recorded(
        self, pool: asyncpg.Pool, factory: Factory, service: PaymentService
    ) -> None:
        """Missing on either side, amount, code, state and day mismatches; agreeing rows are not listed."""
        provider = await factory.provider("pay24")
        _, code = await factory.account()
        _, other = await factory.account()
        await pay(service, provider, "1", code, 100_00, at(25, 10))  # agrees
        await pay(service, provider, "2", code, 200_00, at(25, 11))  # they say 250.00
        await pay(service, provider, "3", code, 300_00, at(25, 12))  # they say another code
        await pay(service, provider, "4", code, 400_00, at(25, 13))  # we reversed it
        await service.cancel(provider, external_id="4")
        await pay(service, provider, "5", code, 500_00, at(24, 23, 59, 59))  # our day before
        await pay(service, provider, "6", code, 600_00, at(25, 14))  # they never listed it
        await pay(service, provider, "8", code, 800_00, at(26, 0, 0, 1))  # the next day: not theirs to list
        done = await reconcile(
            pool,
            provider,
            registry(
                ("1", at(25, 10), code, "100.00"),
                ("2", at(25, 11), code, "250.00"),
                ("3", at(25, 12), other, "300.00"),
                ("4", at(25, 13), code, "400.00"),
                ("5", at(25, 0, 0, 1), code, "500.00"),
                ("7", at(25, 15), code, "70.00"),
            ),
        )
        assert kinds(done) == {
            ("amount_mismatch", "2"),
            ("code_mismatch", "3"),
            ("state_mismatch", "4"),
            ("day_mismatch", "5"),
            ("missing_ours", "7"),
            ("missing_theirs", "6"),
        }
        assert not done.agree
        assert (done.theirs.count, done.theirs.total_minor) == (6, 1620_00)
        # Ours that day: 1, 2, 3 and 6 are credited (4 reversed, 5 the day before).
        assert (done.ours.count, done.ours.total_minor) == (4, 1200_00)
        by_kind = {d.kind: d for d in done.differences}
        assert (
            by_kind["amount_mismatch"].theirs_amount_minor,
            by_kind["amount_mismatch"].ours_amount_minor,
        ) == (
            250_00,
            200_00,
        )
        assert (by_kind["state_mismatch"].theirs_state, by_kind["state_mismatch"].ours_state) == (
            "paid",
            "reversed",
        )
        assert by_kind["day_mismatch"].ours_day == date(2026, 11, 24)
        assert by_kind["missing_ours"].payment_id is None
        assert by_kind["missing_theirs"].line_no is None
        assert all(d.new and d.resolved_at is None for d in done.differences)
        stored = await rows(pool, "SELECT kind, txn, registry_id FROM discrepancies ORDER BY id")
        assert {(r["kind"], r["txn"]) for r in stored} == kinds(done)
        async with pool.acquire() as conn:
            assert await reconcile_db.open_counts(conn) == {"pay24": 6}

    async def test_a_registry_that_agrees_has_no_differences(
        self, pool: asyncpg.Pool, factory: Factory, service: PaymentService
    ) -> None:
        """Same ids, amounts, codes and day, midnight to midnight: agree, and nothing is recorded."""
        provider = await factory.provider("pay24")
        _, code = await factory.account()
        await pay(service, provider, "1", code, 100_00, at(25, 0, 0, 0))
        await pay(service, provider, "2", code, 5_00, at(25, 23, 59, 59))
        done = await reconcile(
            pool,
            provider,
            registry(("1", at(25, 0), code, "100.00"), ("2", at(25, 23, 59, 59), code, "5.00")),
        )
        assert done.agree
        assert (done.theirs, done.ours) == (registry_db.Side(2, 105_00), registry_db.Side(2, 105_00))
        assert await rows(pool, "SELECT id FROM discrepancies") == []

    async def test_the_day_is_bounded_in_the_registry_zone(
        self, pool: asyncpg.Pool, factory: Factory, service: PaymentService
    ) -> None:
        """A pay at 23:59:59 Bishkek is the 25th in Bishkek and the 25th in UTC; one at 00:00:30 on the
        26th in Bishkek is still the 25th in UTC: each zone's registry claims the right ones."""
        bishkek = await factory.provider("pay24")
        utc = await factory.provider("qiwi", timezone="UTC")
        _, code = await factory.account()
        for provider in (bishkek, utc):
            await pay(service, provider, "1", code, 1_00, at(25, 23, 59, 59))
            await pay(service, provider, "2", code, 2_00, at(26, 0, 0, 30))
        in_bishkek = await reconcile(pool, bishkek, registry(("1", at(25, 23, 59, 59), code, "1.00")))
        assert in_bishkek.agree
        assert in_bishkek.ours == registry_db.Side(1, 1_00)
        in_utc = await reconcile(
            pool,
            utc,
            registry(
                ("1", at(25, 23, 59, 59), code, "1.00"), ("2", at(26, 0, 0, 30), code, "2.00"), zone="UTC"
            ),
            zone="UTC",
        )
        assert in_utc.agree
        assert in_utc.ours == registry_db.Side(2, 3_00)
        # In Bishkek payment 2 belongs to the 26th: that day's registry claims it.
        next_day = await reconcile(
            pool, bishkek, registry(("2", at(26, 0, 0, 30), code, "2.00")), day=date(2026, 11, 26)
        )
        assert next_day.agree
        assert next_day.ours == registry_db.Side(1, 2_00)

    async def test_a_payment_listed_by_the_neighbouring_day_is_a_day_mismatch_not_missing(
        self, pool: asyncpg.Pool, factory: Factory, service: PaymentService
    ) -> None:
        """Our 23:59:59 payment in their next day's registry: that diff says day_mismatch, and our
        day's diff no longer calls it missing once the next day's registry is stored."""
        provider = await factory.provider("pay24")
        _, code = await factory.account()
        await pay(service, provider, "9", code, 9_00, at(25, 23, 59, 59))
        next_day = await reconcile(
            pool, provider, registry(("9", at(26, 0, 0, 2), code, "9.00")), day=date(2026, 11, 26)
        )
        assert kinds(next_day) == {("day_mismatch", "9")}
        assert next_day.differences[0].ours_day == DAY
        ours_day = await reconcile(pool, provider, registry())
        assert ours_day.agree

    async def test_reimporting_the_same_file_stores_and_records_nothing_new(
        self, pool: asyncpg.Pool, factory: Factory, service: PaymentService
    ) -> None:
        """The same file again: no new registry, lines or discrepancies; the diff is the same, not new."""
        provider = await factory.provider("pay24")
        _, code = await factory.account()
        await pay(service, provider, "1", code, 1_00, at(25, 10))
        data = registry(("1", at(25, 10), code, "1.50"), ("2", at(25, 11), code, "2.00"))
        first = await reconcile(pool, provider, data)
        again = await reconcile(pool, provider, data)
        assert (first.stored_now, again.stored_now) == (True, False)
        assert again.registry == first.registry
        assert [(d.kind, d.discrepancy_id, d.new) for d in again.differences] == [
            (d.kind, d.discrepancy_id, False) for d in first.differences
        ]
        counts = await rows(
            pool,
            "SELECT (SELECT count(*) FROM registries) r, (SELECT count(*) FROM registry_lines) l,"
            " (SELECT count(*) FROM discrepancies) d",
        )
        assert tuple(counts[0]) == (1, 2, 2)

    async def test_another_file_for_the_day_is_refused_unless_it_supersedes(
        self, pool: asyncpg.Pool, factory: Factory, service: PaymentService
    ) -> None:
        """A different file for a stored day is refused; with supersede it is revision 2 and diffed,
        its differences recorded once; the replaced file cannot come back."""
        provider = await factory.provider("pay24")
        _, code = await factory.account()
        await pay(service, provider, "1", code, 1_00, at(25, 10))
        old = registry(("1", at(25, 10), code, "1.00"), ("2", at(25, 11), code, "2.00"))
        new = registry(
            ("1", at(25, 10), code, "1.00"), ("2", at(25, 11), code, "2.00"), ("3", at(25, 12), code, "3.00")
        )
        first = await reconcile(pool, provider, old)
        with pytest.raises(registry_db.RegistryConflict) as conflict:
            await reconcile(pool, provider, new)
        assert conflict.value.latest.id == first.registry.id
        second = await reconcile(pool, provider, new, supersede=True)
        assert second.registry.revision == 2
        assert {(d.kind, d.txn, d.new) for d in second.differences} == {
            ("missing_ours", "2", False),
            ("missing_ours", "3", True),
        }
        with pytest.raises(registry_db.RegistrySuperseded):
            await reconcile(pool, provider, old)

    async def test_two_imports_of_one_file_at_once_store_it_once(
        self, pool: asyncpg.Pool, factory: Factory
    ) -> None:
        """Concurrent imports of the same registry take turns: one stores, the other finds it."""
        provider = await factory.provider("pay24")
        _, code = await factory.account()
        data = registry(("1", at(25, 10), code, "1.00"))
        done = await asyncio.gather(*(reconcile(pool, provider, data) for _ in range(4)))
        assert sorted(d.stored_now for d in done) == [False, False, False, True]
        assert len(await rows(pool, "SELECT id FROM discrepancies")) == 1
