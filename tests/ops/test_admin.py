"""The admin API through a real app and database: token, lookups, account care, errors, OpenAPI."""

from typing import Any

import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from openapi_spec_validator import validate
from pydantic import SecretStr
from structlog.testing import capture_logs

from tests.conftest import Factory
from tests.ops.conftest import ClickWorld
from tolem.app import create_app
from tolem.core.model import PayCommand, Provider
from tolem.core.payment_codes import mask
from tolem.core.service import PaymentService
from tolem.db.store import PgStore
from tolem.gateway.handler import JOURNAL
from tolem.settings import Settings

TOKEN = "adm-7f3e9c1b2d4a6e8f0a1b2c3d"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
ClientMaker = Any


@pytest.fixture
def settings(database_url: str) -> Settings:
    """Test settings with the admin API switched on."""
    return Settings(
        database_url=SecretStr(database_url),
        provider_cache_seconds=0,
        request_deadline=2.0,
        admin_token=SecretStr(TOKEN),
    )


@pytest.fixture
async def admin(aiohttp_client: ClientMaker, settings: Settings) -> TestClient:
    """A client on an app whose admin API is on."""
    return await aiohttp_client(create_app(settings))


async def call(client: TestClient, method: str, path: str, **kw: Any) -> tuple[int, Any]:
    """(status, JSON body) of an authenticated admin call."""
    response = await client.request(method, path, headers=AUTH, **kw)
    return response.status, await response.json()


async def pay(pool: asyncpg.Pool, provider: Provider, txn: str, code: str, amount: int) -> None:
    """Credits a payment through the core service."""
    await PaymentService(PgStore(pool)).pay(provider, PayCommand(txn, code, amount))


class TestToken:
    async def test_admin_api_is_off_without_a_token(
        self, aiohttp_client: ClientMaker, database_url: str
    ) -> None:
        """With TOLEM_ADMIN_TOKEN unset nothing is mounted: /admin paths are plain 404s."""
        client = await aiohttp_client(create_app(Settings(database_url=SecretStr(database_url))))
        for path in ("/admin/lookup?email=a@b.c", "/admin/openapi.json"):
            response = await client.get(path, headers={"Authorization": "Bearer anything"})
            assert response.status == 404
            assert response.content_type != "application/json"

    @pytest.mark.parametrize(
        "header",
        [None, "Bearer wrong-token", f"Basic {TOKEN}", f"Bearer {TOKEN}x", "Bearer", f"bearer{TOKEN}"],
    )
    async def test_missing_or_wrong_token_is_401(self, admin: TestClient, header: str | None) -> None:
        """Anything but the exact bearer token gets 401 with a JSON error and a challenge."""
        headers = {} if header is None else {"Authorization": header}
        response = await admin.get("/admin/providers", headers=headers)
        assert response.status == 401
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
        assert await response.json() == {
            "error": {"code": "unauthorized", "message": "missing or wrong bearer token"}
        }

    async def test_unknown_path_is_401_then_404(self, admin: TestClient) -> None:
        """Unknown admin paths reveal nothing without the token, and are JSON 404s with it."""
        assert (await admin.get("/admin/nope")).status == 401
        assert await call(admin, "GET", "/admin/nope") == (
            404,
            {"error": {"code": "not_found", "message": "no such admin path"}},
        )

    async def test_wrong_method_is_405_with_allow(self, admin: TestClient) -> None:
        """A known path called with another method answers 405 and says which methods work."""
        response = await admin.get("/admin/accounts", headers=AUTH)
        assert (response.status, response.headers["Allow"]) == (405, "POST")
        assert (await response.json())["error"] == {"code": "method_not_allowed", "message": "use POST"}

    async def test_token_is_never_logged(self, admin: TestClient) -> None:
        """The canonical log line of an admin call names the route, never the token."""
        with capture_logs() as logs:
            await call(admin, "GET", "/admin/providers")
            await admin.get("/admin/providers", headers={"Authorization": "Bearer guessed"})
        assert [entry.get("admin") for entry in logs if entry["event"] == "request"] == ["providers", None]
        assert TOKEN not in repr(logs) and "guessed" not in repr(logs)


