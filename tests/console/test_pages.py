"""Console pages through a real app, database and gateway: search, the account page, roles,
escaping, providers, today's totals, headers and the places where the console grows."""

import hashlib
import html
import re
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp_jinja2
import asyncpg
import jinja2
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from pydantic import SecretStr

from tests.conftest import Factory
from tests.console.conftest import (
    ADMIN,
    SUPPORT,
    ClientMaker,
    Console,
    osmp_cancel,
    osmp_check,
    osmp_pay,
)
from tolem.app import create_app
from tolem.core.model import PayCommand
from tolem.core.payment_codes import mask
from tolem.core.service import PaymentService
from tolem.db import console as console_db
from tolem.db import providers as provider_db
from tolem.db import reconcile as reconcile_db
from tolem.db import registries as registry_db
from tolem.db.store import PgStore
from tolem.log import canonical_log_line
from tolem.ops.app import build_ops_app
from tolem.ops.panels import PAGES, AccountPanel, Page
from tolem.ops.web import moment, money
from tolem.reconcile import formats
from tolem.settings import Settings

Customer = tuple[int, str]


def text_of(page_html: str) -> str:
    """A page's visible text, roughly: tags dropped, entities decoded, spaces squeezed."""
    without_tags = re.sub(r"<[^>]+>", " ", page_html)
    return " ".join(html.unescape(without_tags).split())


def payment_block(page_html: str, txn: str) -> str:
    """The account page's rows of the payment with that transaction id."""
    for block in re.findall(r'<tbody id="payment-\d+" class="payment">(.*?)</tbody>', page_html, re.S):
        if f'<td class="mono">{txn}</td>' in block:
            return str(block)
    raise AssertionError(f"no payment {txn} on the page")


async def status_of(pool: asyncpg.Pool, account_id: int) -> str:
    """An account's status as stored."""
    return str(await pool.fetchval("SELECT status FROM accounts WHERE id = $1", account_id))


