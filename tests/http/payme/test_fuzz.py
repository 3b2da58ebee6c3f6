"""Hostile input to /gw/payme: every answer is HTTP 200 JSON-RPC, and refusals move nothing."""

import json
from typing import Any

import orjson
from hypothesis import event, given
from hypothesis import strategies as st

from tests.fuzzing import FUZZ, money
from tests.http.payme.conftest import AUTH, Clock, Payme

METHODS = (
    "CheckPerformTransaction",
    "CreateTransaction",
    "PerformTransaction",
    "CancelTransaction",
    "CheckTransaction",
    "GetStatement",
)
# Every code the Payme adapter may answer with; anything else is a protocol violation.
KNOWN_CODES = {
    -32300, -32700, -32600, -32601, -32504, -32400,
    -31001, -31003, -31007, -31008, -31050, -31051,
}  # fmt: skip

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=40)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)


def amounts() -> st.SearchStrategy[Any]:
    """Amounts a wallet might send, plausible and not."""
    return st.sampled_from([100, 500, 50000, 50001, 0, -1, 1.5, "500", None, 2**63]) | json_values


@st.composite
def documents(draw: st.DrawFn, code: str, now_ms: int) -> bytes:
    """JSON-RPC bodies near the real thing: a valid call of a real method with up to two of its
    fields replaced by hostile values or removed, so the checks behind parsing are reached too."""
    txn = draw(st.sampled_from(["f" * 24, "a1" * 12, "b2" * 12]))
    valid: dict[str, Any] = {
        "id": txn,
        "time": now_ms,
        "amount": draw(st.sampled_from([100, 500, 50000])),
        "account": {"code": code},
        "reason": draw(st.sampled_from([1, 2, 3, 5])),
        "from": now_ms - 3_600_000,
        "to": now_ms + 3_600_000,
    }
    hostile: dict[str, st.SearchStrategy[Any]] = {
        "id": st.sampled_from(["", "x" * 300, "f" * 23]) | json_values,
        "time": st.integers(min_value=-(2**63), max_value=2**64) | json_values,
        "amount": amounts(),
        "account": st.fixed_dictionaries({"code": st.sampled_from(["001", "", code + "0"])}) | json_values,
        "reason": st.integers(min_value=-2, max_value=12) | json_values,
        "from": st.integers(min_value=0, max_value=2**45) | json_values,
        "to": st.integers(min_value=0, max_value=2**45) | json_values,
    }
    params: Any = dict(valid)
    for key in draw(st.lists(st.sampled_from(sorted(valid)), max_size=2, unique=True)):
        if draw(st.booleans()):
            del params[key]
        else:
            params[key] = draw(hostile[key])
    if draw(st.integers(min_value=0, max_value=9)) == 0:
        params = draw(json_values)
    odd = draw(st.integers(min_value=0, max_value=9)) == 0
    document = {
        "jsonrpc": "2.0",
        "id": draw(json_values if odd else st.integers(min_value=0, max_value=10**6)),
        "method": draw(st.text(max_size=30) | json_values if odd else st.sampled_from(METHODS)),
        "params": params,
    }
    if odd:
        for key in draw(st.lists(st.sampled_from(["id", "method", "params"]), max_size=1)):
            del document[key]
    return json.dumps(document).encode()


@st.composite
def bodies(draw: st.DrawFn, code: str, now_ms: int) -> bytes:
    """Anything a broken or hostile caller could post."""
    choice = draw(st.integers(min_value=0, max_value=9))
    if choice == 0:
        return draw(st.binary(max_size=300))
    if choice == 1:
        return orjson.dumps(draw(json_values))
    if choice == 2:
        # Duplicated keys: JSON allows them textually, their meaning is ambiguous.
        return b'{"method": "PerformTransaction", "method": "CreateTransaction", "params": {}, "id": 1}'
    if choice == 3:
        return draw(documents(code, now_ms))[: draw(st.integers(min_value=0, max_value=80))]
    return draw(documents(code, now_ms))


@given(data=st.data())
@FUZZ
async def test_any_body_gets_a_valid_payme_answer(
    payme: Payme, account: tuple[int, str], clock: Clock, data: st.DataObject
) -> None:
    """Random and hostile bodies, headers and content types: HTTP 200 JSON-RPC, known codes only."""
    _, code = account
    body = data.draw(bodies(code, clock.ms()), label="body")
    content_type = data.draw(
        st.sampled_from(
            ["text/json; charset=UTF-8", "application/json", "text/plain", "", "multipart/form-data"]
        ),
        label="content_type",
    )
    before = await money(payme.factory)
    answer = await payme.raw(body, headers={"Content-Type": content_type} if content_type else {})
    assert answer.get("jsonrpc") == "2.0"
    assert ("result" in answer) != ("error" in answer), answer
    event("error " + str(answer["error"]["code"]) if "error" in answer else "result")
    if "error" in answer:
        assert answer["error"]["code"] in KNOWN_CODES, answer
        assert isinstance(answer["error"]["message"], dict | str)
        # Reservations (CreateTransaction) may store a payment; a refusal must store nothing.
        assert await money(payme.factory) == before
    # A success may reserve, credit or reverse; the ledger audit after the test judges those.


@given(data=st.data())
@FUZZ
async def test_wrong_credentials_never_reach_the_ledger(
    payme: Payme, account: tuple[int, str], clock: Clock, data: st.DataObject
) -> None:
    """Any body with wrong or missing credentials: -32504 and nothing stored, whatever it says."""
    _, code = account
    body = data.draw(documents(code, clock.ms()), label="body")
    auth = data.draw(
        st.sampled_from([None, "", "Basic", "Bearer x", AUTH[:-4] + "Sgo=", "Basic UGF5Y29tOndyb25n"])
        # Header-safe text (no controls), including non-ASCII, as a hostile caller could send.
        | st.text(st.characters(min_codepoint=0x20, blacklist_categories=["Cc", "Cs"]), max_size=60).map(
            lambda s: "Basic " + s
        ),
        label="auth",
    )
    before = await money(payme.factory)
    answer = await payme.raw(body, auth=auth)
    assert answer["error"]["code"] == -32504, answer
    assert await money(payme.factory) == before


async def test_fuzz_targets_the_real_path(payme: Payme, account: tuple[int, str]) -> None:
    """The fuzzed endpoint is the live gateway: a well-formed check is allowed there."""
    _, code = account
    answer = await payme.call("CheckPerformTransaction", {"amount": 500, "account": {"code": code}})
    assert answer["result"]["allow"] is True
