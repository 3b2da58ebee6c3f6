"""When we cannot know or cannot try: -32400 so that Payme repeats, and the repeat settles it.
Also what the canonical log line carries (and never carries)."""

import asyncio
from typing import Any

import orjson
import pytest
import structlog
from aiohttp import web
from aiohttp.test_utils import make_mocked_request
from structlog.testing import capture_logs

import tolem.log
from tests.conftest import Factory, provider_value
from tests.http.payme.conftest import KEY, Clock, Payme, app_settings, err
from tolem.app import create_app
from tolem.core.model import Provider, WireProtocol
from tolem.ops import metrics
from tolem.protocols.payme import codes
from tolem.protocols.payme.adapter import RPC_ID, PaymeAdapter, RpcId
from tolem.protocols.registry import ADAPTERS

TXN = "6400a8b2c3d4e5f6a7b8c9d3"


@pytest.fixture
async def slow_payme(
    aiohttp_client: Any, database_url: str, factory: Factory, provider: Provider, clock: Clock
) -> Payme:
    """An app whose request deadline is short, so a held lock outlasts it quickly."""
    client = await aiohttp_client(create_app(app_settings(database_url, request_deadline=0.5)))
    return Payme(client=client, factory=factory)


async def test_locked_database_answers_system_error_and_retry_settles(
    slow_payme: Payme, factory: Factory, account: tuple[int, str], clock: Clock
) -> None:
    """While the payments table is locked, Create and Perform answer -32400 with the request id;
    once it is free the same calls succeed and credit exactly once."""
    payme = slow_payme
    account_id, code = account
    time_ms = clock.ms()
    async with factory.pool.acquire() as holder:
        async with holder.transaction():
            await holder.execute("LOCK TABLE payments IN ACCESS EXCLUSIVE MODE")
            assert await payme.create(TXN, code, 800, time_ms, request_id=71) == err(codes.system_error(), 71)
        created = await payme.create(TXN, code, 800, time_ms, request_id=72)
        assert created["result"]["state"] == 1
        async with holder.transaction():
            await holder.execute("LOCK TABLE payments IN ACCESS EXCLUSIVE MODE")
            assert await payme.perform(TXN, request_id=73) == err(codes.system_error(), 73)
    performed = await payme.perform(TXN, request_id=74)
    assert performed["result"]["state"] == 2
    assert await payme.perform(TXN, request_id=74) == performed
    assert await payme.money(account_id) == (800, 1, 1)


async def test_deadline_answers_system_error_with_the_request_id(
    slow_payme: Payme, monkeypatch: pytest.MonkeyPatch, account: tuple[int, str]
) -> None:
    """A call still running at the deadline gets -32400, echoing the id it had already read."""
    account_id, _ = account

    async def stuck(_call: Any) -> dict[str, Any]:
        await asyncio.sleep(30)
        return {}

    adapter = ADAPTERS[WireProtocol.PAYME]
    assert isinstance(adapter, PaymeAdapter)
    monkeypatch.setitem(adapter._methods, "CheckTransaction", stuck)
    body = await slow_payme.check(TXN, request_id=81)
    assert body == err(codes.system_error(), 81)
    assert await slow_payme.money(account_id) == (0, 0, 0)


async def test_unexpected_exception_answers_system_error(
    payme: Payme, monkeypatch: pytest.MonkeyPatch, account: tuple[int, str]
) -> None:
    """Any bug inside a method is -32400 (retry), never a final error and never HTTP 500."""
    account_id, _ = account

    async def broken(_call: Any) -> dict[str, Any]:
        raise RuntimeError("bug")

    adapter = ADAPTERS[WireProtocol.PAYME]
    assert isinstance(adapter, PaymeAdapter)
    monkeypatch.setitem(adapter._methods, "GetStatement", broken)
    body = await payme.call("GetStatement", {"from": 0, "to": 1}, request_id="s-9")
    assert body == err(codes.system_error(), "s-9")
    assert await payme.money(account_id) == (0, 0, 0)