class TestSearch:
    async def test_email_opens_the_account_with_its_code(self, support: Console, customer: Customer) -> None:
        """An email, in any case, opens the one account it names, payment code in view: one search."""
        account_id, code = customer
        page = await support.get("/ops/search?q=ASAN@Example.KG")
        assert page.url.endswith(f"/ops/accounts/{account_id}")
        assert f'data-testid="payment-code">{code}<' in page.text

    async def test_code_typed_with_spaces_and_service_name(
        self, support: Console, customer: Customer
    ) -> None:
        """A code typed in groups, and a service name, each open the account."""
        account_id, code = customer
        spaced = f"{code[:4]} {code[4:8]} {code[8:]}"
        for query in (spaced, "ASAN.kg"):
            page = await support.get("/ops/search", params={"q": query})
            assert page.url.endswith(f"/ops/accounts/{account_id}"), query

    async def test_transaction_id_opens_the_account_at_the_payment(
        self, support: Console, client: TestClient[Any, Any], customer: Customer, pool: asyncpg.Pool
    ) -> None:
        """A provider's transaction id finds the payment and its account, and points at the payment."""
        account_id, code = customer
        await osmp_pay(client, code, "880001", "150.00")
        payment_id = await pool.fetchval("SELECT id FROM payments WHERE external_id = '880001'")
        answer = await support.get("/ops/search?q=880001", follow=False)
        assert answer.status == 303
        assert answer.headers["Location"] == f"/ops/accounts/{account_id}#payment-{payment_id}"

    async def test_one_id_at_two_providers_lists_both(
        self, support: Console, client: TestClient[Any, Any], customer: Customer, factory: Factory
    ) -> None:
        """The same transaction id at two providers, for two accounts, lists both with the reason."""
        first_id, first_code = customer
        await factory.provider("elsom")
        second_id, second_code = await factory.account(name="Bekova Aida", email="aida@example.kg")
        await osmp_pay(client, first_code, "5005", "10.00")
        await osmp_pay(client, second_code, "5005", "20.00", provider="elsom")
        page = await support.get("/ops/search?q=5005")
        assert page.status == 200
        visible = text_of(page.text)
        assert "Найдено счетов: 2" in visible
        assert "транзакция kiosk 5005" in visible and "транзакция elsom 5005" in visible
        assert f"/ops/accounts/{first_id}#payment-" in page.text
        assert f"/ops/accounts/{second_id}#payment-" in page.text

    async def test_refused_transaction_shows_what_we_answered(
        self, support: Console, client: TestClient[Any, Any], customer: Customer
    ) -> None:
        """A transaction id that never became a payment shows the journaled calls and our answer."""
        await osmp_check(client, "001234567897", "770077", "50.00")
        page = await support.get("/ops/search?q=770077")
        visible = text_of(page.text)
        assert "Ничего не найдено" in visible
        assert "Запросы шлюза с этим номером транзакции" in visible
        row = re.search(r"<tr>\s*<td class=\"time\">.*?</tr>", page.text, re.S)
        assert row is not None
        cells = text_of(row.group(0))
        assert "kiosk 770077 check ********7897 5" in cells

    async def test_mistyped_code_is_named_as_such(self, support: Console, customer: Customer) -> None:
        """An issued-looking code with a wrong check digit is found nowhere, and the page says why."""
        _, code = customer
        wrong = code[:-1] + str((int(code[-1]) + 1) % 10)
        page = await support.get(f"/ops/search?q={wrong}")
        assert "не сходится контрольная цифра" in page.text

    async def test_shared_email_lists_every_account(
        self, support: Console, customer: Customer, factory: Factory
    ) -> None:
        """Two accounts under one email are both listed, with status and balance."""
        await factory.account(name="Asanov Asan (office)", email="asan@example.kg")
        page = await support.get("/ops/search?q=asan@example.kg")
        visible = text_of(page.text)
        assert "Найдено счетов: 2" in visible
        assert visible.count("0.00 KGS") == 2

    async def test_empty_and_overlong_queries(self, support: Console) -> None:
        """An empty search goes back to the box; an absurdly long one is answered, not searched."""
        assert (await support.get("/ops/search?q=+", follow=False)).headers["Location"] == "/ops/"
        page = await support.get("/ops/search", params={"q": "x" * 300})
        assert page.status == 200 and "Такой длинной строки" in page.text


