"""OSMP's code table and wire reading, without I/O."""

from xml.sax.saxutils import escape, quoteattr
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tolem.core import errors
from tolem.protocols.osmp import codes, wire
from tolem.protocols.osmp.codes import Result

ZONE = ZoneInfo("Asia/Bishkek")


@pytest.mark.parametrize(
    ("exc", "result"),
    [
        (errors.MalformedCode("x"), Result.MALFORMED_ACCOUNT),
        (errors.UnknownCode("x"), Result.ACCOUNT_NOT_FOUND),
        (errors.AccountBlocked("x"), Result.ACCOUNT_BLOCKED),
        (errors.AmountTooSmall("x"), Result.SUM_TOO_SMALL),
        (errors.AmountTooLarge("x"), Result.SUM_TOO_LARGE),
        (errors.ProviderDisabled("x"), Result.FORBIDDEN),
        (errors.IdempotencyConflict("x"), Result.OTHER),
        (errors.PaymentNotFound("x"), Result.OTHER),
        (errors.InsufficientFunds("x"), Result.OTHER),
        (errors.WrongState("x"), Result.OTHER),
    ],
)
def test_every_core_refusal_has_a_final_code(exc: errors.DomainError, result: Result) -> None:
    """Each refusal the core raises maps to the code docs/osmp.md gives it."""
    mapped = codes.from_domain(exc)
    assert mapped is not None
    assert mapped[0] is result


def test_an_unknown_refusal_is_not_final() -> None:
    """A refusal added to the core later is not mapped here, so the adapter answers 1."""

    class Novel(errors.DomainError):
        code = "novel"

    assert codes.from_domain(Novel("x")) is None


def test_answer_element_order_and_escaping() -> None:
    """osmp_txn_id, prv_txn, sum, state, result, comment, fields: in that order, escaped."""
    response = wire.answer("7", Result.OK, prv_txn=9, sum_minor=1050, state="paid", fields={"name": "A<B"})
    assert response.text == (
        '<?xml version="1.0" encoding="UTF-8"?>\n<response><osmp_txn_id>7</osmp_txn_id>'
        "<prv_txn>9</prv_txn><sum>10.50</sum><state>paid</state><result>0</result>"
        '<comment>OK</comment><fields><field1 name="name">A&lt;B</field1></fields></response>\n'
    )


def test_control_characters_never_reach_the_xml() -> None:
    """A character XML 1.0 cannot carry is dropped rather than breaking the document."""
    response = wire.answer(None, Result.OK, fields={"name": "A\x00\x1bB"})
    assert '<field1 name="name">AB</field1>' in (response.text or "")


@pytest.mark.parametrize(
    ("raw", "comment"),
    [
        ("2026113114300", "malformed txn_date (YYYYMMDDHHMMSS)"),
        ("20261131143000", "impossible txn_date"),
        ("20261125250000", "impossible txn_date"),
        ("19991231235959", "txn_date out of range"),
        ("2026-11-25 14:30", "malformed txn_date (YYYYMMDDHHMMSS)"),
    ],
)
def test_txn_date_refusals(raw: str, comment: str) -> None:
    """A txn_date that is not 14 digits of a real instant is 300 with a clear comment."""
    params = {"command": "pay", "txn_id": "1", "account": "x", "sum": "1.00", "txn_date": raw}
    with pytest.raises(wire.WireError) as caught:
        wire.parse_request(params, ZONE)
    assert (caught.value.result, caught.value.comment) == (Result.OTHER, comment)


@pytest.mark.parametrize(
    ("text", "pairs"),
    [
        ("command=check&account=0012&sum=1.00", [("command", "check"), ("account", "0012"), ("sum", "1.00")]),
        ("&command=check&&sum=1.00&\n", [("command", "check"), ("sum", "1.00")]),
        ("name=A+B%20C&empty=", [("name", "A B C"), ("empty", "")]),
        ("name=%D0%90", [("name", "\u0410")]),
        ("", []),
    ],
)
def test_query_fields_are_read_as_url_encoded(text: str, pairs: list[tuple[str, str]]) -> None:
    """Fields decode as url-encoded UTF-8, `+` a space; empty fields and trailing space are ignored."""
    assert wire._pairs(text) == pairs


@pytest.mark.parametrize("text", ["command=check&account", "name=%FF", "a=%C3%28"])
def test_unreadable_fields_are_300(text: str) -> None:
    """A field without `=` or with percent-escapes that are not UTF-8 is refused with 300."""
    with pytest.raises(wire.WireError) as caught:
        wire._pairs(text)
    assert caught.value.result is Result.OTHER
    assert caught.value.comment == "unreadable parameters (not url-encoded UTF-8)"


def test_too_many_fields_in_one_string() -> None:
    """More than MAX_FIELDS fields in one query or body is 300, before any is decoded."""
    with pytest.raises(wire.WireError) as caught:
        wire._pairs("&".join(f"p{n}=%FF" for n in range(wire.MAX_FIELDS + 1)))
    assert caught.value.comment == "too many parameters"


@given(st.text(max_size=12), st.text(min_size=1, max_size=12))
@settings(max_examples=400, deadline=None)
def test_values_and_field_names_are_escaped(value: str, name: str) -> None:
    """Whatever a value or field holds, the XML carries it escaped, XML-illegal characters dropped."""

    def full(text: str) -> str:
        return escape(wire._NOT_XML_RE.sub("", text))

    response = wire.answer("1", Result.OK, value, fields={name: value})
    body = response.text or ""
    assert f"<comment>{full(value)}</comment>" in body
    assert f"<field1 name={quoteattr(name)}>{full(value)}</field1>" in body
