"""The HTTP shell: health, readiness, provider dispatch, deadline, last-resort errors, log line."""

import asyncio
from typing import Any

import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from pydantic import SecretStr
from structlog.testing import capture_logs

from tests.conftest import Factory
from tolem.app import create_app
from tolem.core.model import Provider, WireProtocol
from tolem.core.payment_codes import mask
from tolem.protocols.base import GatewayContext, ProtocolAdapter
from tolem.protocols.registry import ADAPTERS
from tolem.settings import Settings

ClientMaker = Any


class EchoAdapter(ProtocolAdapter):
    """A stand-in protocol: `?mode=` chooses ok, slow or crash; answers say which path ran."""

    protocol = WireProtocol.OSMP

    async def handle(
        self,
        request: web.Request,
        provider: Provider,
        context: GatewayContext,
        log_line: dict[str, Any],
    ) -> web.StreamResponse:
        mode = request.query.get("mode", "ok")
        log_line.update(command=mode, code=mask(request.query.get("account")), result="0")
        if mode == "slow":
            await asyncio.sleep(10)
        if mode == "crash":
            raise RuntimeError("boom")
        checked = await context.service.check(provider, request.query["account"])
        return web.Response(text=f"ok {provider.name} {checked.account_id}")

    def temporary_error(self, request: web.Request, provider: Provider) -> web.StreamResponse:
        return web.Response(text="retry later")


@pytest.fixture
def echo(monkeypatch: pytest.MonkeyPatch) -> None:
    """Mounts the stand-in adapter for OSMP providers for one test."""
    monkeypatch.setitem(ADAPTERS, WireProtocol.OSMP, EchoAdapter())


@pytest.fixture
async def client(aiohttp_client: ClientMaker, settings: Settings) -> TestClient:
    """A test client on a real app with its own pool on the test database."""
    return await aiohttp_client(create_app(settings.model_copy(update={"request_deadline": 0.5})))


async def test_healthz_and_readyz(client: TestClient) -> None:
    """Up and ready on a migrated database."""
    health = await client.get("/healthz")
    ready = await client.get("/readyz")
    assert (health.status, await health.json()) == (200, {"status": "ok"})
    assert (ready.status, await ready.json()) == (200, {"status": "ready"})


async def test_readyz_reports_pending_migrations(
    aiohttp_client: ClientMaker,
    server_dsn: str,
) -> None:
    """On an unmigrated database readyz is 503 and names what is pending."""
    import uuid

    name = f"tolem_blank_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(server_dsn)
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        dsn = f"{server_dsn.rpartition('/')[0]}/{name}"
        client = await aiohttp_client(create_app(Settings(database_url=SecretStr(dsn))))
        ready = await client.get("/readyz")
        body = await ready.json()
        assert ready.status == 503
        assert body["status"] == "migrations pending"
        assert body["pending"][0] == "0001_ledger.sql"
        await client.close()
    finally:
        await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        await admin.close()


async def test_unknown_and_disabled_providers_are_404(
    client: TestClient,
    factory: Factory,
    echo: None,
) -> None:
    """No provider, or a disabled one, is 404 and reaches no adapter."""
    await factory.provider("off")
    async with factory.pool.acquire() as conn:
        await conn.execute("UPDATE providers SET enabled = false WHERE name = 'off'")
    for path in ("/gw/nobody", "/gw/off"):
        response = await client.get(path, params={"account": "1"})
        assert response.status == 404
        assert "ok" not in await response.text()


async def test_dispatch_reaches_the_adapter_with_the_service(
    client: TestClient,
    factory: Factory,
    echo: None,
) -> None:
    """GET and POST to /gw/{name} run the provider's adapter against the real database."""
    await factory.provider("elsom")
    account_id, code = await factory.account()
    for method in ("GET", "POST"):
        response = await client.request(method, "/gw/elsom", params={"account": code})
        assert (response.status, await response.text()) == (200, f"ok elsom {account_id}")


async def test_deadline_answers_retry(client: TestClient, factory: Factory, echo: None) -> None:
    """A call past the request deadline gets the protocol's retry answer, in time."""
    await factory.provider("elsom")
    loop = asyncio.get_running_loop()
    started = loop.time()
    response = await client.get("/gw/elsom", params={"mode": "slow", "account": "1"})
    assert await response.text() == "retry later"
    assert loop.time() - started < 2


async def test_unexpected_exception_answers_retry(
    client: TestClient,
    factory: Factory,
    echo: None,
) -> None:
    """Any unexpected error becomes the retry answer, never a 500 or a final code."""
    await factory.provider("elsom")
    response = await client.get("/gw/elsom", params={"mode": "crash", "account": "1"})
    assert (response.status, await response.text()) == (200, "retry later")


async def test_one_canonical_line_per_request(
    client: TestClient,
    factory: Factory,
    echo: None,
) -> None:
    """Each request logs exactly one `request` line with id, provider, command, masked code."""
    await factory.provider("elsom")
    _, code = await factory.account()
    with capture_logs() as logs:
        response = await client.get(
            "/gw/elsom", params={"account": code}, headers={"X-Request-Id": "abc-123"}
        )
        await response.read()
    lines = [entry for entry in logs if entry["event"] == "request"]
    assert len(lines) == 1
    line = lines[0]
    assert (line["request_id"], line["provider"], line["command"], line["status"]) == (
        "abc-123",
        "elsom",
        "ok",
        200,
    )
    assert line["code"] == mask(code)
    assert code not in repr(logs)
    assert response.headers["X-Request-Id"] == "abc-123"


async def test_unrouted_calls_get_their_line_too(client: TestClient) -> None:
    """An unknown path is 404 and a known path with another method 405; each logs one line."""
    with capture_logs() as logs:
        missing = await client.get("/nowhere")
        wrong = await client.delete("/gw/elsom")
    assert missing.status == 404
    assert (wrong.status, wrong.headers["Allow"]) == (405, "GET,POST")
    lines = [(entry["path"], entry["status"]) for entry in logs if entry["event"] == "request"]
    assert lines == [("/nowhere", 404), ("/gw/elsom", 405)]


async def test_metrics_exposes_gateway_counters(
    client: TestClient,
    factory: Factory,
    echo: None,
) -> None:
    """After a gateway call /metrics carries its counter in Prometheus text."""
    await factory.provider("elsom")
    _, code = await factory.account()
    await (await client.get("/gw/elsom", params={"account": code})).read()
    body = await (await client.get("/metrics")).text()
    assert 'tolem_gateway_requests_total{command="ok",provider="elsom",result="0"}' in body
    assert "tolem_db_pool_connections " in body


async def test_oversized_body_is_refused(client: TestClient, factory: Factory, echo: None) -> None:
    """A body far beyond any payment request is cut off by the server (413), not parsed."""
    await factory.provider("elsom")

    class Greedy(EchoAdapter):
        async def handle(
            self, request: web.Request, provider: Provider, context: GatewayContext, log_line: dict[str, Any]
        ) -> web.StreamResponse:
            await request.read()
            return web.Response(text="read")

    ADAPTERS[WireProtocol.OSMP] = Greedy()
    response = await client.post("/gw/elsom", data=b"x" * (1024 * 1024))
    assert response.status == 413
