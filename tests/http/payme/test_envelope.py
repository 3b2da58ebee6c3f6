"""Malformed JSON-RPC of every kind: each gets its own code, HTTP 200, and moves nothing.

Case tables run inside one test each (one database per test is the slow part); every
assertion names its case.
"""

from typing import Any

import orjson

from tests.http.payme.conftest import Clock, Payme, err, ok
from tolem.app import MAX_BODY_BYTES
from tolem.protocols.payme import codes

UNPARSABLE = {
    "empty": b"",
    "truncated": b"{",
    "trailing-comma": b'{"method": "CheckTransaction",}',
    "not-utf8": b"\xff\xfe{}",
    "two-documents": b"{} {}",
    "nan": b'{"id": NaN}',
    "bad-literal": b"nul",
    "single-quotes": b"{'method': 'CheckTransaction'}",
}

NOT_AN_OBJECT: dict[str, Any] = {
    "empty-array": [],
    "batch": [{"method": "CheckTransaction", "params": {"id": "x"}, "id": 1}],
    "string": "CheckTransaction",
    "number": 42,
    "null": None,
    "true": True,
}

BAD_REQUEST_IDS: dict[str, Any] = {
    "bool": True,
    "float": 1.5,
    "object": {"n": 1},
    "array": [1],
    "too-long": "x" * 129,
}

BAD_METHOD_OR_PARAMS: list[tuple[dict[str, Any], str]] = [
    ({"params": {"id": "x"}, "id": 3}, "method"),
    ({"method": None, "params": {"id": "x"}, "id": 3}, "method"),
    ({"method": 5, "params": {"id": "x"}, "id": 3}, "method"),
    ({"method": "", "params": {"id": "x"}, "id": 3}, "method"),
    ({"method": ["CheckTransaction"], "params": {"id": "x"}, "id": 3}, "method"),
    ({"method": "CheckTransaction", "id": 3}, "params"),
    ({"method": "CheckTransaction", "params": None, "id": 3}, "params"),
    ({"method": "CheckTransaction", "params": ["x"], "id": 3}, "params"),
    ({"method": "CheckTransaction", "params": "x", "id": 3}, "params"),
]

UNKNOWN_METHODS = [
    "ChangePassword",
    "SetFiscalData",
    "checktransaction",
    "CheckTransaction ",
    "__init__",
    "_create",
    "x" * 1000,
]

REQUIRED = [
    ("CheckPerformTransaction", "amount"),
    ("CheckPerformTransaction", "account"),
    ("CreateTransaction", "id"),
    ("CreateTransaction", "time"),
    ("CreateTransaction", "amount"),
    ("CreateTransaction", "account"),
    ("PerformTransaction", "id"),
    ("CancelTransaction", "id"),
    ("CancelTransaction", "reason"),
    ("CheckTransaction", "id"),
    ("GetStatement", "from"),
    ("GetStatement", "to"),
]

WRONG_TYPES: list[tuple[str, str, Any]] = [
    ("CreateTransaction", "id", 123),
    ("CreateTransaction", "id", ""),
    ("CreateTransaction", "id", "x" * 65),
    ("CreateTransaction", "id", None),
    ("CreateTransaction", "id", ["t1"]),
    ("CreateTransaction", "id", "t\n1"),
    ("CreateTransaction", "time", "1700000000000"),
    ("CreateTransaction", "time", 1.7e12),
    ("CreateTransaction", "time", True),
    ("CreateTransaction", "time", -1),
    ("CreateTransaction", "time", None),
    ("CreateTransaction", "time", 2**63 - 1),
    ("PerformTransaction", "id", 5),
    ("PerformTransaction", "id", True),
    ("CancelTransaction", "id", {"id": "t1"}),
    ("CancelTransaction", "reason", "5"),
    ("CancelTransaction", "reason", True),
    ("CancelTransaction", "reason", 5.0),
    ("CancelTransaction", "reason", -1),
    ("CancelTransaction", "reason", 2**31),
    ("CancelTransaction", "reason", None),
    ("CheckTransaction", "id", None),
    ("CheckTransaction", "id", 7),
    ("GetStatement", "from", "0"),
    ("GetStatement", "from", None),
    ("GetStatement", "to", 1.5),
    ("GetStatement", "to", False),
    ("GetStatement", "to", -1),
]


def _params(code: str, time_ms: int) -> dict[str, dict[str, Any]]:
    return {
        "CheckPerformTransaction": {"amount": 500, "account": {"code": code}},
        "CreateTransaction": {"id": "t1", "time": time_ms, "amount": 500, "account": {"code": code}},
        "PerformTransaction": {"id": "t1"},
        "CancelTransaction": {"id": "t1", "reason": 1},
        "CheckTransaction": {"id": "t1"},
        "GetStatement": {"from": 0, "to": time_ms},
    }


async def test_get_is_not_post(payme: Payme, account: tuple[int, str]) -> None:
    """A GET (with the right key) is -32300 with id null, even with a valid query string."""
    account_id, _ = account
    assert await payme.raw(b"", http_method="GET") == err(codes.not_post(), None)
    valid = orjson.dumps({"method": "CheckTransaction", "params": {"id": "x"}, "id": 1})
    assert await payme.raw(valid, http_method="GET") == err(codes.not_post(), None)
    assert await payme.money(account_id) == (0, 0, 0)


