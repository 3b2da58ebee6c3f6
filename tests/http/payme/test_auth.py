"""Who may call: HTTP Basic with `Paycom` (or the configured login) and the key, from the
allow-list if one is set; anyone else gets -32504, echoing the request's id, and nothing of
the call goes further than that answer and the journal."""

from typing import Any

import orjson
import pytest

from tests.conftest import Factory
from tests.http.payme.conftest import KEY, Clock, Payme, basic, err, ok
from tolem.app import create_app
from tolem.protocols.payme import codes
from tolem.settings import Settings


def refused(request_id: object = 1) -> dict[str, Any]:
    """The -32504 answer, echoing the request's JSON-RPC id."""
    return err(codes.insufficient_privilege(), request_id)


REFUSED = refused(None)


def _every_method(code: str, time_ms: int) -> list[tuple[str, dict[str, Any]]]:
    return [
        ("CheckPerformTransaction", {"amount": 500, "account": {"code": code}}),
        ("CreateTransaction", {"id": "a1", "time": time_ms, "amount": 500, "account": {"code": code}}),
        ("PerformTransaction", {"id": "a1"}),
        ("CancelTransaction", {"id": "a1", "reason": 1}),
        ("CheckTransaction", {"id": "a1"}),
        ("GetStatement", {"from": 0, "to": time_ms}),
    ]


BAD_CREDENTIALS: dict[str, str | None] = {
    "missing": None,
    "wrong-key": basic("Paycom", "wrong-key"),
    "wrong-login": basic("Other", KEY),
    "login-case": basic("paycom", KEY),
    "empty-key": basic("Paycom", ""),
    "key-with-space": basic("Paycom", KEY + " "),
    "bearer": "Bearer " + KEY,
    "garbage": "Basic !!!not-base64!!!",
    "no-colon": "Basic UGF5Y29t",  # base64 of "Paycom"
    "empty-basic": "Basic",
}


async def test_every_method_refuses_bad_credentials(
    payme: Payme, account: tuple[int, str], clock: Clock
) -> None:
    """Each of the six methods answers -32504 with the request's id to wrong or missing credentials."""
    account_id, code = account
    for case, auth in BAD_CREDENTIALS.items():
        for method, params in _every_method(code, clock.ms()):
            body = await payme.call(method, params, request_id=7, auth=auth)
            assert body == refused(7), (case, method)
    assert await payme.money(account_id) == (0, 0, 0)


async def test_string_and_missing_ids_are_echoed_as_sent(payme: Payme, account: tuple[int, str]) -> None:
    """A refused call echoes a string id as it came, and null when the request has none."""
    _, code = account
    params = {"amount": 500, "account": {"code": code}}
    assert await payme.call("CheckPerformTransaction", params, request_id="a-7", auth=None) == refused("a-7")
    document = orjson.dumps({"method": "CheckPerformTransaction", "params": params})
    assert await payme.raw(document, auth=None) == REFUSED


@pytest.mark.parametrize(
    "document",
    [
        {"method": "CheckTransaction", "params": {"id": "a1"}, "id": True},
        {"method": "CheckTransaction", "params": {"id": "a1"}, "id": "x" * 129},
        {"method": "CheckTransaction", "params": {"id": "a1"}, "id": {"nested": 1}},
        [{"method": "CheckTransaction", "params": {"id": "a1"}, "id": 3}],
    ],
)
async def test_unusable_ids_are_not_echoed(payme: Payme, document: object) -> None:
    """An id that is no JSON-RPC id (bool, object, over-long text, a batch) is answered null."""
    assert await payme.raw(orjson.dumps(document), auth=None) == REFUSED


async def test_refused_before_the_body_is_read(payme: Payme, account: tuple[int, str]) -> None:
    """Bad credentials win over a broken body and over a GET: the answer is -32504, never a
    parse or method error."""
    account_id, _ = account
    assert await payme.raw(b"{not json", auth=None) == REFUSED
    assert await payme.raw(b"", http_method="GET", auth=basic("Paycom", "x")) == REFUSED
    assert await payme.money(account_id) == (0, 0, 0)


async def test_configured_login_replaces_paycom(
    aiohttp_client: Any, settings: Settings, factory: Factory, clock: Clock
) -> None:
    """A provider with --login expects that login; `Paycom` is then refused."""
    await factory.provider("payme", "payme", password=KEY, allow_ips=[], login="merchant")
    account_id, code = await factory.account()
    payme = Payme(client=await aiohttp_client(create_app(settings)), factory=factory)
    params = {"amount": 500, "account": {"code": code}}
    denied = await payme.call("CheckPerformTransaction", params, auth=basic("Paycom", KEY))
    assert denied == refused(1)
    allowed = await payme.call("CheckPerformTransaction", params, auth=basic("merchant", KEY))
    assert allowed == ok({"allow": True, "additional": {"name": "Asanov A."}})
    assert await payme.money(account_id) == (0, 0, 0)


async def test_caller_outside_allow_list_is_refused_even_with_the_key(
    aiohttp_client: Any, settings: Settings, factory: Factory, clock: Clock
) -> None:
    """With Payme's address range configured, a call from elsewhere is -32504 despite the key."""
    await factory.provider("payme", "payme", password=KEY, allow_ips=["185.234.113.0/28"])
    account_id, code = await factory.account()
    payme = Payme(client=await aiohttp_client(create_app(settings)), factory=factory)
    body = await payme.create("a1", code, 500, clock.ms(), request_id=41)
    assert body == refused(41)
    assert await payme.money(account_id) == (0, 0, 0)


async def test_allowed_address_with_the_key_is_served(
    aiohttp_client: Any, settings: Settings, factory: Factory, clock: Clock
) -> None:
    """An allow-listed caller with the right key is served."""
    await factory.provider("payme", "payme", password=KEY, allow_ips=["127.0.0.0/8", "::1/128"])
    account_id, code = await factory.account()
    payme = Payme(client=await aiohttp_client(create_app(settings)), factory=factory)
    body = await payme.call("CheckPerformTransaction", {"amount": 500, "account": {"code": code}})
    assert body == ok({"allow": True, "additional": {"name": "Asanov A."}})
    assert await payme.money(account_id) == (0, 0, 0)


async def test_disabled_provider_is_not_found(
    aiohttp_client: Any, settings: Settings, factory: Factory, clock: Clock
) -> None:
    """A disabled Payme provider is a 404 from the gateway; the adapter never runs."""
    await factory.provider("payme", "payme", password=KEY, allow_ips=[])
    async with factory.pool.acquire() as conn:
        await conn.execute("UPDATE providers SET enabled = false")
    client = await aiohttp_client(create_app(settings))
    response = await client.post(
        "/gw/payme",
        data=b'{"method":"CheckPerformTransaction","params":{},"id":1}',
        headers={"Authorization": basic("Paycom", KEY)},
    )
    assert response.status == 404
    assert await factory.count("SELECT count(*) FROM payments") == 0
