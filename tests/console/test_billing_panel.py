"""The account page's billing section through a real app, database and gateway: each credit's
outbox event and where its delivery stands, the code masked, for the account's own events only."""

import re
from typing import Any

import asyncpg
from aiohttp.test_utils import TestClient

from tests.conftest import Factory
from tests.console.conftest import Console, Customer, osmp_cancel, osmp_pay, text_of
from tolem.billing.sink import Delivered, Manual, Outcome, Refused, Retry
from tolem.core.payment_codes import mask
from tolem.db import outbox


def billing_section(page_html: str) -> str:
    """The billing section of an account page."""
    match = re.search(r'<section id="panel-billing" class="panel">(.*?)</section>', page_html, re.S)
    assert match is not None, "no billing section on the page"
    return match.group(1)


def event_rows(section: str) -> list[tuple[str, str]]:
    """(state, visible text) of each event row, in page order."""
    rows = re.findall(r'<tr id="event-[0-9a-f-]+" class="[^"]*" data-state="(\w+)">(.*?)</tr>', section, re.S)
    return [(state, text_of(row)) for state, row in rows]


async def settle_next(pool: asyncpg.Pool, outcome: Outcome) -> None:
    """Claims the next due event, as a dispatcher would, and records the attempt's outcome."""
    [claimed] = await outbox.claim(pool, limit=1, lease_seconds=30, sink="webhook")
    await outbox.settle(pool, claimed, outcome, give_up_seconds=3600)


async def billing_of(console: Console, account_id: int) -> str:
    """The billing section of the account's page, in English."""
    page = await console.get(f"/ops/accounts/{account_id}", headers={"Accept-Language": "en"})
    assert page.status == 200
    return billing_section(page.text)


class TestBillingSection:
    async def test_a_pay_shows_as_pending_with_the_code_masked(
        self, support: Console, client: TestClient[Any, Any], customer: Customer
    ) -> None:
        """A credit's event shows pending with its amount, provider, transaction and masked code."""
        account_id, code = customer
        await osmp_pay(client, code, "2001", "150.50")
        section = await billing_of(support, account_id)
        [(state, row)] = event_rows(section)
        assert state == "pending"
        assert "credit" in row and "pending, not delivered yet" in row
        assert "150.50 KGS" in row and "kiosk" in row and "2001" in row
        assert str(mask(code)) in row
        assert code not in section

    async def test_delivered_then_a_reversal_newest_first(
        self, support: Console, client: TestClient[Any, Any], customer: Customer, pool: asyncpg.Pool
    ) -> None:
        """A delivered credit shows delivered, and the later reversal is listed above it, pending."""
        account_id, code = customer
        await osmp_pay(client, code, "2002", "99.00")
        await settle_next(pool, Delivered())
        await osmp_cancel(client, "2002")
        rows = event_rows(await billing_of(support, account_id))
        assert [state for state, _ in rows] == ["pending", "delivered"]
        assert "reversal" in rows[0][1] and "credit" in rows[1][1]

    async def test_dead_and_manual_events_show_with_their_reasons(
        self, support: Console, client: TestClient[Any, Any], customer: Customer, pool: asyncpg.Pool
    ) -> None:
        """A refused event shows dead and a manual one manual, each with the receiver's reason."""
        account_id, code = customer
        await osmp_pay(client, code, "2003", "10.00")
        await osmp_cancel(client, "2003")
        await settle_next(pool, Refused("410 Gone"))
        await settle_next(pool, Manual("reversal: take the amount back by hand"))
        section = await billing_of(support, account_id)
        rows = event_rows(section)
        assert [state for state, _ in rows] == ["manual", "dead"]
        assert "manual, needs an operator" in rows[0][1] and "take the amount back by hand" in rows[0][1]
        assert "dead, given up" in rows[1][1] and "410 Gone" in rows[1][1]
        assert 'class="state outbox-manual"' in section and 'class="state outbox-dead"' in section

    async def test_a_retry_shows_its_attempts_error_and_next_attempt(
        self, support: Console, client: TestClient[Any, Any], customer: Customer, pool: asyncpg.Pool
    ) -> None:
        """An event waiting after a failed attempt shows one attempt, the error and a next time."""
        account_id, code = customer
        await osmp_pay(client, code, "2004", "20.00")
        await settle_next(pool, Retry("503 Service Unavailable"))
        section = await billing_of(support, account_id)
        [(state, row)] = event_rows(section)
        assert state == "pending" and "503 Service Unavailable" in row
        cells = re.findall(r"<td[^>]*>(.*?)</td>", section, re.S)
        assert text_of(cells[3]) == "1"
        # Created and next attempt, both in the deployment's zone with its offset.
        assert len(re.findall(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d [+-]\d\d:\d\d", row)) == 2

    async def test_another_accounts_events_do_not_appear(
        self, support: Console, client: TestClient[Any, Any], customer: Customer, factory: Factory
    ) -> None:
        """Each account's section lists its own events only; one without any says so."""
        account_id, code = customer
        other_id, other_code = await factory.account(name="Bekova Aiza")
        await osmp_pay(client, other_code, "2005", "30.00")
        assert event_rows(await billing_of(support, account_id)) == []
        assert "No billing events." in text_of(await billing_of(support, account_id))
        [(_, row)] = event_rows(await billing_of(support, other_id))
        assert "2005" in row and str(mask(other_code)) in row and str(mask(code)) not in row

    async def test_support_sees_it_read_only_and_is_told_about_the_pull_feed(
        self, support: Console, client: TestClient[Any, Any], customer: Customer
    ) -> None:
        """A support operator sees the section, which has no form, and, with no sink configured,
        the line saying events wait for the pull feed."""
        account_id, code = customer
        await osmp_pay(client, code, "2006", "40.00")
        section = await billing_of(support, account_id)
        assert len(event_rows(section)) == 1
        assert "<form" not in section and "<button" not in section
        assert 'data-testid="billing-pull"' in section

    async def test_in_russian(
        self, support: Console, client: TestClient[Any, Any], customer: Customer
    ) -> None:
        """The section speaks the operator's language: Russian by default."""
        account_id, code = customer
        await osmp_pay(client, code, "2007", "50.00")
        page = await support.get(f"/ops/accounts/{account_id}")
        section = text_of(page.text)
        assert "Биллинг (кабинет клиента)" in section and "ожидает, ещё не доставлено" in section
