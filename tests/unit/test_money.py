"""Strict parsing of decimal amounts into integer minor units."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tolem.core.money import AmountError, format_amount, parse_amount


@pytest.mark.parametrize(
    ("text", "minor"),
    [
        ("10", 1000),
        ("10.5", 1050),
        ("10.50", 1050),
        ("0.01", 1),
        ("152.00", 15200),
        ("999999999999999.99", 99999999999999999),
    ],
)
def test_accepts_plain_decimals(text: str, minor: int) -> None:
    """Whole numbers and one or two decimals become exact minor units."""
    assert parse_amount(text) == minor


@pytest.mark.parametrize(
    "text",
    [
        "10.505",
        "-1",
        "0",
        "0.00",
        "1e3",
        "abc",
        "",
        " 10",
        "10 ",
        "10,50",
        "+10",
        "010",
        "10.",
        ".5",
        "1_000",
        "１０",
        "NaN",
        "Infinity",
        "10.5.0",
        "1000000000000000",
    ],
)
def test_refuses_everything_else(text: str) -> None:
    """Signs, exponents, extra decimals, zero, separators and non-ASCII digits are refused."""
    with pytest.raises(AmountError):
        parse_amount(text)


def test_zero_allowed_only_when_asked() -> None:
    """A lookup may carry 0.00; a payment never."""
    assert parse_amount("0.00", allow_zero=True) == 0
    with pytest.raises(AmountError):
        parse_amount("0.00")


@given(st.integers(min_value=1, max_value=10**17 - 1))
def test_format_then_parse_round_trips(minor: int) -> None:
    """Rendering and parsing are exact inverses for every representable amount."""
    assert parse_amount(format_amount(minor)) == minor


def test_format_pads_cents() -> None:
    """Two decimals always, as the protocols expect."""
    assert format_amount(5) == "0.05"
    assert format_amount(150050) == "1500.50"