class TestAccountPage:
    async def test_balance_payments_and_each_payments_calls(
        self, support: Console, client: TestClient[Any, Any], customer: Customer
    ) -> None:
        """The page shows the balance with its currency, each payment with its state and the
        gateway calls of its transaction, and times with their offset."""
        account_id, code = customer
        await osmp_check(client, code, "1001", "150.00")
        await osmp_pay(client, code, "1001", "150.00")
        await osmp_pay(client, code, "1001", "150.00")  # the aggregator's retry: replayed
        await osmp_pay(client, code, "1002", "1250.50")
        await osmp_cancel(client, "1002")
        page = await support.get(f"/ops/accounts/{account_id}")
        assert page.status == 200
        assert 'data-testid="balance">150.00 KGS<' in page.text
        first, second = payment_block(page.text, "1001"), payment_block(page.text, "1002")
        first_text, second_text = text_of(first), text_of(second)
        assert "kiosk 1001" in first_text and "150.00 KGS зачислен" in first_text
        assert "Запросы шлюза: 3" in first_text  # check, pay, repeated pay
        assert first_text.count(" pay ") == 2 and " check " in first_text
        assert "1 250.50 KGS возвращён после зачисления" in second_text
        assert "Запросы шлюза: 2" in second_text and " cancel " in second_text
        assert re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \+06:00", first_text)

    async def test_refused_calls_for_the_accounts_codes_are_shown(
        self,
        support: Console,
        client: TestClient[Any, Any],
        customer: Customer,
        factory: Factory,
        pool: asyncpg.Pool,
    ) -> None:
        """A pay refused as over the limit made no payment, but the page shows the call and our answer."""
        account_id, code = customer
        await pool.execute("UPDATE providers SET max_amount_minor = 10000 WHERE name = 'kiosk'")
        answer = await osmp_pay(client, code, "2001", "150.00")
        assert "<result>242</result>" in answer
        page = await support.get(f"/ops/accounts/{account_id}")
        assert "Платежей пока нет." in page.text
        calls = page.text[page.text.index('id="calls"') :]
        assert "2001" in calls and ">242<" in calls
        assert mask(code) in calls and code not in calls[: calls.index("</section>")]

    async def test_looking_is_recorded_and_shown(
        self, support: Console, customer: Customer, pool: asyncpg.Pool
    ) -> None:
        """Opening an account records who looked; the next view lists them."""
        account_id, _ = customer
        await support.get(f"/ops/accounts/{account_id}")
        row = await pool.fetchrow(
            "SELECT account_id, host(remote_addr) AS addr FROM operator_actions WHERE action = 'account.view'"
        )
        assert row["account_id"] == account_id and row["addr"] == "127.0.0.1"
        page = await support.get(f"/ops/accounts/{account_id}")
        assert "Смотрели:" in page.text and f"{SUPPORT} ·" in text_of(page.text)

    async def test_payments_page_by_twenty(
        self, support: Console, customer: Customer, factory: Factory, pool: asyncpg.Pool
    ) -> None:
        """Twenty-five payments: the newest twenty first, the other five behind the older link."""
        account_id, code = customer
        provider = await factory.provider("wallet")
        service = PaymentService(PgStore(pool))
        for n in range(25):
            await service.pay(provider, PayCommand(f"w{n:02d}", code, 100))
        first = await support.get(f"/ops/accounts/{account_id}")
        assert first.text.count('class="payment"') == 20
        assert "w24" in first.text and "w04" not in first.text
        older = re.search(r'href="(/ops/accounts/\d+\?before=\d+)#payments"', first.text)
        assert older is not None
        second = await support.get(older.group(1))
        assert second.text.count('class="payment"') == 5
        assert "w04" in second.text and "w00" in second.text and "w05" not in second.text

    async def test_unknown_account_is_a_404_page(self, support: Console) -> None:
        """An account that does not exist is a 404 page saying so."""
        for account_id in ("999999", "99999999999999999999"):
            page = await support.get(f"/ops/accounts/{account_id}")
            assert page.status == 404


