"""The console's other pages through a real app and database: providers, today's totals, open
discrepancies, the places where the console grows, and how money and times are shown."""

import hashlib
import re
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp_jinja2
import asyncpg
import jinja2
from aiohttp import web
from aiohttp.test_utils import TestClient

from tests.conftest import Factory
from tests.console.conftest import SUPPORT, ClientMaker, Console, Customer, osmp_cancel, osmp_pay, text_of
from tolem.console.app import build_ops_app
from tolem.console.panels import PAGES, AccountPanel, Page
from tolem.console.web import moment, money
from tolem.db import console as console_db
from tolem.db import providers as provider_db
from tolem.db import reconcile as reconcile_db
from tolem.db import registries as registry_db
from tolem.log import canonical_log_line
from tolem.reconcile import formats
from tolem.settings import Settings


class TestProviders:
    async def test_providers_listed_without_secrets(self, support: Console, factory: Factory) -> None:
        """The provider list says whether a password or key is set, and never shows either."""
        await factory.provider(
            "payme",
            protocol="payme",
            password="payme-key-1234567",
            min_amount_minor=100,
            max_amount_minor=5_000_000,
        )
        await factory.provider(
            "click",
            protocol="click",
            secret="click-secret-7654321",
            service_id="42",
            timezone="Asia/Tashkent",
        )
        page = await support.get("/ops/providers")
        assert page.status == 200
        assert "payme-key-1234567" not in page.text and "click-secret-7654321" not in page.text
        assert "scrypt$" not in page.text
        visible = text_of(page.text)
        assert (
            "payme payme да /gw/payme 127.0.0.0/8 ::1/128 — задан не задан 1.00 KGS 50 000.00 KGS "
            "Asia/Bishkek" in visible
        )
        assert (
            "click click да /gw/click" in visible
            and "не задан задан" in visible
            and "Asia/Tashkent" in visible
        )


class TestToday:
    async def test_totals_per_provider_in_its_zone(
        self,
        support: Console,
        factory: Factory,
        pool: asyncpg.Pool,
        customer: Customer,
        client: TestClient[Any, Any],
    ) -> None:
        """Credits and reversals of the provider's current day, with its zone and local midnight."""
        _, code = customer
        await factory.provider("elsom", timezone="America/New_York")
        await osmp_pay(client, code, "4101", "100.00")
        await osmp_pay(client, code, "4102", "50.25")
        await osmp_cancel(client, "4102")
        await osmp_pay(client, code, "4201", "7.00", provider="elsom")
        async with pool.acquire() as conn:
            totals = {t.provider: t for t in await console_db.today_totals(conn, "Asia/Bishkek")}
        kiosk, elsom = totals["kiosk"], totals["elsom"]
        assert (kiosk.credited_count, kiosk.credited_minor, kiosk.reversed_count, kiosk.reversed_minor) == (
            2,
            15025,
            1,
            5025,
        )
        assert kiosk.net_minor == 10000 and kiosk.currency == "KGS" and kiosk.zone == "Asia/Bishkek"
        assert (elsom.credited_count, elsom.credited_minor, elsom.zone) == (1, 700, "America/New_York")
        page = await support.get("/ops/today")
        row = text_of(re.search(r'<tr data-provider="kiosk">.*?</tr>', page.text, re.S).group(0))  # type: ignore[union-attr]
        assert "150.25 KGS (2) 50.25 KGS (1) 100.00 KGS" in row and "Asia/Bishkek" in row

    async def test_another_day_counts_nothing_of_today(
        self, factory: Factory, pool: asyncpg.Pool, customer: Customer, client: TestClient[Any, Any]
    ) -> None:
        """Asked for tomorrow's local day, today's money is not in it; a provider without any shows zeros."""
        _, code = customer
        await factory.provider("quiet")
        await osmp_pay(client, code, "4301", "10.00")
        async with pool.acquire() as conn:
            tomorrow = {
                t.provider: t
                for t in await console_db.today_totals(
                    conn, "Asia/Bishkek", at=datetime.now(UTC) + timedelta(days=1)
                )
            }
            today = {t.provider: t for t in await console_db.today_totals(conn, "Asia/Bishkek")}
        assert tomorrow["kiosk"].credited_count == 0 and tomorrow["kiosk"].net_minor == 0
        assert today["kiosk"].credited_count == 1
        assert today["quiet"].credited_minor == 0 and today["quiet"].currency == "KGS"

    async def test_local_midnight_is_the_zones_own(self, pool: asyncpg.Pool, factory: Factory) -> None:
        """At 20:00 UTC a Bishkek provider's day began at 18:00 UTC, a New York one's at 05:00 UTC."""
        await factory.provider("bishkek")
        await factory.provider("newyork", timezone="America/New_York")
        at = datetime(2026, 11, 25, 20, 0, tzinfo=UTC)
        async with pool.acquire() as conn:
            days = {t.provider: t for t in await console_db.today_totals(conn, "Asia/Bishkek", at=at)}
        assert days["bishkek"].day_start == datetime(2026, 11, 25, 18, 0, tzinfo=UTC)
        assert days["bishkek"].day.isoformat() == "2026-11-26"
        assert days["newyork"].day_start == datetime(2026, 11, 25, 5, 0, tzinfo=UTC)
        assert days["newyork"].day.isoformat() == "2026-11-25"


