"""The console in a real headless Chromium (Debian's package, driven by Playwright) against a
real `tolem serve` process: what a support operator and an admin do, click by click.

One server, one database and one browser serve the whole module (starting them is most of the
cost); each test gets a fresh browser context (cookies, language) and its own customer where
it changes one. The tests are synchronous: Playwright's sync API runs its own event loop.
"""

import asyncio
import os
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from bench.harness import Server
from bench.screens import DEMO_COST, chromium_path, launch_options
from tests.conftest import ledger_violations
from tolem.db import accounts as account_db
from tolem.db import operators as operator_db
from tolem.db import providers as provider_db
from tolem.db.operators import Role
from tolem.protocols.passwords import hash_password

pytestmark = [pytest.mark.browser, pytest.mark.slow]

PASSWORD = "browser test password"
TXN = "3301001"
MARKUP = '<script>window.pwned = 1</script><img src=x onerror="window.pwned = 2">'
# Generous for a shared 2-core machine; every wait is for an element or a URL, never a sleep.
STEP_MS = 20_000


@dataclass
class Customer:
    """An account and its first payment code."""

    account_id: int
    code: str


@dataclass
class Served:
    """A running tolem: a customer who paid through Elsom this morning, one to block, and one
    whose name is markup."""

    url: str
    paid: Customer
    to_block: Customer
    marked_up: Customer
    payment_id: int
    dialogs: list[str] = field(default_factory=list)


def gateway(url: str, **params: str) -> str:
    """One OSMP call to the running server's Elsom gateway; the answer's body."""
    query = urllib.parse.urlencode(params)
    with urllib.request.urlopen(f"{url}/gw/elsom?{query}", timeout=10) as response:  # noqa: S310 - loopback
        return str(response.read().decode())


async def _seed(dsn: str) -> tuple[Customer, Customer, Customer]:
    conn = await asyncpg.connect(dsn)
    try:
        await provider_db.add(
            conn,
            name="elsom",
            protocol="osmp",
            currency="KGS",
            allow_ips=["127.0.0.0/8"],
            login=None,
            password_hash=None,
            secret=None,
            service_id=None,
            min_amount_minor=None,
            max_amount_minor=None,
            timezone=None,
        )
        made = []
        for email, name in (
            ("asan@example.kg", "Асанов Асан"),
            ("bek@example.kg", "Бекова Аида"),
            ("evil@example.kg", MARKUP),
        ):
            account_id, code = await account_db.create_account(conn, email=email, name=name, currency="KGS")
            made.append(Customer(account_id, code))
        for operator, role in (("anna", Role.ADMIN), ("bolot", Role.SUPPORT)):
            await operator_db.add_operator(conn, operator, role, hash_password(PASSWORD, cost=DEMO_COST))
    finally:
        await conn.close()
    return made[0], made[1], made[2]


async def _journaled(dsn: str, txn: str, rows: int) -> int:
    """Waits (bounded) for the server's journal writer; then the payment's id."""
    conn = await asyncpg.connect(dsn)
    try:
        deadline = time.monotonic() + 10
        while await conn.fetchval("SELECT count(*) FROM request_journal WHERE txn = $1", txn) < rows:
            assert time.monotonic() < deadline, "the journal writer wrote nothing within 10 s"
            await asyncio.sleep(0.05)
        return int(await conn.fetchval("SELECT id FROM payments WHERE external_id = $1", txn))
    finally:
        await conn.close()


async def _admin(server_dsn: str, statement: str) -> None:
    conn = await asyncpg.connect(server_dsn)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