class TestRoles:
    async def test_support_sees_no_changing_forms_and_may_not_post(
        self, support: Console, customer: Customer, pool: asyncpg.Pool
    ) -> None:
        """Support's account page has no block or add-payer form, and posting one anyway is 403."""
        account_id, _ = customer
        page = await support.get(f"/ops/accounts/{account_id}")
        assert "/block" not in page.text and "/payers" not in page.text
        for action in ("block", "payers"):
            answer = await support.post(f"/ops/accounts/{account_id}/{action}", {"csrf": page.csrf()})
            assert answer.status == 403
            assert "только администратор" in answer.text
        assert await status_of(pool, account_id) == "active"
        assert await pool.fetchval("SELECT count(*) FROM payers WHERE account_id = $1", account_id) == 1
        assert (
            await pool.fetchval(
                "SELECT count(*) FROM operator_actions WHERE action NOT IN ('account.view', 'login')"
            )
            == 0
        )

    async def test_admin_blocks_and_the_record_says_who(
        self, admin: Console, client: TestClient[Any, Any], customer: Customer, pool: asyncpg.Pool
    ) -> None:
        """An admin's block takes effect at the gateway and appears on the page as who, what, when."""
        account_id, code = customer
        answer = await admin.submit(f"/ops/accounts/{account_id}", f"/ops/accounts/{account_id}/block")
        assert answer.status == 303
        assert answer.headers["Location"] == f"/ops/accounts/{account_id}#actions"
        assert await status_of(pool, account_id) == "blocked"
        assert "<result>79</result>" in await osmp_check(client, code, "3001", "10.00")
        row = await pool.fetchrow(
            "SELECT o.name, a.details FROM operator_actions a JOIN operators o ON o.id = a.operator_id "
            "WHERE action = 'account.block'"
        )
        assert row["name"] == ADMIN and '"before": "active"' in row["details"]
        page = await admin.get(f"/ops/accounts/{account_id}")
        audit = text_of(page.text[page.text.index('data-testid="audit"') :])
        assert re.search(
            rf"\d{{4}}-\d\d-\d\d \d\d:\d\d:\d\d \+06:00 {ADMIN} заблокировал счёт before=active 127\.0\.0\.1",
            audit,
        )
        assert 'data-testid="status">заблокирован<' in page.text
        again = await admin.submit(f"/ops/accounts/{account_id}", f"/ops/accounts/{account_id}/unblock")
        assert again.status == 303
        assert await status_of(pool, account_id) == "active"

    async def test_admin_adds_a_payer_with_a_new_code(
        self, admin: Console, customer: Customer, pool: asyncpg.Pool
    ) -> None:
        """A new payer gets a new code, shown on the page; the record keeps the code masked."""
        account_id, first_code = customer
        answer = await admin.submit(
            f"/ops/accounts/{account_id}", f"/ops/accounts/{account_id}/payers", {"name": "Asanova Aigul"}
        )
        assert answer.status == 303
        new_code = await pool.fetchval(
            "SELECT payment_code FROM payers WHERE account_id = $1 AND name = 'Asanova Aigul'", account_id
        )
        assert new_code is not None and new_code != first_code
        details = await pool.fetchval("SELECT details FROM operator_actions WHERE action = 'payer.add'")
        assert mask(new_code) in details and new_code not in details
        page = await admin.get(f"/ops/accounts/{account_id}")
        assert f'data-testid="payment-code">{new_code}<' in page.text

    async def test_bad_payer_name_changes_nothing(
        self, admin: Console, customer: Customer, pool: asyncpg.Pool
    ) -> None:
        """A payer name over 200 characters is a 400 page, and no payer or record is added."""
        account_id, _ = customer
        answer = await admin.submit(
            f"/ops/accounts/{account_id}", f"/ops/accounts/{account_id}/payers", {"name": "x" * 201}
        )
        assert answer.status == 400
        assert await pool.fetchval("SELECT count(*) FROM payers WHERE account_id = $1", account_id) == 1
        assert await pool.fetchval("SELECT count(*) FROM operator_actions WHERE action = 'payer.add'") == 0

    async def test_the_record_is_append_only(
        self, admin: Console, customer: Customer, pool: asyncpg.Pool
    ) -> None:
        """No one, not even the database owner, edits or deletes a line of the record."""
        account_id, _ = customer
        await admin.submit(f"/ops/accounts/{account_id}", f"/ops/accounts/{account_id}/block")
        for statement in (
            "UPDATE operator_actions SET operator_id = operator_id",
            "DELETE FROM operator_actions",
            "TRUNCATE operator_actions",
        ):
            with pytest.raises(asyncpg.RestrictViolationError, match="append-only"):
                await pool.execute(statement)


class TestEscaping:
    NAME = '<script>alert("x")</script>'

    async def test_names_are_shown_as_text(self, support: Console, factory: Factory) -> None:
        """An account, payer and service named with markup show it as text on every page."""
        account_id, _ = await factory.account(
            name=self.NAME, email="evil@example.kg", services=["<b>bold</b>.kg"]
        )
        await factory.account(name="<img src=x onerror=alert(1)>", email="evil@example.kg")
        for path in (f"/ops/accounts/{account_id}", "/ops/search?q=evil@example.kg"):
            page = await support.get(path)
            assert "<script>alert" not in page.text and "<img src=x" not in page.text, path
            assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in page.text, path
        page = await support.get(f"/ops/accounts/{account_id}")
        assert "&lt;b&gt;bold&lt;/b&gt;.kg" in page.text and "<b>bold</b>" not in page.text

    async def test_the_query_is_echoed_as_text(self, support: Console) -> None:
        """A search for markup puts it back into the box escaped, never into the page."""
        page = await support.get("/ops/search", params={"q": '"><script>alert(1)</script>'})
        assert "<script>alert(1)" not in page.text
        assert 'value="&#34;&gt;&lt;script&gt;alert(1)&lt;/script&gt;"' in page.text


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


