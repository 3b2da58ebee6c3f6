"""The accountant's admin routes and gauges: payments list, daily totals, discrepancies, /metrics."""

import hashlib
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
from aiohttp.test_utils import TestClient

from tests.conftest import Factory
from tests.ops.test_admin import admin, call, settings
from tests.ops.test_metrics import samples, value
from tolem.core.model import PayCommand, Provider
from tolem.core.service import PaymentService
from tolem.db import reconcile as reconcile_db
from tolem.db import registries as registry_db
from tolem.reconcile import formats

__all__ = ["admin", "settings"]
BISHKEK = ZoneInfo("Asia/Bishkek")


async def pay(
    service: PaymentService, provider: Provider, txn: str, code: str, when: datetime | None = None
) -> int:
    """A credited payment of 1.00, stamped `when` by the aggregator; its id."""
    result = await service.pay(
        provider, PayCommand(txn, code, 1_00, provider_time=when, provider_time_raw="t")
    )
    return result.payment.id


async def page_ids(client: TestClient, query: str) -> tuple[list[int], Any]:
    """Ids on one page of /admin/payments and the cursor to the next."""
    status, body = await call(client, "GET", f"/admin/payments?{query}")
    assert status == 200, body
    return [p["id"] for p in body["items"]], body["next_before"]


class TestPaymentsList:
    async def test_pages_have_no_gaps_or_duplicates_while_payments_arrive(
        self, admin: TestClient, factory: Factory, service: PaymentService
    ) -> None:
        """Keyset pages over a provider's payments: new payments between pages never shift rows."""
        provider = await factory.provider("pay24")
        _, code = await factory.account()
        existing = [await pay(service, provider, str(n), code) for n in range(8)]
        seen: list[int] = []
        ids, cursor = await page_ids(admin, "provider=pay24&limit=3")
        seen += ids
        arrived = [await pay(service, provider, f"new-{n}", code) for n in range(4)]
        while cursor is not None:
            ids, cursor = await page_ids(admin, f"provider=pay24&limit=3&before={cursor}")
            seen += ids
            await pay(service, provider, f"later-{len(seen)}", code)
        assert seen == sorted(existing, reverse=True)
        # The newcomers are there for whoever starts again from the first page.
        everything, cursor = await page_ids(admin, "provider=pay24&limit=500")
        assert cursor is None
        assert set(arrived) <= set(everything)
        assert everything[len(everything) - len(existing) :] == seen

    async def test_filters_by_state_code_txn_and_business_time(
        self, admin: TestClient, factory: Factory, service: PaymentService
    ) -> None:
        """Each filter narrows the list; naive times are read in the provider's zone; typos are 400."""
        provider = await factory.provider("pay24")
        _, code = await factory.account()
        _, other = await factory.account()
        late = await pay(service, provider, "1", code, datetime(2026, 11, 25, 23, 59, 59, tzinfo=BISHKEK))
        early = await pay(service, provider, "2", other, datetime(2026, 11, 26, 0, 0, 0, tzinfo=BISHKEK))
        await service.cancel(provider, external_id="2")
        day = "since=2026-11-25T00:00:00&until=2026-11-26T00:00:00"
        assert (await page_ids(admin, f"provider=pay24&{day}"))[0] == [late]
        assert (await page_ids(admin, "provider=pay24&state=reversed"))[0] == [early]
        assert (await page_ids(admin, f"code={other}"))[0] == [early]
        assert (await page_ids(admin, "provider=pay24&txn=1"))[0] == [late]
        status, body = await call(admin, "GET", f"/admin/payments?provider=pay24&txn=2&{day}")
        assert (status, body["items"]) == (200, [])
        status, body = await call(admin, "GET", "/admin/payments?provider=pay24&txn=1")
        [item] = body["items"]
        assert item["provider_time"] == "2026-11-25T17:59:59Z" and item["credited_at"] is not None
        for bad, field in (("state=paid", "state"), ("limit=0", "limit"), ("stat=credited", "stat")):
            status, body = await call(admin, "GET", f"/admin/payments?{bad}")
            assert (status, body["error"]["field"]) == (400, field)


