"""The billing's admin calls through a real app: accounts and payers bound by its ids, the feed."""

import asyncio
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient
from pydantic import SecretStr

from tests.conftest import Factory
from tolem.app import create_app
from tolem.core.model import PayCommand
from tolem.core.service import PaymentService
from tolem.settings import Settings

TOKEN = "adm-5b1c0e7d9a3f4e2b8c6d"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
_ACCEPT = "SELECT * FROM tolem_accept($1, $2, $3, $4, NULL, NULL, true)"


@pytest.fixture
def settings(database_url: str) -> Settings:
    """Test settings with the admin API switched on."""
    return Settings(
        database_url=SecretStr(database_url), provider_cache_seconds=0, admin_token=SecretStr(TOKEN)
    )


@pytest.fixture
async def admin(aiohttp_client: Any, settings: Settings) -> TestClient:
    """A client on an app whose admin API is on."""
    return await aiohttp_client(create_app(settings))


async def call(client: TestClient, method: str, path: str, **kw: Any) -> tuple[int, Any]:
    """(status, JSON body) of an authenticated admin call."""
    response = await client.request(method, path, headers=AUTH, **kw)
    return response.status, await response.json()


ASAN = {"email": "asan@example.kg", "name": "Asanov Asan", "services": ["asan.kg"]}


class TestBindAccount:
    async def test_first_call_creates_repeats_find_and_update(
        self, admin: TestClient, factory: Factory
    ) -> None:
        """201 with the first payer's code, then 200 with the same account and code; the details follow."""
        status, first = await call(admin, "PUT", "/admin/accounts/by-ref/client-17", json=ASAN)
        assert status == 201 and first["created"] is True and first["external_ref"] == "client-17"
        changed = {"email": "new@example.kg", "name": "Asanov Asan A.", "services": ["vps-3"]}
        status, again = await call(admin, "PUT", "/admin/accounts/by-ref/client-17", json=changed)
        assert status == 200 and again["created"] is False
        assert (again["account_id"], again["payment_code"]) == (first["account_id"], first["payment_code"])
        status, found = await call(admin, "GET", "/admin/lookup?ref=client-17")
        [account] = found["accounts"]
        assert (account["email"], account["name"], account["external_ref"]) == (
            "new@example.kg",
            "Asanov Asan A.",
            "client-17",
        )
        assert account["services"] == ["asan.kg", "vps-3"]
        assert await factory.count("SELECT count(*) FROM accounts") == 1

    async def test_concurrent_identical_calls_make_one_account(
        self, admin: TestClient, factory: Factory
    ) -> None:
        """Ten identical upserts at once: one account, one 201, every answer naming it and its code."""
        answers = await asyncio.gather(
            *(call(admin, "PUT", "/admin/accounts/by-ref/77", json=ASAN) for _ in range(10))
        )
        assert sorted(status for status, _ in answers) == [200] * 9 + [201]
        assert len({(body["account_id"], body["payment_code"]) for _, body in answers}) == 1
        assert await factory.count("SELECT count(*) FROM accounts WHERE external_ref = '77'") == 1
        assert await factory.count("SELECT count(*) FROM ledger_accounts WHERE kind = 'customer'") == 1

    async def test_bad_refs_and_bodies_are_400(self, admin: TestClient) -> None:
        """A billing id over 64 characters or a body without a name is refused, naming the field."""
        status, body = await call(admin, "PUT", "/admin/accounts/by-ref/" + "9" * 65, json=ASAN)
        assert (status, body["error"]["field"]) == (400, "ref")
        status, body = await call(admin, "PUT", "/admin/accounts/by-ref/5", json={"email": "a@b.c"})
        assert (status, body["error"]["field"]) == (400, "name")