class TestLookup:
    async def test_by_email_service_and_code(self, admin: TestClient, factory: Factory) -> None:
        """The phone question: email or service name gives the account with its payment codes."""
        account_id, code = await factory.account(email="Asan@Example.kg", services=["asan.kg"])
        await factory.account(email="other@example.kg")
        for query in ("email=asan@example.KG", "service=ASAN.kg", f"code={code[:4]} {code[4:]}"):
            status, body = await call(admin, "GET", f"/admin/lookup?{query}")
            assert status == 200, body
            [account] = body["accounts"]
            assert account["id"] == account_id
            assert [p["payment_code"] for p in account["payers"]] == [code]
            assert (account["balance"], account["status"], account["services"]) == (
                "0.00",
                "active",
                ["asan.kg"],
            )

    async def test_lookup_errors(self, admin: TestClient, factory: Factory) -> None:
        """No match is 404; a bad code, two keys, no key or an unknown parameter is 400 naming it."""
        await factory.account()
        assert (await call(admin, "GET", "/admin/lookup?email=nobody@example.kg"))[0] == 404
        status, body = await call(admin, "GET", "/admin/lookup?code=001234567890")
        assert (status, body["error"]["field"]) == (400, "code")
        status, body = await call(admin, "GET", "/admin/lookup?code=AB12&email=a@b.c")
        assert (status, body["error"]["message"]) == (400, "give exactly one of code, email, service, ref")
        assert "field" not in body["error"]
        assert (await call(admin, "GET", "/admin/lookup"))[0] == 400
        status, body = await call(admin, "GET", "/admin/lookup?emial=a@b.c")
        assert (status, body["error"]["field"]) == (400, "emial")
        status, body = await call(admin, "GET", "/admin/lookup?email=a@b.c&email=d@e.f")
        assert (status, body["error"]["field"]) == (400, "email")


class TestAccounts:
    async def test_create_show_add_payer_block_unblock(self, admin: TestClient, factory: Factory) -> None:
        """An account made through the API is shown, gets a second code, and blocks and unblocks."""
        status, created = await call(
            admin,
            "POST",
            "/admin/accounts",
            json={"email": "new@example.kg", "name": "Beka Beka", "services": ["b.kg"]},
        )
        assert status == 201, created
        account_id = created["id"]
        [first] = created["payers"]
        status, payer = await call(
            admin, "POST", f"/admin/accounts/{account_id}/payers", json={"name": "Aida"}
        )
        assert status == 201 and payer["payment_code"] != first["payment_code"]
        status, shown = await call(admin, "GET", f"/admin/accounts/{account_id}")
        assert status == 200
        assert [p["name"] for p in shown["payers"]] == ["Beka Beka", "Aida"]
        assert await call(admin, "POST", f"/admin/accounts/{account_id}/block") == (
            200,
            {"account_id": account_id, "status": "blocked"},
        )
        assert await factory.count("SELECT count(*) FROM accounts WHERE status = 'blocked'") == 1
        assert (await call(admin, "POST", f"/admin/accounts/{account_id}/unblock"))[1]["status"] == "active"

    async def test_payer_without_body_takes_the_account_name(
        self, admin: TestClient, factory: Factory
    ) -> None:
        """POST .../payers with no body is a payer named like the account."""
        account_id, _ = await factory.account(name="Asanov Asan")
        status, body = await call(admin, "POST", f"/admin/accounts/{account_id}/payers")
        assert status == 201
        assert (
            await factory.count(
                "SELECT count(*) FROM payers WHERE payment_code = $1 AND name = 'Asanov Asan'",
                body["payment_code"],
            )
            == 1
        )

    async def test_bad_bodies_are_400_with_the_field(self, admin: TestClient) -> None:
        """Wrong email, missing name, an unknown field or non-JSON: 400 naming what is wrong."""
        cases = [
            ({"email": "no-at-sign", "name": "X"}, "email"),
            ({"email": "a@b.kg"}, "name"),
            ({"email": "a@b.kg", "name": "X", "balance": 100}, "balance"),
            ({"email": "a@b.kg", "name": "X", "payment_code": "001234567890"}, "payment_code"),
        ]
        for body, field in cases:
            status, answer = await call(admin, "POST", "/admin/accounts", json=body)
            assert (status, answer["error"]["code"], answer["error"]["field"]) == (400, "invalid", field)
        status, answer = await call(admin, "POST", "/admin/accounts", data=b"{not json")
        assert (status, answer["error"]["message"]) == (400, "the body is not JSON")

    async def test_taken_code_is_409(self, admin: TestClient, factory: Factory) -> None:
        """Creating an account with an imported code someone already has is a 409 on payment_code."""
        _, code = await factory.account()
        status, body = await call(
            admin, "POST", "/admin/accounts", json={"email": "x@y.kg", "name": "X", "payment_code": code}
        )
        assert (status, body["error"]["code"], body["error"]["field"]) == (409, "code_taken", "payment_code")
        assert await factory.count("SELECT count(*) FROM accounts") == 1

    async def test_unknown_account_is_404_everywhere(self, admin: TestClient) -> None:
        """Every per-account path answers 404 for an account that does not exist."""
        for method, path in [
            ("GET", "/admin/accounts/999"),
            ("POST", "/admin/accounts/999/payers"),
            ("POST", "/admin/accounts/999/block"),
            ("POST", "/admin/accounts/999/unblock"),
            ("GET", "/admin/accounts/999/payments"),
            ("GET", "/admin/accounts/99999999999999999999"),
        ]:
            status, body = await call(admin, method, path)
            assert (status, body["error"]["code"]) == (404, "not_found"), path


