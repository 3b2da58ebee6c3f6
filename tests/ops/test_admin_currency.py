"""The admin API keeps one database in one currency, as the CLI does."""

from typing import Any

from aiohttp.test_utils import TestClient
from pydantic import SecretStr

from tests.conftest import Factory
from tests.ops.test_admin import AUTH, TOKEN
from tolem.app import create_app
from tolem.settings import Settings


async def test_account_in_another_currency_than_the_database_is_409(
    aiohttp_client: Any, database_url: str, factory: Factory
) -> None:
    """With KGS providers, POST /admin/accounts on a UZS deployment is 409 currency_mismatch."""
    await factory.provider()
    settings = Settings(database_url=SecretStr(database_url), currency="UZS", admin_token=SecretStr(TOKEN))
    client: TestClient[Any, Any] = await aiohttp_client(create_app(settings))
    response = await client.post("/admin/accounts", headers=AUTH, json={"email": "a@b.uz", "name": "A"})
    body = await response.json()
    assert (response.status, body["error"]["code"]) == (409, "currency_mismatch")
    assert "KGS" in body["error"]["message"]
    assert await factory.count("SELECT count(*) FROM accounts") == 0