class TestBindPayer:
    async def test_a_payer_is_created_once_and_its_code_repeated(
        self, admin: TestClient, factory: Factory
    ) -> None:
        """Finish in the cabinet twice: one payer, the same code both times, shown with its billing id."""
        _, account = await call(admin, "PUT", "/admin/accounts/by-ref/c1", json=ASAN)
        path = "/admin/accounts/by-ref/c1/payers/profile-9"
        status, first = await call(admin, "PUT", path, json={"name": "Asanova Aida"})
        assert status == 201 and first["payment_code"] != account["payment_code"]
        status, again = await call(admin, "PUT", path, json={})
        assert (status, again["payment_code"], again["created"]) == (200, first["payment_code"], False)
        _, shown = await call(admin, "GET", f"/admin/accounts/{account['account_id']}")
        assert [(p["name"], p["external_ref"]) for p in shown["payers"]] == [
            ("Asanov Asan", None),
            ("Asanova Aida", "profile-9"),
        ]

    async def test_concurrent_identical_calls_make_one_payer(
        self, admin: TestClient, factory: Factory
    ) -> None:
        """Ten identical payer upserts at once: one payer row, one code."""
        await call(admin, "PUT", "/admin/accounts/by-ref/c2", json=ASAN)
        answers = await asyncio.gather(
            *(call(admin, "PUT", "/admin/accounts/by-ref/c2/payers/p", json={}) for _ in range(10))
        )
        assert sorted(status for status, _ in answers) == [200] * 9 + [201]
        assert len({body["payment_code"] for _, body in answers}) == 1
        assert await factory.count("SELECT count(*) FROM payers WHERE external_ref = 'p'") == 1

    async def test_unknown_account_is_404_and_another_accounts_payer_409(self, admin: TestClient) -> None:
        """A payer of an unbound client is 404; a payer id already bound under another client is 409."""
        status, body = await call(admin, "PUT", "/admin/accounts/by-ref/nobody/payers/p", json={})
        assert (status, body["error"]["code"]) == (404, "not_found")
        await call(admin, "PUT", "/admin/accounts/by-ref/a", json=ASAN)
        await call(admin, "PUT", "/admin/accounts/by-ref/b", json=ASAN)
        await call(admin, "PUT", "/admin/accounts/by-ref/a/payers/shared", json={})
        status, body = await call(admin, "PUT", "/admin/accounts/by-ref/b/payers/shared", json={})
        assert (status, body["error"]["code"], body["error"]["field"]) == (
            409,
            "payer_ref_taken",
            "payer_ref",
        )


async def page_through(
    admin: TestClient, after: str | None, limit: int = 2
) -> tuple[list[dict[str, Any]], str | None]:
    """Every event after `after`, page by page; and the cursor to continue from."""
    seen: list[dict[str, Any]] = []
    while True:
        query = f"?limit={limit}" + (f"&after={after}" if after else "")
        status, page = await call(admin, "GET", f"/admin/events{query}")
        assert status == 200
        seen += page["items"]
        if not page["items"]:
            return seen, page["next_after"]
        after = page["next_after"]


class TestFeed:
    async def test_pages_hold_every_event_once_with_its_billing_ids(
        self, admin: TestClient, factory: Factory, service: PaymentService, pool: asyncpg.Pool
    ) -> None:
        """Five events paged two at a time: all of them, in order, once, with refs and amounts."""
        provider = await factory.provider()
        _, bound = await call(admin, "PUT", "/admin/accounts/by-ref/c9", json=ASAN)
        _, payer = await call(admin, "PUT", "/admin/accounts/by-ref/c9/payers/p9", json={})
        for n in range(4):
            await service.pay(provider, PayCommand(str(n), payer["payment_code"], 1_00 + n))
        await service.cancel(provider, external_id="0")
        seen, cursor = await page_through(admin, None)
        assert [(e["type"], e["txn"], e["amount"]) for e in seen] == [
            ("payment.credited", "0", "1.00"),
            ("payment.credited", "1", "1.01"),
            ("payment.credited", "2", "1.02"),
            ("payment.credited", "3", "1.03"),
            ("payment.reversed", "0", "1.00"),
        ]
        assert {(e["account_id"], e["account_ref"], e["payer_ref"]) for e in seen} == {
            (bound["account_id"], "c9", "p9")
        }
        assert cursor is not None and await page_through(admin, cursor) == ([], cursor)

    async def test_an_event_committing_late_is_returned_on_a_later_page_never_skipped(
        self, admin: TestClient, factory: Factory, service: PaymentService, pool: asyncpg.Pool
    ) -> None:
        """A transaction holding an event open hides the later committed one; after its commit both follow."""
        provider = await factory.provider()
        _, code = await factory.account()
        _, other = await factory.account()  # the open transaction holds the first one's balance row
        await service.pay(provider, PayCommand("before", code, 1_00))
        seen, cursor = await page_through(admin, None)
        assert [e["txn"] for e in seen] == ["before"]
        async with pool.acquire() as held:
            tx = held.transaction()
            await tx.start()
            await held.fetchrow(_ACCEPT, provider.id, "slow", code, 2_00)  # older transaction, open
            await service.pay(provider, PayCommand("fast", other, 3_00))  # younger, committed
            assert await factory.count("SELECT count(*) FROM outbox_events") == 2
            hidden, same = await page_through(admin, cursor)
            assert (hidden, same) == ([], cursor)
            await tx.commit()
        later, _ = await page_through(admin, cursor)
        assert [e["txn"] for e in later] == ["slow", "fast"]

    async def test_a_foreign_cursor_is_400(self, admin: TestClient) -> None:
        """A cursor the feed never handed out is refused, naming `after`."""
        for bad in ("zzz", "MTo", "LTE6MQ"):
            status, body = await call(admin, "GET", f"/admin/events?after={bad}")
            assert (status, body["error"]["field"]) == (400, "after")
