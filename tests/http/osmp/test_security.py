"""OSMP callers refused by address or credentials never reach the ledger; no log line holds a
password, a Basic header or a whole payment code."""

import base64
import json
from typing import Any

import pytest

from tests.conftest import Factory
from tests.http.osmp.conftest import Kiosk, OsmpWorld
from tests.security import assert_no_secrets, captured_logs, spy_on_store
from tolem.app import create_app
from tolem.core.payment_codes import mask
from tolem.gateway.handler import JOURNAL
from tolem.settings import Settings

PASSWORD = "kiosk-Pa55word"


def basic(login: str, password: str) -> str:
    """An Authorization header value."""
    return "Basic " + base64.b64encode(f"{login}:{password}".encode()).decode()


async def kiosk_for(aiohttp_client: Any, settings: Settings, factory: Factory, **provider: Any) -> Kiosk:
    """A kiosk calling a provider configured with `provider`."""
    await factory.provider("kiosk", protocol="osmp", **provider)
    _, code = await factory.account()
    return Kiosk(await aiohttp_client(create_app(settings)), code)


async def every_command(kiosk: Kiosk, headers: dict[str, str]) -> list[int]:
    """Check, pay, status and cancel once each; their HTTP statuses."""
    replies = [
        await kiosk.get(
            {"command": "check", "txn_id": "1001", "account": kiosk.code, "sum": "150.00"}, headers=headers
        ),
        await kiosk.pay(headers=headers),
        await kiosk.get({"command": "status", "txn_id": "1001"}, headers=headers),
        await kiosk.get({"command": "cancel", "txn_id": "1001"}, headers=headers),
    ]
    return [reply.status for reply in replies]


async def test_caller_outside_the_allow_list_never_reaches_the_store(
    aiohttp_client: Any, settings: Settings, factory: Factory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every command from an address off the list: 403 and not one store call."""
    kiosk = await kiosk_for(aiohttp_client, settings, factory, allow_ips=["10.20.0.0/16"])
    calls = spy_on_store(monkeypatch)
    assert await every_command(kiosk, {}) == [403] * 4
    assert calls == []


async def test_a_refused_form_post_is_read_for_the_journal_only(
    aiohttp_client: Any, settings: Settings, factory: Factory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A pay POSTed as a form from off the list: 403, no store call, and its row records the
    command, txn_id and masked code it asked for (never the whole code)."""
    kiosk = await kiosk_for(aiohttp_client, settings, factory, allow_ips=["10.20.0.0/16"])
    calls = spy_on_store(monkeypatch)
    reply = await kiosk.post(kiosk.pay_params("7001"))
    assert (reply.status, calls) == (403, [])
    await kiosk.client.app[JOURNAL].flush()
    async with factory.pool.acquire() as conn:
        row = await conn.fetchrow("SELECT command, txn, code_masked, details FROM request_journal")
    assert row is not None
    assert (row["command"], row["txn"], row["code_masked"]) == ("pay", "7001", mask(kiosk.code))
    assert json.loads(row["details"])["refusal"] == "address not allowed"
    assert kiosk.code not in json.dumps(dict(row))


@pytest.mark.parametrize(
    "authorization",
    [None, basic("kiosk", "wrong"), basic("other", PASSWORD), "Basic 😍", "Bearer " + PASSWORD],
)
async def test_wrong_credentials_never_reach_the_store(
    aiohttp_client: Any,
    settings: Settings,
    factory: Factory,
    monkeypatch: pytest.MonkeyPatch,
    authorization: str | None,
) -> None:
    """Every command with wrong or missing credentials: 403 and not one store call."""
    kiosk = await kiosk_for(aiohttp_client, settings, factory, login="kiosk", password=PASSWORD)
    calls = spy_on_store(monkeypatch)
    headers = {"Authorization": authorization} if authorization is not None else {}
    assert await every_command(kiosk, headers) == [403] * 4
    assert calls == []


async def test_the_spy_sees_an_admitted_caller(
    aiohttp_client: Any, settings: Settings, factory: Factory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the right credentials the same commands reach the store, so the refusals are real."""
    kiosk = await kiosk_for(aiohttp_client, settings, factory, login="kiosk", password=PASSWORD)
    calls = spy_on_store(monkeypatch)
    assert await every_command(kiosk, {"Authorization": basic("kiosk", PASSWORD)}) == [200] * 4
    assert "accept" in calls and "cancel" in calls


async def test_no_log_line_holds_a_password_or_a_whole_code(
    world: OsmpWorld, caplog: pytest.LogCaptureFixture
) -> None:
    """Check, pay, replay, status, cancel and refusals: logs never show the whole code."""
    with captured_logs(caplog) as lines:
        await world.kiosk.check()
        await world.kiosk.pay()
        await world.kiosk.pay()
        await world.kiosk.status()
        await world.kiosk.cancel()
        await world.kiosk.pay("1002", "999999.00")
        await world.kiosk.pay("1003", account=world.code + "9")
    assert any("pay" in line and world.code[-4:] in line for line in lines)
    assert_no_secrets(lines, world.code, world.code + "9")


async def test_no_log_line_holds_the_basic_credentials(
    aiohttp_client: Any, settings: Settings, factory: Factory, caplog: pytest.LogCaptureFixture
) -> None:
    """A provider with a password: neither the password nor the header appears in any log."""
    kiosk = await kiosk_for(aiohttp_client, settings, factory, login="kiosk", password=PASSWORD)
    header = basic("kiosk", PASSWORD)
    with captured_logs(caplog) as lines:
        await every_command(kiosk, {"Authorization": header})
        await every_command(kiosk, {"Authorization": basic("kiosk", PASSWORD + "x")})
    assert_no_secrets(lines, PASSWORD, header.removeprefix("Basic "), kiosk.code)
