"""Payme fixtures: a configured provider, the app under test, a client speaking JSON-RPC, and a
clock the tests move instead of waiting 12 hours."""

import base64
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestClient

from tests.conftest import Factory
from tolem.app import create_app
from tolem.core.model import Provider, WireProtocol
from tolem.protocols.payme import codes, wire
from tolem.protocols.registry import ADAPTERS
from tolem.settings import Settings

# Payme's merchant keys are 36 characters long.
KEY = "Zx8#kQ2mP9vL4nR7tY1wE5uI3oA6sD0fG&hJ"


def basic(login: str, password: str) -> str:
    """An Authorization header value for HTTP Basic."""
    return "Basic " + base64.b64encode(f"{login}:{password}".encode()).decode()


AUTH = basic("Paycom", KEY)
PATH = "/gw/payme"


class Clock:
    """Payme's "now" for the adapter; starts at the real time so database stamps agree."""

    def __init__(self) -> None:
        self.moment = datetime.now(UTC).replace(microsecond=0)

    def __call__(self) -> datetime:
        return self.moment

    def ms(self, offset: timedelta = timedelta(0)) -> int:
        """The current time (plus `offset`) as a Payme Timestamp."""
        return wire.to_ms(self.moment + offset)

    def advance(self, delta: timedelta) -> None:
        """Moves the clock forward."""
        self.moment += delta


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    """The adapter's clock, replaced for the test."""
    fake = Clock()
    monkeypatch.setattr(ADAPTERS[WireProtocol.PAYME], "now", fake)
    return fake


@pytest.fixture
async def provider(factory: Factory) -> Provider:
    """A Payme provider as an operator adds it: key as password, no allow-list, 1.00..500.00."""
    return await factory.provider(
        "payme",
        "payme",
        password=KEY,
        allow_ips=[],
        min_amount_minor=100,
        max_amount_minor=50000,
    )


@pytest.fixture
async def account(factory: Factory) -> tuple[int, str]:
    """An active account and its payment code."""
    return await factory.account()


def ok(result: Any, request_id: Any = 1) -> dict[str, Any]:
    """A whole success response."""
    return {"jsonrpc": "2.0", "id": request_id, "result": result}


def err(error: codes.PaymeError, request_id: Any = 1) -> dict[str, Any]:
    """A whole error response."""
    return {"jsonrpc": "2.0", "id": request_id, "error": error.body()}


def error_code(body: dict[str, Any]) -> int:
    """The error code of an error response."""
    return int(body["error"]["code"])


@dataclass
class Payme:
    """Speaks to /gw/payme as Payme does: POST, Basic auth, JSON-RPC 2.0."""

    client: TestClient[Any, Any]
    factory: Factory

    async def call(
        self,
        method: str,
        params: Any,
        *,
        request_id: Any = 1,
        auth: str | None = AUTH,
    ) -> dict[str, Any]:
        """One RPC call; returns the decoded body after checking it came as HTTP 200 JSON."""
        document = {"method": method, "params": params, "id": request_id}
        return await self.raw(orjson.dumps(document), auth=auth)

    async def raw(
        self,
        body: bytes,
        *,
        http_method: str = "POST",
        auth: str | None = AUTH,
        headers: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        """Sends any body; Payme's rule is that every answer is HTTP 200 with a JSON body."""
        response = await self.client.request(
            http_method,
            PATH,
            data=body,
            headers={
                "Content-Type": "text/json; charset=UTF-8",
                **({"Authorization": auth} if auth is not None else {}),
                **(headers or {}),
            },
        )
        assert response.status == 200
        assert response.content_type == "application/json"
        assert response.charset == "utf-8"
        decoded: dict[str, Any] = orjson.loads(await response.read())
        return decoded

    async def create(
        self, txn: str, code: str, amount: int, time_ms: int, request_id: Any = 1
    ) -> dict[str, Any]:
        """CreateTransaction."""
        params = {"id": txn, "time": time_ms, "amount": amount, "account": {"code": code}}
        return await self.call("CreateTransaction", params, request_id=request_id)

    async def perform(self, txn: str, request_id: Any = 1) -> dict[str, Any]:
        """PerformTransaction."""
        return await self.call("PerformTransaction", {"id": txn}, request_id=request_id)

    async def cancel(self, txn: str, reason: int, request_id: Any = 1) -> dict[str, Any]:
        """CancelTransaction."""
        return await self.call("CancelTransaction", {"id": txn, "reason": reason}, request_id=request_id)

    async def check(self, txn: str, request_id: Any = 1) -> dict[str, Any]:
        """CheckTransaction."""
        return await self.call("CheckTransaction", {"id": txn}, request_id=request_id)

    async def stored(self, txn: str) -> dict[str, Any]:
        """Our stored payment for a Payme id, with its times as Payme Timestamps."""
        async with self.factory.pool.acquire() as conn:
            row = await conn.fetchrow(
                "SELECT id, state, amount_minor, created_at, credited_at, cancelled_at, cancel_reason,"
                " provider_time, provider_time_raw FROM payments WHERE external_id = $1",
                txn,
            )
        assert row is not None
        return {
            "transaction": str(row["id"]),
            "state": row["state"],
            "amount": row["amount_minor"],
            "create_time": wire.to_ms(row["created_at"]),
            "perform_time": wire.to_ms(row["credited_at"]),
            "cancel_time": wire.to_ms(row["cancelled_at"]),
            "reason": row["cancel_reason"],
            "time": wire.to_ms(row["provider_time"]),
            "time_raw": row["provider_time_raw"],
        }

    async def money(self, account_id: int) -> tuple[int, int, int]:
        """(balance, payments, transfers): what every test checks did or did not move."""
        return (
            await self.factory.balance(account_id),
            await self.factory.count("SELECT count(*) FROM payments"),
            await self.factory.count("SELECT count(*) FROM transfers"),
        )


def app_settings(database_url: str, **overrides: Any) -> Settings:
    """Settings for the app under test (no provider caching)."""
    fields: dict[str, Any] = {
        "database_url": database_url,
        "provider_cache_seconds": 0,
        "request_deadline": 2.0,
        "pool_size": 8,
    }
    fields.update(overrides)
    return Settings.model_validate(fields)


@pytest.fixture
async def payme(
    aiohttp_client: Any,
    settings: Settings,
    factory: Factory,
    provider: Provider,
    clock: Clock,
) -> Payme:
    """A client for /gw/payme on a running app, with the provider configured."""
    client = await aiohttp_client(create_app(settings))
    return Payme(client=client, factory=factory)
