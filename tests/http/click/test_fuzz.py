"""Hostile input to /gw/click: never a 5xx, always a Click answer, and refusals move nothing."""

from urllib.parse import urlencode

from hypothesis import event, given
from hypothesis import strategies as st

from tests.fuzzing import FUZZ, money
from tests.http.click.conftest import ClickWorld, sign
from tolem.protocols.click.codes import ClickError

FIELDS = [
    "click_trans_id",
    "service_id",
    "click_paydoc_id",
    "merchant_trans_id",
    "merchant_prepare_id",
    "amount",
    "action",
    "error",
    "error_note",
    "sign_time",
]
hostile_text = st.sampled_from(
    ["", "0", "-1", "1e3", "1000.001", "1 000", "99999999999999999999", "NaN", "٣", "0x10", " 1"]
) | st.text(max_size=40)


@st.composite
def forms(draw: st.DrawFn, world: ClickWorld) -> list[tuple[str, str]]:
    """A real Prepare or Complete with up to three fields replaced, removed or repeated, signed
    correctly two times in three so that everything behind the signature check is reached."""
    prepare_id = draw(st.sampled_from(["1", "2", "999"]))
    trans_id = draw(st.sampled_from(["1001", "1002"]))
    if draw(st.booleans()):
        fields = world.click.prepare_fields(trans_id, amount=draw(st.sampled_from(["1000", "100", "500.50"])))
    else:
        fields = world.click.complete_fields(
            prepare_id, trans_id, error=draw(st.sampled_from(["0", "-5017"]))
        )
    del fields["sign_string"]
    pairs = list(fields.items())
    for name in draw(st.lists(st.sampled_from(FIELDS), max_size=3, unique=True)):
        how = draw(st.integers(min_value=0, max_value=2))
        if how == 0:
            pairs = [(k, v) for k, v in pairs if k != name]
        elif how == 1:
            pairs = [(k, draw(hostile_text) if k == name else v) for k, v in pairs]
        else:
            pairs.append((name, draw(hostile_text)))
    signed = dict(pairs)
    signable = all(key in signed for key in ("click_trans_id", "service_id", "merchant_trans_id", "amount"))
    signable = signable and signed.get("action") in ("0", "1") and "sign_time" in signed
    signable = signable and (signed.get("action") == "0" or "merchant_prepare_id" in signed)
    if signable and draw(st.integers(min_value=0, max_value=2)) > 0:
        pairs.append(("sign_string", sign(signed)))
    else:
        pairs.append(("sign_string", draw(st.sampled_from(["", "0" * 32]) | st.text(max_size=40))))
    return pairs


@given(data=st.data())
@FUZZ
async def test_any_form_gets_a_click_answer(world: ClickWorld, data: st.DataObject) -> None:
    """Mutated, repeated, unsigned and random fields: HTTP 200 with a Click code, or a 4xx."""
    choice = data.draw(st.integers(min_value=0, max_value=9), label="kind")
    content_type = "application/x-www-form-urlencoded"
    if choice == 0:
        body = data.draw(st.binary(max_size=300), label="bytes")
        content_type = data.draw(st.sampled_from([content_type, "application/json", "text/plain"]))
    else:
        body = urlencode(data.draw(forms(world), label="form")).encode()
    before = await money(world.factory)
    response = await world.click.client.post("/gw/click", data=body, headers={"Content-Type": content_type})
    assert response.status < 500, await response.text()
    event(f"HTTP {response.status}")
    if response.status != 200:
        assert await money(world.factory) == before
        return
    answer = await response.json()
    code = ClickError(answer["error"])
    event(code.name)
    assert isinstance(answer["error_note"], str)
    if code != ClickError.SUCCESS:
        assert await money(world.factory) == before
    # A success may reserve, credit or cancel; the ledger audit after the test judges those.