def test_temporary_error_echoes_the_id_only_once_read(provider_stub: Provider) -> None:
    """The last-resort answer is -32400 with id null when no id was read, else with that id."""
    adapter = PaymeAdapter()
    request = make_mocked_request("POST", "/gw/payme")
    response = adapter.temporary_error(request, provider_stub)
    assert response.status == 200
    assert isinstance(response, web.Response)
    assert isinstance(response.body, bytes)
    assert orjson.loads(response.body) == err(codes.system_error(), None)
    request[RPC_ID] = RpcId(91)
    response = adapter.temporary_error(request, provider_stub)
    assert isinstance(response, web.Response)
    assert isinstance(response.body, bytes)
    assert orjson.loads(response.body) == err(codes.system_error(), 91)


@pytest.fixture
def provider_stub() -> Provider:
    """A provider value for calls that do not reach the database."""
    return provider_value(WireProtocol.PAYME, "payme")


async def test_log_line_masks_the_code_and_never_holds_secrets(
    payme: Payme, monkeypatch: pytest.MonkeyPatch, account: tuple[int, str], clock: Clock
) -> None:
    """Each call logs its method, masked code, Payme id, result and replay flag; the full code
    and the key appear nowhere, and unknown method names are not used as labels."""
    account_id, code = account
    monkeypatch.setattr(tolem.log, "_log", structlog.get_logger("test"))
    with capture_logs() as logs:
        await payme.create(TXN, code, 500, clock.ms())
        await payme.create(TXN, code, 500, clock.ms())
        await payme.perform(TXN)
        await payme.call("NoSuchMethod", {})
        await payme.call("CheckTransaction", {"id": TXN}, auth=None)
    lines = [
        {k: v for k, v in line.items() if k in {"command", "code", "txn", "result", "replayed"}}
        for line in logs
    ]
    masked = "*" * (len(code) - 4) + code[-4:]
    assert lines == [
        {"command": "CreateTransaction", "code": masked, "txn": TXN, "result": "ok", "replayed": False},
        {"command": "CreateTransaction", "code": masked, "txn": TXN, "result": "ok", "replayed": True},
        {"command": "PerformTransaction", "code": masked, "txn": TXN, "result": "ok", "replayed": False},
        {"command": "unknown", "result": "-32601"},
        {"command": "CheckTransaction", "txn": TXN, "result": "-32504"},
    ]
    everything = repr(logs)
    assert code not in everything
    assert KEY not in everything
    assert await payme.money(account_id) == (500, 1, 1)


async def test_metrics_count_by_method_and_result(
    payme: Payme, account: tuple[int, str], clock: Clock
) -> None:
    """Gateway calls are counted under the method name and the Payme result, replays apart."""
    _, code = account

    def sample(name: str, **labels: str) -> float:
        return metrics.REGISTRY.get_sample_value(name, {"provider": "payme", **labels}) or 0.0

    created = {"command": "CreateTransaction", "result": "ok"}
    missing = {"command": "PerformTransaction", "result": "-31003"}
    before = (
        sample("tolem_gateway_requests_total", **created),
        sample("tolem_gateway_requests_total", **missing),
        sample("tolem_replays_total"),
        sample("tolem_credited_minor_total"),
    )
    await payme.create(TXN, code, 500, clock.ms())
    await payme.create(TXN, code, 500, clock.ms())
    await payme.perform(TXN)
    await payme.perform(TXN)
    await payme.perform("missing")
    after = (
        sample("tolem_gateway_requests_total", **created),
        sample("tolem_gateway_requests_total", **missing),
        sample("tolem_replays_total"),
        sample("tolem_credited_minor_total"),
    )
    assert [a - b for a, b in zip(after, before, strict=True)] == [2, 1, 2, 500]
    response = await payme.client.get("/metrics")
    assert 'command="CreateTransaction",provider="payme",result="ok"' in await response.text()
