"""The account page through a real app, database and gateway: balance, payments and their calls,
who looked, and what each role may change."""

import re
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient

from tests.conftest import Factory
from tests.console.conftest import (
    ADMIN,
    SUPPORT,
    Console,
    Customer,
    osmp_cancel,
    osmp_check,
    osmp_pay,
    text_of,
)
from tolem.core.model import PayCommand
from tolem.core.payment_codes import mask
from tolem.core.service import PaymentService
from tolem.db.store import PgStore


def payment_block(page_html: str, txn: str) -> str:
    """The account page's rows of the payment with that transaction id."""
    for block in re.findall(r'<tbody id="payment-\d+" class="payment">(.*?)</tbody>', page_html, re.S):
        if f'<td class="mono">{txn}</td>' in block:
            return str(block)
    raise AssertionError(f"no payment {txn} on the page")


def payments_section(page_html: str) -> str:
    """The account page's payments section (the billing section lists transaction ids too)."""
    match = re.search(r'<section id="payments">(.*?)</section>', page_html, re.S)
    assert match is not None, "no payments section on the page"
    return match.group(1)


async def status_of(pool: asyncpg.Pool, account_id: int) -> str:
    """An account's status as stored."""
    return str(await pool.fetchval("SELECT status FROM accounts WHERE id = $1", account_id))


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
        listed = payments_section(first.text)
        assert "w24" in listed and "w04" not in listed
        older = re.search(r'href="(/ops/accounts/\d+\?before=\d+)#payments"', first.text)
        assert older is not None
        second = await support.get(older.group(1))
        assert second.text.count('class="payment"') == 5
        listed = payments_section(second.text)
        assert "w04" in listed and "w00" in listed and "w05" not in listed

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
