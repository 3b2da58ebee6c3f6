"""A kiosk's side of the conversation: OSMP requests by GET (or form POST) to /gw/kiosk.

Expected answers are written out as whole XML bodies here, independently of the adapter's
renderer, so a wrong element order or a missing echo cannot pass by agreeing with itself.
"""

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from tests.conftest import Factory
from tolem.app import create_app
from tolem.core.model import Provider
from tolem.settings import Settings

URL = "/gw/kiosk"
TXN_DATE = "20261125143000"
XML_TYPE = "text/xml; charset=utf-8"

ClientMaker = Callable[..., Awaitable[TestClient[Any, Any]]]


def xml(*inner: str) -> str:
    """A whole answer body around the given elements."""
    return f'<?xml version="1.0" encoding="UTF-8"?>\n<response>{"".join(inner)}</response>\n'


def paid(txn_id: str, prv_txn: int, total: str) -> str:
    """The body of a successful pay (first or repeated)."""
    return xml(
        f"<osmp_txn_id>{txn_id}</osmp_txn_id>",
        f"<prv_txn>{prv_txn}</prv_txn>",
        f"<sum>{total}</sum>",
        "<result>0</result><comment>OK</comment>",
    )


def checked(txn_id: str, name: str) -> str:
    """The body of a successful check showing the masked name."""
    return xml(
        f"<osmp_txn_id>{txn_id}</osmp_txn_id>",
        "<result>0</result><comment>OK</comment>",
        f'<fields><field1 name="name">{name}</field1></fields>',
    )


def stated(txn_id: str, prv_txn: int, total: str, state: str) -> str:
    """The body of a status or cancel answer for a known payment."""
    return xml(
        f"<osmp_txn_id>{txn_id}</osmp_txn_id>",
        f"<prv_txn>{prv_txn}</prv_txn>",
        f"<sum>{total}</sum>",
        f"<state>{state}</state>",
        "<result>0</result><comment>OK</comment>",
    )


def refused(txn_id: str, result: int, comment: str) -> str:
    """The body of any answer other than success."""
    return xml(
        f"<osmp_txn_id>{txn_id}</osmp_txn_id>", f"<result>{result}</result><comment>{comment}</comment>"
    )


@dataclass
class Reply:
    """An HTTP answer: status, content type and body text."""

    status: int
    content_type: str
    text: str


class Kiosk:
    """Sends OSMP requests; every parameter can be overridden or left out (value None)."""

    def __init__(self, client: TestClient[Any, Any], code: str) -> None:
        self.client = client
        self.code = code

    async def get(self, params: dict[str, str] | list[tuple[str, str]] | str, **kw: Any) -> Reply:
        """GET with the given query (a string is sent raw, percent-escapes untouched)."""
        if isinstance(params, str):
            response = await self.client.get(f"{URL}?{params}", **kw)
        else:
            response = await self.client.get(URL, params=params, **kw)
        return Reply(response.status, response.headers.get("Content-Type", ""), await response.text())

    async def post(self, data: dict[str, str] | bytes | str, **kw: Any) -> Reply:
        """POST a form (url-encoded) or raw bytes."""
        response = await self.client.post(URL, data=data, **kw)
        return Reply(response.status, response.headers.get("Content-Type", ""), await response.text())

    def pay_params(self, txn_id: str = "1001", total: str = "150.00", **over: str | None) -> dict[str, str]:
        """A pay request's parameters."""
        base: dict[str, str | None] = {
            "command": "pay",
            "txn_id": txn_id,
            "txn_date": TXN_DATE,
            "account": self.code,
            "sum": total,
        }
        base.update(over)
        return {k: v for k, v in base.items() if v is not None}

    async def pay(
        self,
        txn_id: str = "1001",
        total: str = "150.00",
        *,
        headers: dict[str, str] | None = None,
        **over: str | None,
    ) -> Reply:
        """GET pay."""
        return await self.get(self.pay_params(txn_id, total, **over), headers=headers or {})

    async def check(
        self, txn_id: str | None = "1001", total: str | None = "150.00", **over: str | None
    ) -> Reply:
        """GET check."""
        base: dict[str, str | None] = {
            "command": "check",
            "txn_id": txn_id,
            "account": self.code,
            "sum": total,
        }
        base.update(over)
        return await self.get({k: v for k, v in base.items() if v is not None})

    async def status(self, txn_id: str = "1001", **over: str) -> Reply:
        """GET status."""
        return await self.get({"command": "status", "txn_id": txn_id, **over})

    async def cancel(self, txn_id: str = "1001", **over: str) -> Reply:
        """GET cancel."""
        return await self.get({"command": "cancel", "txn_id": txn_id, **over})


@dataclass
class OsmpWorld:
    """The provider, one payable account, the kiosk, and the factory."""

    provider: Provider
    account_id: int
    code: str
    kiosk: Kiosk
    factory: Factory

    async def money(self) -> tuple[int, int, int]:
        """(balance of the account, payments stored, transfers written)."""
        return (
            await self.factory.balance(self.account_id),
            await self.factory.count("SELECT count(*) FROM payments"),
            await self.factory.count("SELECT count(*) FROM transfers"),
        )

    async def payment_id(self, txn_id: str) -> int:
        """Our id of the stored payment for a txn_id."""
        return await self.factory.count("SELECT id FROM payments WHERE external_id = $1", txn_id)


@pytest.fixture
async def world(aiohttp_client: ClientMaker, settings: Settings, factory: Factory) -> OsmpWorld:
    """An OSMP provider (loopback allow-list, limits 10.00..50 000.00) and one account."""
    provider = await factory.provider(
        "kiosk",
        protocol="osmp",
        min_amount_minor=10_00,
        max_amount_minor=50_000_00,
    )
    account_id, code = await factory.account()
    client = await aiohttp_client(create_app(settings))
    return OsmpWorld(provider, account_id, code, Kiosk(client, code), factory)
