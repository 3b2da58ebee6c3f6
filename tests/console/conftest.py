"""The operator console through a real app and database: an operator's browser as a client
that keeps cookies, reads each page's CSRF token and posts forms the way the pages do."""

import html
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final

import asyncpg
import pytest
from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient

from tests.conftest import Factory
from tolem.app import create_app
from tolem.db import operators as operator_db
from tolem.db.operators import Role
from tolem.gateway.handler import JOURNAL
from tolem.protocols.passwords import hash_password
from tolem.settings import Settings

ClientMaker = Callable[..., Awaitable[TestClient[Any, Any]]]
# An account's id and its first payment code.
Customer = tuple[int, str]

ADMIN: Final = "anna"
SUPPORT: Final = "bolot"
PASSWORD: Final = "correct horse battery"
# Tests hash with a small scrypt cost; what the CLI stores is checked in test_cli.
TEST_COST: Final = (2**10, 8, 1)
TXN_DATE: Final = "20261125143000"
_CSRF_RE: Final = re.compile(r'name="csrf" value="([0-9a-f]{64})"')


@dataclass
class Page:
    """One answer as the browser got it."""

    status: int
    text: str
    headers: Any
    url: str

    def csrf(self) -> str:
        """The CSRF token the page's forms carry."""
        match = _CSRF_RE.search(self.text)
        assert match is not None, "no form with a CSRF token on this page"
        return match.group(1)


def text_of(page_html: str) -> str:
    """A page's visible text, roughly: tags dropped, entities decoded, spaces squeezed."""
    without_tags = re.sub(r"<[^>]+>", " ", page_html)
    return " ".join(html.unescape(without_tags).split())


async def as_page(response: ClientResponse) -> Page:
    """A response read whole."""
    return Page(response.status, await response.text(), response.headers, str(response.url))


class Console:
    """An operator's browser on the console (cookies kept by the test client's jar)."""

    def __init__(self, client: TestClient[Any, Any]) -> None:
        self.client = client

    async def get(self, path: str, *, follow: bool = True, **kw: Any) -> Page:
        """GET a page, following redirects unless told not to."""
        async with self.client.get(path, allow_redirects=follow, **kw) as response:
            return await as_page(response)

    async def post(self, path: str, data: dict[str, str], *, follow: bool = False, **kw: Any) -> Page:
        """POST a form as given (the caller decides whether it carries a token)."""
        async with self.client.post(path, data=data, allow_redirects=follow, **kw) as response:
            return await as_page(response)

    async def login(self, name: str, password: str = PASSWORD, *, next_: str = "/ops/", **kw: Any) -> Page:
        """Opens the login form and sends it, not following the answer's redirect."""
        form = await self.get(f"/ops/login?next={next_}")
        data = {"name": name, "password": password, "csrf": form.csrf(), "next": next_}
        return await self.post("/ops/login", data, **kw)

    async def submit(self, page_path: str, action: str, data: dict[str, str] | None = None) -> Page:
        """Opens a page and posts one of its forms with the page's token, as a click would."""
        page = await self.get(page_path)
        return await self.post(action, {"csrf": page.csrf(), **(data or {})})

    def cookie(self, name: str) -> str | None:
        """The value of a cookie the browser holds, if any."""
        for morsel in self.client.session.cookie_jar:
            if morsel.key == name:
                return morsel.value
        return None


async def add_operator(pool: asyncpg.Pool, name: str, role: Role, password: str = PASSWORD) -> int:
    """An operator, hashed cheaply for tests."""
    async with pool.acquire() as conn:
        added = await operator_db.add_operator(conn, name, role, hash_password(password, cost=TEST_COST))
    return added.id


@pytest.fixture
async def operators(pool: asyncpg.Pool) -> dict[str, int]:
    """An admin (anna) and a support operator (bolot), by name."""
    return {
        ADMIN: await add_operator(pool, ADMIN, Role.ADMIN),
        SUPPORT: await add_operator(pool, SUPPORT, Role.SUPPORT),
    }


@pytest.fixture
async def client(
    aiohttp_client: ClientMaker, settings: Settings, operators: dict[str, int]
) -> TestClient[Any, Any]:
    """A client on the whole application (gateway and console) with the two operators."""
    return await aiohttp_client(create_app(settings))


@pytest.fixture
def console(client: TestClient[Any, Any]) -> Console:
    """A browser that is not logged in yet."""
    return Console(client)


@pytest.fixture
async def admin(console: Console) -> Console:
    """A browser logged in as the admin."""
    answer = await console.login(ADMIN)
    assert answer.status == 303
    return console


@pytest.fixture
async def support(console: Console) -> Console:
    """A browser logged in as the support operator."""
    answer = await console.login(SUPPORT)
    assert answer.status == 303
    return console


async def osmp_pay(
    client: TestClient[Any, Any], code: str, txn: str, amount: str, provider: str = "kiosk"
) -> str:
    """Pays through the real OSMP gateway and writes the journal; the answer's body."""
    params = {"command": "pay", "txn_id": txn, "txn_date": TXN_DATE, "account": code, "sum": amount}
    async with client.get(f"/gw/{provider}", params=params) as response:
        body = await response.text()
    await client.app[JOURNAL].flush()
    return body


async def osmp_cancel(client: TestClient[Any, Any], txn: str, provider: str = "kiosk") -> str:
    """Cancels (reverses) a paid transaction through the real OSMP gateway, journaled."""
    async with client.get(f"/gw/{provider}", params={"command": "cancel", "txn_id": txn}) as response:
        body = await response.text()
    await client.app[JOURNAL].flush()
    return body


async def osmp_check(
    client: TestClient[Any, Any], code: str, txn: str, amount: str, provider: str = "kiosk"
) -> str:
    """A check through the real OSMP gateway, journaled."""
    params = {"command": "check", "txn_id": txn, "account": code, "sum": amount}
    async with client.get(f"/gw/{provider}", params=params) as response:
        body = await response.text()
    await client.app[JOURNAL].flush()
    return body


@pytest.fixture
async def customer(factory: Factory) -> Customer:
    """An account (id, first payment code) with a service, and an OSMP provider 'kiosk'."""
    await factory.provider("kiosk")
    return await factory.account(name="Asanov Asan", email="asan@example.kg", services=["asan.kg"])
