"""Click's side of the conversation: signed Prepare / Complete forms posted to /gw/click.

Signatures here are computed independently of the adapter (plain hashlib over the documented
field order), so a wrong field order in the adapter cannot pass by agreeing with itself.
"""

import hashlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from tests.conftest import Factory
from tolem.app import create_app
from tolem.core.model import Provider
from tolem.settings import Settings

SECRET = "Zx9-secret-key"
SERVICE_ID = "31337"
SIGN_TIME = "2024-05-01 12:00:00"
URL = "/gw/click"

ClientMaker = Callable[..., Awaitable[TestClient[Any, Any]]]


def md5_of(*parts: str) -> str:
    """Lowercase hex md5 of the concatenated texts, as Click signs."""
    return hashlib.md5("".join(parts).encode()).hexdigest()  # noqa: S324 - Click's formula


def sign(fields: dict[str, str], secret: str = SECRET) -> str:
    """Click's signature: Complete (action 1) includes merchant_prepare_id, Prepare does not."""
    parts = [fields["click_trans_id"], fields["service_id"], secret, fields["merchant_trans_id"]]
    if fields["action"] == "1":
        parts.append(fields["merchant_prepare_id"])
    return md5_of(*parts, fields["amount"], fields["action"], fields["sign_time"])


@dataclass
class Reply:
    """An HTTP answer: status, content type and the decoded JSON body (None if not JSON)."""

    status: int
    content_type: str
    body: Any


class ClickSide:
    """Builds and posts Click's requests with sensible defaults; any field can be overridden."""

    def __init__(self, client: TestClient[Any, Any], code: str) -> None:
        self.client = client
        self.code = code

    def _unsigned(self, click_trans_id: str) -> dict[str, str]:
        return {
            "click_trans_id": click_trans_id,
            "service_id": SERVICE_ID,
            "click_paydoc_id": "5001",
            "merchant_trans_id": self.code,
            "amount": "1000",
            "action": "0",
            "error": "0",
            "error_note": "Success",
            "sign_time": SIGN_TIME,
        }

    def prepare_fields(self, click_trans_id: str = "1001", **override: str) -> dict[str, str]:
        """A signed Prepare form; the signature covers the overridden fields."""
        fields = self._unsigned(click_trans_id) | override
        fields.setdefault("sign_string", sign(fields))
        return fields

    def complete_fields(
        self, prepare_id: int | str, click_trans_id: str = "1001", **override: str
    ) -> dict[str, str]:
        """A signed Complete form for our `prepare_id`."""
        fields = self._unsigned(click_trans_id) | {"action": "1", "merchant_prepare_id": str(prepare_id)}
        fields |= override
        fields.setdefault("sign_string", sign(fields))
        return fields

    async def post(self, fields: dict[str, str] | bytes | str, **kw: Any) -> Reply:
        """Posts a form (url-encoded as Click does) and reads the answer."""
        response = await self.client.post(URL, data=fields, **kw)
        body: Any = await response.json() if response.content_type == "application/json" else None
        return Reply(response.status, response.headers.get("Content-Type", ""), body)

    async def prepare(self, click_trans_id: str = "1001", **override: str) -> Reply:
        """Posts a signed Prepare."""
        return await self.post(self.prepare_fields(click_trans_id, **override))

    async def complete(self, prepare_id: int | str, click_trans_id: str = "1001", **override: str) -> Reply:
        """Posts a signed Complete."""
        return await self.post(self.complete_fields(prepare_id, click_trans_id, **override))


@dataclass
class ClickWorld:
    """The provider, one payable account, Click's side of the wire, and the factory."""

    provider: Provider
    account_id: int
    code: str
    click: ClickSide
    factory: Factory

    async def money(self) -> tuple[int, int, int]:
        """(balance of the account, payments stored, transfers written)."""
        return (
            await self.factory.balance(self.account_id),
            await self.factory.count("SELECT count(*) FROM payments"),
            await self.factory.count("SELECT count(*) FROM transfers"),
        )

    async def state(self, payment_id: int) -> tuple[str, int | None]:
        """(state, cancel_reason) of one payment."""
        async with self.factory.pool.acquire() as conn:
            row = await conn.fetchrow("SELECT state, cancel_reason FROM payments WHERE id = $1", payment_id)
        assert row is not None
        return row["state"], row["cancel_reason"]


def ok_prepare(code: str, prepare_id: int, click_trans_id: int = 1001) -> dict[str, Any]:
    """The body of a successful Prepare answer."""
    return {
        "click_trans_id": click_trans_id,
        "merchant_trans_id": code,
        "merchant_prepare_id": prepare_id,
        "error": 0,
        "error_note": "Success",
    }


def ok_complete(code: str, confirm_id: int, click_trans_id: int = 1001) -> dict[str, Any]:
    """The body of a successful Complete answer."""
    return {
        "click_trans_id": click_trans_id,
        "merchant_trans_id": code,
        "merchant_confirm_id": confirm_id,
        "error": 0,
        "error_note": "Success",
    }


def refused(error: int, note: str) -> dict[str, Any]:
    """The body of a refusal that echoes nothing (its form could not be read)."""
    return {"error": error, "error_note": note}


SIGN_FAILED = refused(-1, "SIGN CHECK FAILED!")
BAD_REQUEST = refused(-8, "Error in request from click")


def _click_id(text: str | None) -> int | None:
    # An id Click could have issued: digits without a leading zero, within bigint.
    if text is None or not text.isascii() or not text.isdigit() or text.startswith("0"):
        return None
    return int(text) if int(text) < 2**63 else None


def echoing(fields: dict[str, str], error: int, note: str) -> dict[str, Any]:
    """The body of a refusal of `fields`: the ids they carry (click_trans_id when an id,
    merchant_trans_id as sent up to 64 characters, merchant_prepare_id on Complete when an id),
    then the code."""
    body: dict[str, Any] = {}
    if (click_trans_id := _click_id(fields.get("click_trans_id"))) is not None:
        body["click_trans_id"] = click_trans_id
    if len(fields.get("merchant_trans_id", "x" * 65)) <= 64:
        body["merchant_trans_id"] = fields["merchant_trans_id"]
    prepare_id = _click_id(fields.get("merchant_prepare_id"))
    if fields.get("action") == "1" and prepare_id is not None:
        body["merchant_prepare_id"] = prepare_id
    return body | {"error": error, "error_note": note}


def sign_failed(fields: dict[str, str]) -> dict[str, Any]:
    """-1 for `fields`, their ids echoed."""
    return echoing(fields, -1, "SIGN CHECK FAILED!")


def bad_request(fields: dict[str, str]) -> dict[str, Any]:
    """-8 for `fields`, their ids echoed."""
    return echoing(fields, -8, "Error in request from click")


@pytest.fixture
async def world(
    aiohttp_client: ClientMaker,
    settings: Settings,
    factory: Factory,
) -> ClickWorld:
    """A Click provider (limits 100..1 000 000, Tashkent time, no IP list) and one account."""
    provider = await factory.provider(
        "click",
        protocol="click",
        allow_ips=[],
        secret=SECRET,
        service_id=SERVICE_ID,
        min_amount_minor=100_00,
        max_amount_minor=1_000_000_00,
        timezone="Asia/Tashkent",
    )
    account_id, code = await factory.account()
    client = await aiohttp_client(create_app(settings))
    return ClickWorld(provider, account_id, code, ClickSide(client, code), factory)