class TestPayments:
    async def test_account_payments_are_paged(
        self, admin: TestClient, factory: Factory, pool: asyncpg.Pool
    ) -> None:
        """Payments come newest first, `limit` at a time, with next_before until the last page."""
        provider = await factory.provider()
        account_id, code = await factory.account()
        for n in range(3):
            await pay(pool, provider, f"t{n}", code, (n + 1) * 100_00)
        status, page = await call(admin, "GET", f"/admin/accounts/{account_id}/payments?limit=2")
        assert status == 200
        assert [(p["txn"], p["amount"], p["amount_minor"]) for p in page["items"]] == [
            ("t2", "300.00", 30000),
            ("t1", "200.00", 20000),
        ]
        status, rest = await call(
            admin, "GET", f"/admin/accounts/{account_id}/payments?limit=2&before={page['next_before']}"
        )
        assert ([p["txn"] for p in rest["items"]], rest["next_before"]) == (["t0"], None)
        status, body = await call(admin, "GET", f"/admin/accounts/{account_id}/payments?limit=0")
        assert (status, body["error"]["field"]) == (400, "limit")

    async def test_payment_by_provider_txn(
        self, admin: TestClient, factory: Factory, pool: asyncpg.Pool
    ) -> None:
        """provider + txn finds the payment; an unknown txn is an empty list, an unknown provider 404."""
        provider = await factory.provider("pay24")
        _, code = await factory.account()
        await pay(pool, provider, "123", code, 150_00)
        status, found = await call(admin, "GET", "/admin/payments?provider=pay24&txn=123")
        assert status == 200
        [payment] = found["items"]
        assert (payment["provider"], payment["txn"], payment["payment_code"], payment["state"]) == (
            "pay24",
            "123",
            code,
            "credited",
        )
        assert (await call(admin, "GET", "/admin/payments?provider=pay24&txn=124"))[1]["items"] == []
        status, body = await call(admin, "GET", "/admin/payments?provider=elsom&txn=123")
        assert (status, body["error"]["field"]) == (404, "provider")
        # The list's other filters are optional (tests/ops/test_reports.py): provider alone lists.
        status, body = await call(admin, "GET", "/admin/payments?provider=pay24")
        assert (status, [p["txn"] for p in body["items"]]) == (200, ["123"])


