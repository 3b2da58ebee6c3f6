"""Refused gateway calls in the request journal: each row says what the caller asked (command,
txn, masked code) and why it was refused, so `tolem journal --txn` and /admin/journal find it;
secrets and signatures are never stored, and nothing the caller sent reaches the store."""

import base64
import json
from ipaddress import ip_network
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestClient
from pydantic import SecretStr

from tests.conftest import Factory
from tests.http.click.conftest import SECRET, SERVICE_ID, ClickSide, echoing
from tests.http.osmp.conftest import Kiosk
from tests.ops.conftest import Cli
from tests.security import spy_on_store
from tolem.app import create_app
from tolem.core.payment_codes import mask
from tolem.gateway.handler import JOURNAL
from tolem.settings import Settings

TOKEN = "adm-5e1f0c2b7d9a4e3f8a6b1c0d"
ADMIN = {"Authorization": f"Bearer {TOKEN}"}
PAYME_KEY = "Payme-key-0123456789abcdef0123456789"
KIOSK_PASSWORD = "kiosk-Pa55word"
COLUMNS = ("command", "txn", "code_masked", "result", "http_status")

ClientMaker = Any


def basic(login: str, password: str) -> str:
    """An Authorization header value."""
    return "Basic " + base64.b64encode(f"{login}:{password}".encode()).decode()


@pytest.fixture
def settings(database_url: str) -> Settings:
    """Test settings with the admin API on, so /admin/journal can be asked too."""
    return Settings(
        database_url=SecretStr(database_url),
        provider_cache_seconds=0,
        request_deadline=2.0,
        admin_token=SecretStr(TOKEN),
    )


async def journaled(client: TestClient[Any, Any], cli: Cli, txn: str) -> dict[str, Any]:
    """The one journal row of `txn`, as `tolem journal --txn` shows it; /admin/journal must
    show the same row."""
    await client.app[JOURNAL].flush()
    run = await cli("journal", "--txn", txn, "--json")
    assert run.code == 0, run.err
    [row] = run.json()
    response = await client.get(f"/admin/journal?txn={txn}", headers=ADMIN)
    [entry] = (await response.json())["items"]
    assert {k: entry[k] for k in (*COLUMNS, "details")} == {k: row[k] for k in (*COLUMNS, "details")}
    return dict(row)


def summary(row: dict[str, Any]) -> tuple[Any, ...]:
    """The columns a support operator reads first, and the refusal reason."""
    return (*(row[k] for k in COLUMNS), row["details"].get("refusal"))


def nothing_secret(row: dict[str, Any], *secrets: str) -> None:
    """None of the secrets appears anywhere in the stored row."""
    text = json.dumps(row, default=str)
    for secret in secrets:
        assert secret not in text


