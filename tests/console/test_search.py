"""Console search through a real app, database and gateway: one box for email, service, payment
code and transaction id, and whatever was typed or stored shown as text."""

import re
from typing import Any

import asyncpg
from aiohttp.test_utils import TestClient

from tests.conftest import Factory
from tests.console.conftest import Console, Customer, osmp_check, osmp_pay, text_of


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