class TestProviders:
    async def test_secrets_never_returned(self, admin: TestClient, factory: Factory) -> None:
        """Providers are listed with secrets only as present or absent."""
        await factory.provider(
            "clicky", protocol="click", allow_ips=[], secret="Zx9-very-secret", service_id="1"
        )
        await factory.provider("wallet", protocol="payme", allow_ips=[], password="pa55-key-word")
        response = await admin.get("/admin/providers", headers=AUTH)
        text = await response.text()
        assert "Zx9-very-secret" not in text and "pa55-key-word" not in text and "argon" not in text.lower()
        providers = {p["name"]: p for p in (await response.json())["providers"]}
        assert (providers["clicky"]["has_secret"], providers["clicky"]["has_password"]) == (True, False)
        assert (providers["wallet"]["has_secret"], providers["wallet"]["has_password"]) == (False, True)


class TestJournal:
    async def test_did_you_receive_txn_and_what_did_you_answer(self, world: ClickWorld) -> None:
        """With only the token, the journal shows Click's call for a txn and our exact (masked) answer."""
        client = world.click.client
        await world.click.prepare("123")
        await world.click.prepare("124")
        await client.app[JOURNAL].flush()
        status, page = await call(client, "GET", "/admin/journal?provider=click&txn=123")
        assert status == 200
        [entry] = page["items"]
        assert (entry["command"], entry["result"], entry["code_masked"]) == ("prepare", "0", mask(world.code))
        assert '"error": 0' in entry["response_body"] and world.code not in entry["response_body"]
        status, by_code = await call(client, "GET", f"/admin/journal?code={world.code}&limit=1")
        assert [e["txn"] for e in by_code["items"]] == ["124"] and by_code["next_before"] is not None
        status, body = await call(client, "GET", "/admin/journal?since=yesterday")
        assert (status, body["error"]["field"]) == (400, "since")


class TestOpenApi:
    async def test_document_validates_and_matches_the_routes(self, admin: TestClient) -> None:
        """The served document is valid OpenAPI and lists exactly the methods and paths routed."""
        status, document = await call(admin, "GET", "/admin/openapi.json")
        assert status == 200
        validate(document)
        documented = {(method.upper(), path) for path, ops in document["paths"].items() for method in ops}
        [admin_app] = [
            r._app
            for r in admin.app.router.resources()
            if isinstance(r, web.PrefixedSubAppResource) and r.canonical == "/admin"
        ]
        routed = set()
        for route in admin_app.router.routes():
            info = route.resource.get_info() if route.resource else {}
            path = info.get("path") or info.get("formatter")
            if route.name == "not_found":
                continue
            routed.add((route.method, path))
        assert routed == documented
        assert {r for r in routed if "{" in r[1]} == {
            ("GET", "/admin/accounts/{account_id}"),
            ("POST", "/admin/accounts/{account_id}/payers"),
            ("POST", "/admin/accounts/{account_id}/block"),
            ("POST", "/admin/accounts/{account_id}/unblock"),
            ("GET", "/admin/accounts/{account_id}/payments"),
            ("PUT", "/admin/accounts/by-ref/{ref}"),
            ("PUT", "/admin/accounts/by-ref/{ref}/payers/{payer_ref}"),
        }

    async def test_document_describes_bodies_and_errors(self, admin: TestClient) -> None:
        """Request bodies, query parameters and error answers come from the models."""
        _, document = await call(admin, "GET", "/admin/openapi.json")
        create = document["paths"]["/admin/accounts"]["post"]
        assert create["requestBody"]["content"]["application/json"]["schema"] == {
            "$ref": "#/components/schemas/AccountCreate"
        }
        assert set(create["responses"]) == {"201", "400", "401", "409"}
        schemas = document["components"]["schemas"]
        assert set(schemas["AccountCreate"]["required"]) == {"email", "name"}
        lookup = document["paths"]["/admin/lookup"]["get"]
        assert [p["name"] for p in lookup["parameters"]] == ["code", "email", "service", "ref"]
        assert schemas["Error"]["properties"]["error"] == {"$ref": "#/components/schemas/ErrorDetail"}