class TestLanguages:
    async def test_switching_language_keeps_the_page(self, support: Console) -> None:
        """The language links switch the whole page and come back to where the operator was."""
        answer = await support.get("/ops/lang/en?next=%2Fops%2Fproviders", follow=False)
        assert answer.status == 303 and answer.headers["Location"] == "/ops/providers"
        english = await support.get("/ops/providers")
        assert '<html lang="en">' in english.text and ">Providers<" in english.text
        await support.get("/ops/lang/ky?next=%2Fops%2F")
        kyrgyz = await support.get("/ops/")
        assert '<html lang="ky">' in kyrgyz.text and "Издөө" in kyrgyz.text
        assert kyrgyz.headers["Content-Language"] == "ky"

    async def test_browser_language_is_the_default(self, console: Console) -> None:
        """Without a choice made, the browser's preferred language is used (Russian if none fits)."""
        english = await console.get("/ops/login", headers={"Accept-Language": "en-GB,en;q=0.9"})
        assert '<html lang="en">' in english.text and "Log in" in english.text
        other = await console.get("/ops/login", headers={"Accept-Language": "de-DE"})
        assert '<html lang="ru">' in other.text

    async def test_unknown_language_and_foreign_next(self, support: Console) -> None:
        """An unknown language is a 404; a `next` outside the console goes home."""
        assert (await support.get("/ops/lang/fr")).status == 404
        answer = await support.get("/ops/lang/en?next=https://evil.example/", follow=False)
        assert answer.headers["Location"] == "/ops/"


class TestProtection:
    async def test_pages_forbid_framing_scripts_from_elsewhere_and_caching(self, support: Console) -> None:
        """Every page carries a strict CSP, no framing, no sniffing, and is never cached."""
        for path in ("/ops/", "/ops/login", "/ops/providers", "/ops/nothing-here"):
            page = await support.get(path)
            assert "default-src 'none'" in page.headers["Content-Security-Policy"]
            assert "frame-ancestors 'none'" in page.headers["Content-Security-Policy"]
            assert page.headers["X-Frame-Options"] == "DENY"
            assert page.headers["X-Content-Type-Options"] == "nosniff"
            assert page.headers["Cache-Control"] == "no-store"

    async def test_style_and_script_are_served_without_login(self, console: Console) -> None:
        """The style sheet and script are served before login (the login form needs them), cacheable."""
        css = await console.get("/ops/static/ops.css", follow=False)
        js = await console.get("/ops/static/ops.js", follow=False)
        assert css.status == 200 and css.headers["Content-Type"].startswith("text/css")
        assert js.status == 200 and "data-confirm" in js.text
        assert "Cache-Control" not in css.headers

    async def test_unknown_path_and_wrong_method(self, support: Console) -> None:
        """An unknown console path is a 404 page; GET on a form's target is a 405; /ops goes to /ops/."""
        assert (await support.get("/ops/nothing-here")).status == 404
        assert (await support.get("/ops/accounts/1/block")).status == 405
        assert (await support.get("/ops", follow=False)).headers["Location"] == "/ops/"

    async def test_console_can_be_switched_off(self, aiohttp_client: ClientMaker, database_url: str) -> None:
        """TOLEM_OPS_CONSOLE=false mounts nothing: /ops/ is an ordinary 404."""
        client = await aiohttp_client(
            create_app(Settings(database_url=SecretStr(database_url), ops_console=False))
        )
        async with client.get("/ops/login") as response:
            assert response.status == 404
            assert "csrf" not in await response.text()

    async def test_logins_are_counted_in_metrics(
        self, console: Console, client: TestClient[Any, Any]
    ) -> None:
        """/metrics counts console logins by outcome."""
        await console.login(ADMIN, "wrong password!")
        await console.login(ADMIN)
        async with client.get("/metrics") as response:
            body = await response.text()
        assert re.search(r'tolem_ops_logins_total\{outcome="ok"\} [1-9]', body)
        assert re.search(r'tolem_ops_logins_total\{outcome="refused"\} [1-9]', body)


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