class TestGrowth:
    async def test_a_contributed_panel_and_page_appear(
        self,
        aiohttp_client: ClientMaker,
        settings: Settings,
        pool: asyncpg.Pool,
        operators: dict[str, int],
        customer: Customer,
    ) -> None:
        """A panel added to ACCOUNT_PANELS shows on the account page with its data; a page added
        to PAGES is served and listed in the navigation."""
        account_id, _ = customer

        async def payers_count(conn: asyncpg.Connection, account: Any, _settings: Settings) -> dict[str, Any]:
            return {
                "count": await conn.fetchval("SELECT count(*) FROM payers WHERE account_id = $1", account.id)
            }

        async def nothing(_conn: asyncpg.Connection, _settings: Settings) -> dict[str, Any]:
            return {"totals": []}

        panel = AccountPanel("demo", "payers", "_demo_panel.html", payers_count)
        extra = Page("demo", "nav_today", "today.html", nothing)
        # The console is mounted under a root carrying the canonical line, as tolem.app does.
        root = web.Application(middlewares=[canonical_log_line])
        ops = build_ops_app(settings, lambda: pool, panels=(panel,), pages=(*PAGES, extra))
        env = ops[aiohttp_jinja2.APP_KEY]
        demo = jinja2.DictLoader({"_demo_panel.html": "<p id='demo'>payers: {{ data.count }}</p>"})
        env.loader = jinja2.ChoiceLoader([env.loader, demo])  # type: ignore[list-item]
        root.add_subapp("/ops", ops)
        browser = Console(await aiohttp_client(root))
        await browser.login(SUPPORT)
        page = await browser.get(f"/ops/accounts/{account_id}")
        assert '<section id="panel-demo" class="panel">' in page.text
        assert "<p id='demo'>payers: 1</p>" in page.text
        assert page.text.index("panel-demo") < page.text.index('id="actions"')
        assert 'href="/ops/demo"' in page.text
        assert (await browser.get("/ops/demo")).status == 200


class TestDiscrepancies:
    async def test_open_discrepancies_are_listed_for_accounting(
        self, support: Console, customer: Customer, client: TestClient[Any, Any], pool: asyncpg.Pool
    ) -> None:
        """The page lists each open difference of a diffed registry with both sides' amounts and
        its currency, counts per provider, and drops one once it is resolved."""
        _, code = customer
        await osmp_pay(client, code, "5101", "100.00")
        await osmp_pay(client, code, "5102", "50.00")
        data = (
            f"5101\t25.11.2026\t14:30:00\t{code}\t100.00\n"
            f"5102\t25.11.2026\t14:30:00\t{code}\t60.00\n"
            f"5199\t25.11.2026\t15:00:00\t{code}\t7.00\n"
            "Total: 3 167.00\n"
        ).encode()
        async with pool.acquire() as conn:
            provider = await provider_db.get(conn, "kiosk")
            key = formats.txn_key(provider.protocol)
            parsed = formats.parse(data, formats.Format.QIWI, zone=ZoneInfo("Asia/Bishkek"), key=key)
            diffed = await registry_db.import_registry(
                conn,
                provider=provider,
                day=date(2026, 11, 25),
                zone="Asia/Bishkek",
                parsed=parsed,
                file_name="r.txt",
                sha256=hashlib.sha256(data).hexdigest(),
                imported_by="test",
            )
        kinds = {d.txn: d.kind for d in diffed.differences}
        assert kinds == {"5102": "amount_mismatch", "5199": "missing_ours"}
        await support.get("/ops/lang/en?next=%2Fops%2F")
        page = await support.get("/ops/discrepancies")
        assert page.status == 200
        found = re.finditer(r'<tr id="discrepancy-(\d+)">(.*?)</tr>', page.text, re.S)
        rows = {m.group(1): text_of(m.group(2)) for m in found}
        assert len(rows) == 2
        mismatch = next(r for r in rows.values() if "5102" in r)
        assert "amounts differ" in mismatch and "60.00 KGS" in mismatch and "50.00 KGS" in mismatch
        missing = next(r for r in rows.values() if "5199" in r)
        assert "in their registry, not ours" in missing and "7.00 KGS" in missing
        assert '<span data-provider="kiosk"><strong>kiosk</strong>: 2</span>' in page.text
        assert 'href="/ops/discrepancies"' in page.text
        first = next(d for d in diffed.differences if d.txn == "5199")
        async with pool.acquire() as conn:
            await reconcile_db.resolve(conn, first.discrepancy_id, operator="test", note="paid by hand")
        after = await support.get("/ops/discrepancies")
        assert "5199" not in after.text and "5102" in after.text


def test_money_and_moments_as_shown() -> None:
    """Amounts keep exact decimals, group thousands and name the currency; times carry their offset."""
    assert money(0, "KGS") == "0.00 KGS"
    assert money(123456789, "KGS ") == "1\u202f234\u202f567.89 KGS"
    assert money(-5025, "UZS") == "-50.25 UZS"
    at = datetime(2026, 11, 25, 8, 30, 5, 123456, tzinfo=UTC)
    assert moment(at, "Asia/Bishkek") == "2026-11-25 14:30:05 +06:00"
    assert moment(at, "America/New_York") == "2026-11-25 03:30:05 -05:00"
    assert moment(None, "Asia/Bishkek") == "—"