async def reconciled(
    pool: asyncpg.Pool, provider: Provider, text: str, day: date
) -> registry_db.Reconciliation:
    """A QIWI registry imported and diffed."""
    data = text.encode()
    parsed = formats.parse(data, formats.Format.QIWI, zone=BISHKEK, key=formats.txn_key(provider.protocol))
    async with pool.acquire() as conn:
        return await registry_db.import_registry(
            conn,
            provider=provider,
            day=day,
            zone="Asia/Bishkek",
            parsed=parsed,
            file_name="r.txt",
            sha256=hashlib.sha256(data).hexdigest(),
            imported_by="test",
        )


class TestReportsAndDiscrepancies:
    async def test_daily_report_over_http(
        self, admin: TestClient, factory: Factory, service: PaymentService
    ) -> None:
        """The daily totals endpoint gives every day of the range; bad ranges and providers are refused."""
        await factory.provider("pay24")
        provider = await factory.provider("qiwi", timezone="UTC")
        _, code = await factory.account()
        await pay(service, provider, "1", code)
        today = datetime.now(UTC).date().isoformat()
        status, body = await call(admin, "GET", f"/admin/reports/daily?provider=qiwi&from={today}")
        assert status == 200, body
        [row] = body["days"]
        assert (row["day"], row["zone"], row["credited_count"], row["credited_amount"]) == (
            today,
            "UTC",
            1,
            "1.00",
        )
        status, body = await call(admin, "GET", f"/admin/reports/daily?from={today}")
        assert {d["provider"] for d in body["days"]} == {"pay24", "qiwi"}
        status, body = await call(admin, "GET", "/admin/reports/daily?from=2026-11-25&to=2026-11-24")
        assert (status, body["error"]["code"]) == (400, "invalid")
        status, body = await call(admin, "GET", "/admin/reports/daily?from=2025-01-01&to=2026-11-24")
        assert (status, body["error"]["field"]) == (400, "to")
        status, body = await call(admin, "GET", "/admin/reports/daily?provider=nobody&from=2026-11-25")
        assert (status, body["error"]["field"]) == (404, "provider")

    async def test_discrepancies_and_gauges(
        self, admin: TestClient, factory: Factory, service: PaymentService, pool: asyncpg.Pool
    ) -> None:
        """Open discrepancies are listed with counts per provider, and /metrics shows the same count
        and the start of the last reconciled day; a resolution lowers both views."""
        provider = await factory.provider("pay24")
        await factory.provider("quiet")
        _, code = await factory.account()
        await pay(service, provider, "1", code, datetime(2026, 11, 25, 10, tzinfo=BISHKEK))
        done = await reconciled(
            pool, provider, f"2\t25.11.2026\t11:00:00\t{code}\t3.00\nTotal: 1 3.00\n", date(2026, 11, 25)
        )
        status, body = await call(admin, "GET", "/admin/discrepancies?provider=pay24")
        assert status == 200
        assert {d["kind"] for d in body["items"]} == {"missing_ours", "missing_theirs"}
        assert body["open_per_provider"] == {"pay24": 2, "quiet": 0}
        scrape = samples(await (await admin.get("/metrics")).text())
        assert value(scrape, "tolem_discrepancies_open", provider="pay24") == 2
        assert value(scrape, "tolem_discrepancies_open", provider="quiet") == 0
        midnight = datetime(2026, 11, 25, tzinfo=BISHKEK).timestamp()
        assert value(scrape, "tolem_reconciled_day_timestamp_seconds", provider="pay24") == midnight
        async with pool.acquire() as conn:
            await reconcile_db.resolve(
                conn, done.differences[0].discrepancy_id, operator="bob", note="checked"
            )
        scrape = samples(await (await admin.get("/metrics")).text())
        assert value(scrape, "tolem_discrepancies_open", provider="pay24") == 1
        status, body = await call(admin, "GET", "/admin/discrepancies?resolved=true&limit=1")
        assert (len(body["items"]), body["next_before"] is not None) == (1, True)
        status, body = await call(admin, "GET", "/admin/discrepancies?provider=nobody")
        assert status == 404
