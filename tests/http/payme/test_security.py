"""Payme callers that fail authentication never reach the ledger, and no log line holds a secret."""

import base64
from typing import Any

import orjson
import pytest

from tests.conftest import Factory
from tests.http.payme.conftest import AUTH, KEY, Clock, Payme, basic
from tests.security import assert_no_secrets, captured_logs, spy_on_store
from tolem.app import create_app
from tolem.settings import Settings


def every_method(code: str, now_ms: int) -> list[tuple[str, dict[str, Any]]]:
    """One well-formed call of each Payme method."""
    txn = "c0ffee" * 4
    return [
        ("CheckPerformTransaction", {"amount": 500, "account": {"code": code}}),
        ("CreateTransaction", {"id": txn, "time": now_ms, "amount": 500, "account": {"code": code}}),
        ("PerformTransaction", {"id": txn}),
        ("CancelTransaction", {"id": txn, "reason": 5}),
        ("CheckTransaction", {"id": txn}),
        ("GetStatement", {"from": now_ms - 1000, "to": now_ms + 1000}),
    ]


@pytest.mark.parametrize(
    "auth",
    [None, basic("Paycom", "wrong-key"), basic("Other", KEY), "Bearer " + KEY, "Basic !!!", "Basic 😍"],
)
async def test_wrong_credentials_never_reach_the_store(
    payme: Payme,
    account: tuple[int, str],
    clock: Clock,
    monkeypatch: pytest.MonkeyPatch,
    auth: str | None,
) -> None:
    """Each method with wrong or missing credentials: -32504 with the request's id, and not
    one store call."""
    _, code = account
    calls = spy_on_store(monkeypatch)
    for n, (method, params) in enumerate(every_method(code, clock.ms()), start=1):
        answer = await payme.call(method, params, request_id=n, auth=auth)
        assert (answer["id"], answer["error"]["code"]) == (n, -32504), (method, answer)
    assert calls == []
    assert await payme.money(account[0]) == (0, 0, 0)


async def test_caller_outside_the_allow_list_never_reaches_the_store(
    aiohttp_client: Any,
    settings: Settings,
    factory: Factory,
    account: tuple[int, str],
    clock: Clock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Right key but an address outside the allow-list: -32504 with the request's id, and not
    one store call."""
    await factory.provider("payme", "payme", password=KEY, allow_ips=["10.20.0.0/16"])
    client = await aiohttp_client(create_app(settings))
    payme = Payme(client=client, factory=factory)
    calls = spy_on_store(monkeypatch)
    for n, (method, params) in enumerate(every_method(account[1], clock.ms()), start=1):
        answer = await payme.call(method, params, request_id=f"r{n}")
        assert (answer["id"], answer["error"]["code"]) == (f"r{n}", -32504), (method, answer)
    assert calls == []


async def test_the_spy_sees_an_authenticated_caller(
    payme: Payme, account: tuple[int, str], clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the right key the same calls do reach the store, so the refusals above are real."""
    calls = spy_on_store(monkeypatch)
    answer = await payme.call(*every_method(account[1], clock.ms())[0])
    assert answer["result"]["allow"] is True
    assert calls == ["find_payer"]


async def test_no_log_line_holds_a_key_or_a_whole_code(
    payme: Payme, account: tuple[int, str], clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    """A whole payment's life, refusals included: logs never show the key, the header or the code."""
    _, code = account
    with captured_logs(caplog) as lines:
        for method, params in every_method(code, clock.ms()):
            await payme.call(method, params)
            await payme.call(method, params, auth=basic("Paycom", KEY + "x"))
        await payme.raw(orjson.dumps({"method": "CreateTransaction", "params": {"account": {"code": code}}}))
    # The canonical lines themselves were captured, not only library noise.
    assert any("PerformTransaction" in line and code[-4:] in line for line in lines)
    credentials = base64.b64encode(f"Paycom:{KEY}".encode()).decode()
    assert_no_secrets(lines, KEY, credentials, AUTH, code)