class TestOsmp:
    async def kiosk(
        self, aiohttp_client: ClientMaker, settings: Settings, factory: Factory, **kw: Any
    ) -> Kiosk:
        """A kiosk calling provider `kiosk` configured with `kw`."""
        await factory.provider("kiosk", protocol="osmp", **kw)
        _, code = await factory.account()
        return Kiosk(await aiohttp_client(create_app(settings)), code)

    async def test_address_refusal_is_journaled_with_what_it_asked(
        self,
        aiohttp_client: ClientMaker,
        settings: Settings,
        factory: Factory,
        cli: Cli,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        """A pay from off the allow-list: 403, no store call, and a row with pay, txn, masked
        code and "address not allowed"."""
        kiosk = await self.kiosk(aiohttp_client, settings, factory, allow_ips=["10.20.0.0/16"])
        calls = spy_on_store(monkeypatch)
        reply = await kiosk.pay("5001")
        assert (reply.status, calls) == (403, [])
        row = await journaled(kiosk.client, cli, "5001")
        assert summary(row) == ("pay", "5001", mask(kiosk.code), "forbidden", 403, "address not allowed")
        nothing_secret(row, kiosk.code)

    async def test_untrusted_forwarded_for_is_named(
        self, aiohttp_client: ClientMaker, settings: Settings, factory: Factory, cli: Cli
    ) -> None:
        """X-Forwarded-For from a peer that is no trusted proxy: the refusal says so."""
        kiosk = await self.kiosk(aiohttp_client, settings, factory, allow_ips=["79.142.16.0/20"])
        query = {"command": "check", "txn_id": "5002", "account": kiosk.code, "sum": "10.00"}
        reply = await kiosk.get(query, headers={"X-Forwarded-For": "79.142.16.5"})
        assert reply.status == 403
        row = await journaled(kiosk.client, cli, "5002")
        assert summary(row) == (
            "check",
            "5002",
            mask(kiosk.code),
            "forbidden",
            403,
            "address not allowed; X-Forwarded-For present but not trusted",
        )

    async def test_forwarded_for_from_a_trusted_proxy_is_a_plain_address_refusal(
        self, aiohttp_client: ClientMaker, database_url: str, factory: Factory, cli: Cli
    ) -> None:
        """Behind a trusted proxy, a forwarded address off the list is "address not allowed"."""
        proxied = Settings(
            database_url=SecretStr(database_url),
            provider_cache_seconds=0,
            admin_token=SecretStr(TOKEN),
            trusted_proxies=(ip_network("127.0.0.0/8"),),
        )
        kiosk = await self.kiosk(aiohttp_client, proxied, factory, allow_ips=["79.142.16.0/20"])
        reply = await kiosk.pay("5003", headers={"X-Forwarded-For": "8.8.8.8"})
        assert reply.status == 403
        row = await journaled(kiosk.client, cli, "5003")
        assert row["remote_addr"] == "8.8.8.8"
        assert row["details"]["refusal"] == "address not allowed"

    async def test_credentials_refusal_keeps_the_password_out(
        self,
        aiohttp_client: ClientMaker,
        settings: Settings,
        factory: Factory,
        cli: Cli,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        """A form POST with a wrong password: 403, no store call, "bad credentials", and neither
        password nor header stored."""
        kiosk = await self.kiosk(
            aiohttp_client, settings, factory, allow_ips=[], login="kiosk", password=KIOSK_PASSWORD
        )
        header = basic("kiosk", KIOSK_PASSWORD + "x")
        calls = spy_on_store(monkeypatch)
        reply = await kiosk.post(kiosk.pay_params("5004"), headers={"Authorization": header})
        assert (reply.status, calls) == (403, [])
        row = await journaled(kiosk.client, cli, "5004")
        assert summary(row) == ("pay", "5004", mask(kiosk.code), "forbidden", 403, "bad credentials")
        nothing_secret(row, KIOSK_PASSWORD, header.removeprefix("Basic "), kiosk.code)


class TestClick:
    async def click(
        self, aiohttp_client: ClientMaker, settings: Settings, factory: Factory, **kw: Any
    ) -> ClickSide:
        """Click's side, calling provider `click` configured with `kw`."""
        await factory.provider("click", protocol="click", secret=SECRET, service_id=SERVICE_ID, **kw)
        _, code = await factory.account()
        return ClickSide(await aiohttp_client(create_app(settings)), code)

    async def test_bad_signature_is_journaled_with_what_it_asked(
        self,
        aiohttp_client: ClientMaker,
        settings: Settings,
        factory: Factory,
        cli: Cli,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        """A forged Complete: -1, no store call, and a row with complete, txn, masked code and
        "bad signature"; the signature is nowhere in it."""
        click = await self.click(aiohttp_client, settings, factory, allow_ips=[])
        forged = "0" * 31 + "e"
        fields = click.complete_fields(41, "6001", sign_string=forged)
        calls = spy_on_store(monkeypatch)
        reply = await click.post(fields)
        assert (reply.body["error"], calls) == (-1, [])
        row = await journaled(click.client, cli, "6001")
        assert summary(row) == ("complete", "6001", mask(click.code), "-1", 200, "bad signature")
        nothing_secret(row, forged, SECRET, click.code)

    async def test_wrong_service_id_says_so(
        self,
        aiohttp_client: ClientMaker,
        settings: Settings,
        factory: Factory,
        cli: Cli,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        """A correctly signed Prepare for another service id: -8 whose note names the service
        id (not SIGN CHECK FAILED), no store call, and a row saying "wrong service id"."""
        click = await self.click(aiohttp_client, settings, factory, allow_ips=[])
        fields = click.prepare_fields("6002", service_id="99999")
        calls = spy_on_store(monkeypatch)
        reply = await click.post(fields)
        assert reply.body == echoing(fields, -8, "Incorrect parameter service_id")
        assert calls == []
        row = await journaled(click.client, cli, "6002")
        assert summary(row) == ("prepare", "6002", mask(click.code), "-8", 200, "wrong service id")
        nothing_secret(row, fields["sign_string"], SECRET, click.code)

    async def test_address_refusal_is_journaled(
        self, aiohttp_client: ClientMaker, settings: Settings, factory: Factory, cli: Cli
    ) -> None:
        """A signed Prepare from off the allow-list: -1 and a row saying "address not allowed"."""
        click = await self.click(aiohttp_client, settings, factory, allow_ips=["10.20.0.0/16"])
        reply = await click.prepare("6003")
        assert reply.body["error"] == -1
        row = await journaled(click.client, cli, "6003")
        assert summary(row) == ("prepare", "6003", mask(click.code), "-1", 200, "address not allowed")


class TestPayme:
    async def payme(
        self, aiohttp_client: ClientMaker, settings: Settings, factory: Factory, **kw: Any
    ) -> TestClient[Any, Any]:
        """A client for provider `payme` configured with `kw`."""
        await factory.provider("payme", "payme", password=PAYME_KEY, **kw)
        return await aiohttp_client(create_app(settings))

    async def test_credentials_refusal_is_journaled_with_what_it_asked(
        self,
        aiohttp_client: ClientMaker,
        settings: Settings,
        factory: Factory,
        cli: Cli,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        """A CreateTransaction with a wrong key: -32504, no store call, and a row with the
        method, Payme's id, the masked code and "bad credentials"; no key stored."""
        client = await self.payme(aiohttp_client, settings, factory, allow_ips=[])
        _, code = await factory.account()
        header = basic("Paycom", PAYME_KEY[:-1] + "x")
        document = {
            "method": "CreateTransaction",
            "params": {"id": "p-7001", "time": 1, "amount": 500, "account": {"code": code}},
            "id": 3,
        }
        calls = spy_on_store(monkeypatch)
        response = await client.post(
            "/gw/payme", data=orjson.dumps(document), headers={"Authorization": header}
        )
        assert ((await response.json())["error"]["code"], calls) == (-32504, [])
        row = await journaled(client, cli, "p-7001")
        assert summary(row) == ("CreateTransaction", "p-7001", mask(code), "-32504", 200, "bad credentials")
        nothing_secret(row, PAYME_KEY, PAYME_KEY[:-1] + "x", header.removeprefix("Basic "), code)

    async def test_address_refusal_is_journaled(
        self, aiohttp_client: ClientMaker, settings: Settings, factory: Factory, cli: Cli
    ) -> None:
        """The right key from off the allow-list: a row saying "address not allowed"."""
        client = await self.payme(aiohttp_client, settings, factory, allow_ips=["185.234.113.0/28"])
        document = {"method": "CheckTransaction", "params": {"id": "p-7002"}, "id": 4}
        response = await client.post(
            "/gw/payme", data=orjson.dumps(document), headers={"Authorization": basic("Paycom", PAYME_KEY)}
        )
        assert (await response.json())["error"]["code"] == -32504
        row = await journaled(client, cli, "p-7002")
        assert summary(row) == ("CheckTransaction", "p-7002", None, "-32504", 200, "address not allowed")