@pytest.fixture(scope="module")
def served(server_dsn: str, template_database: str) -> Iterator[Served]:
    """A database cloned from the migrated template, seeded; `tolem serve` on it; one Elsom
    check and pay through the gateway. The ledger must be sound when the module is done."""
    name = f"tolem_browser_{uuid.uuid4().hex[:12]}"
    asyncio.run(_admin(server_dsn, f'CREATE DATABASE "{name}" TEMPLATE "{template_database}"'))
    dsn = f"{server_dsn.rpartition('/')[0]}/{name}"
    server = Server.tolem(dsn)
    try:
        paid, to_block, marked_up = asyncio.run(_seed(dsn))
        asyncio.run(server.start())
        for command in ("check", "pay"):
            answer = gateway(
                server.url,
                command=command,
                txn_id=TXN,
                account=paid.code,
                sum="500.00",
                txn_date="20261202093000",
            )
            assert "<result>0</result>" in answer
        payment_id = asyncio.run(_journaled(dsn, TXN, 2))
        yield Served(server.url, paid, to_block, marked_up, payment_id)
        assert asyncio.run(ledger_violations(dsn)) == []
    finally:
        server.stop()
        asyncio.run(_admin(server_dsn, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="module")
def browser(served: Served) -> Iterator[Browser]:
    """Debian's Chromium, headless, for the whole module. After `served`, and gone before it:
    Playwright's sync API holds its event loop as the running one while it lives."""
    if chromium_path() is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed; .ci/run installs it with apt-get")
        pytest.skip("chromium is not installed (apt-get install chromium chromium-driver)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(**launch_options())
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser, served: Served) -> Iterator[Page]:
    """A fresh context (no cookies) speaking Russian; dialogs are noted and accepted."""
    served.dialogs.clear()
    context = browser.new_context(locale="ru-RU", extra_http_headers={"Accept-Language": "ru"})
    tab = context.new_page()
    tab.set_default_timeout(STEP_MS)
    expect.set_options(timeout=STEP_MS)

    def on_dialog(dialog: Any) -> None:
        served.dialogs.append(dialog.message)
        dialog.accept()

    tab.on("dialog", on_dialog)
    try:
        yield tab
    finally:
        context.close()


def log_in(page: Page, served: Served, name: str) -> None:
    """Opens the console (which asks for a login first) and logs in."""
    page.goto(f"{served.url}/ops/")
    expect(page).to_have_url(f"{served.url}/ops/login?next=%2Fops%2F")
    page.get_by_label("Имя").fill(name)
    page.get_by_label("Пароль").fill(PASSWORD)
    page.get_by_role("button", name="Войти").click()
    expect(page).to_have_url(f"{served.url}/ops/")


def search(page: Page, text: str) -> None:
    """Types into the one search box and presses Enter: the only step support takes."""
    box = page.get_by_role("searchbox")
    box.fill(text)
    box.press("Enter")


def test_support_answers_both_phone_questions_with_one_search(page: Page, served: Served) -> None:
    """Support logs in, types the caller's email once, and reads the payment code and the Elsom
    payment's state from the page that opens; support sees no button that changes anything."""
    log_in(page, served, "bolot")
    search(page, "Asan@Example.kg")
    expect(page).to_have_url(f"{served.url}/ops/accounts/{served.paid.account_id}")
    expect(page.get_by_test_id("payment-code")).to_have_text(served.paid.code)
    payment = page.locator("tbody.payment", has_text=TXN)
    expect(payment).to_contain_text("elsom")
    expect(payment).to_contain_text("500.00 KGS")
    expect(payment).to_contain_text("зачислен")
    expect(page.get_by_test_id("balance")).to_have_text("500.00 KGS")
    expect(page.get_by_role("button", name="Заблокировать счёт")).to_have_count(0)
    expect(page.get_by_role("button", name="Добавить плательщика (новый код)")).to_have_count(0)


def test_admin_blocks_the_account_and_sees_the_record(page: Page, served: Served) -> None:
    """An admin finds the customer, blocks the account (confirming the browser's question), and
    the page shows the new status and the audit line: who, what, when; the gateway refuses."""
    log_in(page, served, "anna")
    search(page, "bek@example.kg")
    expect(page.get_by_test_id("status")).to_have_text("активен")
    page.get_by_role("button", name="Заблокировать счёт").click()
    expect(page.get_by_test_id("status")).to_have_text("заблокирован")
    assert served.dialogs == ["Заблокировать этот счёт? Его коды перестанут принимать платежи."]
    line = page.get_by_test_id("audit").locator("tbody tr").first
    expect(line).to_contain_text("anna")
    expect(line).to_contain_text("заблокировал счёт")
    expect(line).to_contain_text("+06:00")
    answer = gateway(served.url, command="check", txn_id="3301002", account=served.to_block.code, sum="10.00")
    assert "<result>79</result>" in answer


def test_transaction_id_lands_on_the_payment_and_its_calls(page: Page, served: Served) -> None:
    """Elsom's transaction id opens the account at that payment; unfolding it shows the check
    and the pay as the gateway answered them."""
    log_in(page, served, "bolot")
    search(page, TXN)
    anchor = f"payment-{served.payment_id}"
    expect(page).to_have_url(f"{served.url}/ops/accounts/{served.paid.account_id}#{anchor}")
    payment = page.locator(f"#{anchor}")
    expect(payment).to_be_in_viewport()
    payment.get_by_text("Запросы шлюза: 2").click()
    calls = payment.locator("table.journal tbody tr")
    expect(calls).to_have_count(2)
    expect(calls.nth(0)).to_contain_text("pay")
    expect(calls.nth(1)).to_contain_text("check")
    expect(calls.nth(0)).to_contain_text(f"********{served.paid.code[-4:]}")


def test_markup_in_a_name_is_shown_and_never_run(page: Page, served: Served) -> None:
    """An account whose name is a script and an image with an onerror shows both as text; no
    script runs and no dialog opens."""
    log_in(page, served, "bolot")
    page.goto(f"{served.url}/ops/accounts/{served.marked_up.account_id}")
    heading = page.get_by_role("heading", level=1)
    expect(heading).to_contain_text("<script>window.pwned = 1</script>")
    expect(heading).to_contain_text('<img src=x onerror="window.pwned = 2">')
    assert page.evaluate("() => window.pwned === undefined")
    assert page.locator("main img").count() == 0
    assert served.dialogs == []


def test_language_switch_and_logout(page: Page, served: Served) -> None:
    """English is one click away and stays chosen; after logging out the account page asks for
    a login again."""
    log_in(page, served, "bolot")
    page.goto(f"{served.url}/ops/accounts/{served.paid.account_id}")
    page.get_by_role("link", name="English").click()
    expect(page.get_by_role("heading", level=1)).to_have_text(
        f"Account #{served.paid.account_id}: Асанов Асан"
    )
    page.get_by_role("link", name="Today").click()
    expect(page.get_by_role("row", name="elsom")).to_contain_text("500.00 KGS (1)")
    page.get_by_role("button", name="Log out").click()
    expect(page).to_have_url(f"{served.url}/ops/login")
    page.goto(f"{served.url}/ops/accounts/{served.paid.account_id}")
    expect(page.get_by_role("button", name="Log in")).to_be_visible()
