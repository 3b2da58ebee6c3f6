"""Hostile input to an OSMP gateway: never a 5xx, always an OSMP answer, refusals move nothing."""

import re
from urllib.parse import quote, urlencode

from hypothesis import event, given
from hypothesis import strategies as st

from tests.fuzzing import FUZZ, money
from tests.http.osmp.conftest import URL, XML_TYPE, OsmpWorld

# Every result the OSMP adapter may answer with (docs/osmp.md, "Answers").
KNOWN_RESULTS = {0, 1, 4, 5, 7, 79, 241, 242, 300}
_ANSWER = re.compile(
    r'^<\?xml version="1\.0" encoding="UTF-8"\?>\n<response>(?P<inner>.*)</response>\n$', re.DOTALL
)
_RESULT = re.compile(r"<result>(-?\d+)</result>")
NAMES = ["command", "txn_id", "txn_date", "account", "sum", "ccy", "prv_txn"]
hostile = st.sampled_from(
    ["", "0", "-1", "1e3", "150.001", "1 000", "9" * 40, "NaN", "٣", "0x10", " 1", "<a>&amp;", "%00", "pay"]
) | st.text(max_size=40)


@st.composite
def queries(draw: st.DrawFn, code: str) -> list[tuple[str, str]]:
    """A real check, pay, status or cancel with up to three parameters replaced, removed or
    repeated, so that everything behind parsing (limits, codes, replays) is reached too."""
    command = draw(st.sampled_from(["check", "pay", "pay", "status", "cancel"]))
    pairs = [
        ("command", command),
        ("txn_id", draw(st.sampled_from(["1001", "1002", "0001001", "7" * 28]))),
        ("txn_date", "20261125143000"),
        ("account", draw(st.sampled_from([code, code, "001", code[:-1] + "0"]))),
        ("sum", draw(st.sampled_from(["150.00", "10", "0.00", "50000.01", "9.99"]))),
    ]
    for name in draw(st.lists(st.sampled_from(NAMES), max_size=3, unique=True)):
        how = draw(st.integers(min_value=0, max_value=2))
        if how == 0:
            pairs = [(k, v) for k, v in pairs if k != name]
        elif how == 1:
            pairs = [(k, draw(hostile) if k == name else v) for k, v in pairs]
        else:
            pairs.append((name, draw(hostile)))
    return pairs


@given(data=st.data())
@FUZZ
async def test_any_request_gets_an_osmp_answer(world: OsmpWorld, data: st.DataObject) -> None:
    """GET, form POST and raw bodies with hostile parameters: an OSMP XML answer with a known
    result, or a 4xx from HTTP itself; a refusal never stores anything."""
    kind = data.draw(st.integers(min_value=0, max_value=9), label="kind")
    client = world.kiosk.client
    before = await money(world.factory)
    if kind == 0:
        body = data.draw(st.binary(max_size=300), label="bytes")
        content_type = data.draw(st.sampled_from(["application/x-www-form-urlencoded", "text/xml", ""]))
        response = await client.post(
            URL, data=body, headers={"Content-Type": content_type} if content_type else {}
        )
    elif kind == 1:
        pairs = data.draw(queries(world.code), label="form")
        response = await client.post(
            URL, data=urlencode(pairs), headers={"Content-Type": "application/x-www-form-urlencoded"}
        )
    else:
        pairs = data.draw(queries(world.code), label="query")
        query = "&".join(f"{quote(k)}={quote(v, safe='')}" for k, v in pairs)
        response = await client.get(f"{URL}?{query}")
    text = await response.text()
    assert response.status < 500, text
    event(f"HTTP {response.status}")
    if response.status != 200:
        assert await money(world.factory) == before
        return
    assert response.headers["Content-Type"] == XML_TYPE
    assert _ANSWER.match(text), text
    match = _RESULT.search(text)
    assert match is not None, text
    result = int(match.group(1))
    event(f"result {result}")
    assert result in KNOWN_RESULTS, text
    if result != 0:
        assert await money(world.factory) == before
    # A success may credit or reverse; the ledger audit after the test judges those.