async def test_unparsable_body_is_parse_error(payme: Payme, account: tuple[int, str]) -> None:
    """A body that is not exactly one JSON document is -32700 with id null."""
    account_id, _ = account
    for case, body in UNPARSABLE.items():
        assert await payme.raw(body) == err(codes.parse_error(), None), case
    assert await payme.money(account_id) == (0, 0, 0)


async def test_document_that_is_not_an_object(payme: Payme, account: tuple[int, str]) -> None:
    """Arrays (batches), strings, numbers, booleans and null are -32600 naming the request."""
    account_id, _ = account
    for case, document in NOT_AN_OBJECT.items():
        body = await payme.raw(orjson.dumps(document))
        assert body == err(codes.invalid_request("request"), None), case
    assert await payme.money(account_id) == (0, 0, 0)


async def test_unusable_request_id(payme: Payme, account: tuple[int, str]) -> None:
    """An id that is not an integer, a short string or null is -32600 answered with id null."""
    account_id, _ = account
    for case, request_id in BAD_REQUEST_IDS.items():
        body = await payme.call("CheckTransaction", {"id": "x"}, request_id=request_id)
        assert body == err(codes.invalid_request("id"), None), case
    assert await payme.money(account_id) == (0, 0, 0)


async def test_request_id_is_echoed_as_sent(payme: Payme) -> None:
    """Integer, string and null ids come back unchanged, also on errors; a missing one as null."""
    for request_id in [0, -5, 2**40, "req-7", "", None]:
        body = await payme.call("CheckTransaction", {"id": "unknown"}, request_id=request_id)
        assert body == err(codes.transaction_not_found(), request_id), request_id
    body = await payme.raw(orjson.dumps({"method": "CheckTransaction", "params": {"id": "unknown"}}))
    assert body == err(codes.transaction_not_found(), None)


async def test_bad_method_or_params(payme: Payme, account: tuple[int, str]) -> None:
    """A missing or mistyped `method` or `params` is -32600 naming it, with the id echoed."""
    account_id, _ = account
    for document, field in BAD_METHOD_OR_PARAMS:
        body = await payme.raw(orjson.dumps(document))
        assert body == err(codes.invalid_request(field), 3), document
    assert await payme.money(account_id) == (0, 0, 0)


async def test_unknown_method(payme: Payme, account: tuple[int, str]) -> None:
    """Any other method name is -32601 with the name in `data` (names are case-sensitive)."""
    account_id, _ = account
    for method in UNKNOWN_METHODS:
        body = await payme.call(method, {"id": "x"}, request_id=4)
        assert body == err(codes.method_not_found(method), 4), method
    assert await payme.money(account_id) == (0, 0, 0)


async def test_oversized_body(payme: Payme, account: tuple[int, str]) -> None:
    """A body over the gateway's size limit is -32600, still HTTP 200."""
    account_id, _ = account
    padding = "x" * MAX_BODY_BYTES
    body = orjson.dumps({"method": "CheckTransaction", "params": {"id": "x", "pad": padding}, "id": 1})
    assert await payme.raw(body) == err(codes.invalid_request("request"), None)
    assert await payme.money(account_id) == (0, 0, 0)


async def test_missing_required_field(payme: Payme, account: tuple[int, str], clock: Clock) -> None:
    """Leaving out any required parameter of any method is -32600 naming it."""
    account_id, code = account
    for method, field in REQUIRED:
        params = _params(code, clock.ms())[method]
        del params[field]
        body = await payme.call(method, params, request_id=9)
        assert body == err(codes.invalid_request(field), 9), (method, field)
    assert await payme.money(account_id) == (0, 0, 0)


async def test_missing_field_wins_over_bad_amount_and_account(payme: Payme, account: tuple[int, str]) -> None:
    """A request missing `time` with a bad amount and account is -32600: structure first."""
    account_id, _ = account
    params = {"id": "t1", "amount": -1, "account": "nope"}
    body = await payme.call("CreateTransaction", params)
    assert body == err(codes.invalid_request("time"))
    assert await payme.money(account_id) == (0, 0, 0)


async def test_mistyped_field(payme: Payme, account: tuple[int, str], clock: Clock) -> None:
    """A parameter of the wrong type or out of range is -32600 naming it."""
    account_id, code = account
    for method, field, value in WRONG_TYPES:
        params = {**_params(code, clock.ms())[method], field: value}
        body = await payme.call(method, params, request_id=9)
        assert body == err(codes.invalid_request(field), 9), (method, field, value)
    assert await payme.money(account_id) == (0, 0, 0)


async def test_extra_members_are_ignored(payme: Payme, account: tuple[int, str]) -> None:
    """`jsonrpc`, unknown top-level members and unknown params do not disturb a valid call."""
    account_id, code = account
    document = {
        "jsonrpc": "2.0",
        "method": "CheckPerformTransaction",
        "params": {"amount": 500, "account": {"code": code, "extra": 1}, "extra": True},
        "id": 2,
        "extra": "x",
    }
    body = await payme.raw(orjson.dumps(document))
    assert body == ok({"allow": True, "additional": {"name": "Asanov A."}}, 2)
    assert await payme.money(account_id) == (0, 0, 0)
