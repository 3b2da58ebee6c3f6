"""Who may call: the provider's IP allow-list (X-Forwarded-For only from trusted proxies) and,
when configured, HTTP Basic credentials. Anyone else gets HTTP 403 before anything is read."""

import base64
from ipaddress import ip_network
from typing import Any

from pydantic import SecretStr

from tests.conftest import Factory
from tests.http.osmp.conftest import ClientMaker, Kiosk, paid
from tolem.app import create_app
from tolem.settings import Settings


def basic(login: str, password: str) -> str:
    """An Authorization header value."""
    return "Basic " + base64.b64encode(f"{login}:{password}".encode()).decode()


async def kiosk_for(
    aiohttp_client: ClientMaker, settings: Settings, factory: Factory, **provider: Any
) -> tuple[Kiosk, int]:
    """A kiosk calling a provider configured with `provider`; returns it and the account id."""
    await factory.provider("kiosk", protocol="osmp", **provider)
    account_id, code = await factory.account()
    client = await aiohttp_client(create_app(settings))
    return Kiosk(client, code), account_id


async def test_address_outside_the_allow_list_gets_403(
    aiohttp_client: ClientMaker, settings: Settings, factory: Factory
) -> None:
    """A caller off the list gets 403 with no XML, for every command; nothing is stored."""
    kiosk, account_id = await kiosk_for(aiohttp_client, settings, factory, allow_ips=["10.0.0.0/8"])
    for reply in (await kiosk.pay("5001"), await kiosk.check("5001"), await kiosk.status("5001")):
        assert (reply.status, reply.text) == (403, "forbidden\n")
    assert await factory.balance(account_id) == 0
    assert await factory.count("SELECT count(*) FROM payments") == 0


async def test_refused_before_the_body_is_read(
    aiohttp_client: ClientMaker, settings: Settings, factory: Factory
) -> None:
    """A broken, oversized body from a refused caller still gets 403, not a parse error."""
    kiosk, _ = await kiosk_for(aiohttp_client, settings, factory, allow_ips=["10.0.0.0/8"])
    reply = await kiosk.post(b"\xff" * 100_000, headers={"Content-Type": "application/json"})
    assert reply.status == 403


async def test_forwarded_for_is_believed_only_from_trusted_proxies(
    aiohttp_client: ClientMaker, database_url: str, factory: Factory
) -> None:
    """Behind a trusted proxy the forwarded address decides; from anyone else it is ignored."""
    await factory.provider("kiosk", protocol="osmp", allow_ips=["79.142.16.0/20"])
    _, code = await factory.account()
    plain = Settings(database_url=SecretStr(database_url), provider_cache_seconds=0)
    proxied = Settings(
        database_url=SecretStr(database_url),
        provider_cache_seconds=0,
        trusted_proxies=(ip_network("127.0.0.0/8"),),
    )
    forwarded = {"X-Forwarded-For": "79.142.16.5"}
    direct = Kiosk(await aiohttp_client(create_app(plain)), code)
    assert (await direct.pay("5010", headers=forwarded)).status == 403
    behind = Kiosk(await aiohttp_client(create_app(proxied)), code)
    reply = await behind.pay("5010", headers=forwarded)
    assert "<result>0</result>" in reply.text
    assert (await behind.pay("5011", headers={"X-Forwarded-For": "8.8.8.8"})).status == 403


async def test_basic_credentials_when_configured(
    aiohttp_client: ClientMaker, settings: Settings, factory: Factory
) -> None:
    """With a password set, missing or wrong credentials get 403 and the right ones pass."""
    kiosk, account_id = await kiosk_for(
        aiohttp_client, settings, factory, allow_ips=[], login="pay24", password="s3cret-pass"
    )
    for header in (None, basic("pay24", "wrong"), basic("other", "s3cret-pass"), "Basic !!", "Bearer x"):
        headers = {} if header is None else {"Authorization": header}
        assert (await kiosk.pay("5020", headers=headers)).status == 403, header
    assert await factory.balance(account_id) == 0
    good = await kiosk.pay("5020", headers={"Authorization": basic("pay24", "s3cret-pass")})
    payment_id = await factory.count("SELECT id FROM payments")
    assert good.text == paid("5020", payment_id, "150.00")


async def test_unknown_and_disabled_provider_get_404(
    aiohttp_client: ClientMaker, settings: Settings, factory: Factory
) -> None:
    """No such provider, or a disabled one: 404 and nothing recorded."""
    kiosk, _ = await kiosk_for(aiohttp_client, settings, factory, allow_ips=["127.0.0.0/8"])
    response = await kiosk.client.get("/gw/nobody", params={"command": "check"})
    assert response.status == 404
    async with factory.pool.acquire() as conn:
        await conn.execute("UPDATE providers SET enabled = false")
    assert (await kiosk.pay("5030")).status == 404
    assert await factory.count("SELECT count(*) FROM payments") == 0
