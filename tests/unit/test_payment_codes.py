"""Payment codes: Luhn, random generation, shape classification, masking."""

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tolem.core.payment_codes import (
    ISSUED_LENGTH,
    CodeShape,
    classify,
    generate_code,
    luhn_check_digit,
    luhn_valid,
    mask,
    mask_name,
    normalize,
)


def test_luhn_known_values() -> None:
    """The textbook example 7992739871 has check digit 3."""
    assert luhn_check_digit("7992739871") == "3"
    assert luhn_valid("79927398713")
    assert not luhn_valid("79927398710")


@given(st.text(alphabet="0123456789", min_size=1, max_size=30))
def test_luhn_finds_every_single_mistyped_digit(digits: str) -> None:
    """Changing any one digit of a valid code, to any other digit, breaks its check digit."""
    code = digits + luhn_check_digit(digits)
    assert luhn_valid(code)
    for position, typed in itertools.product(range(len(code)), "0123456789"):
        if typed != code[position]:
            assert not luhn_valid(code[:position] + typed + code[position + 1 :])


@given(st.text(min_size=1).filter(lambda text: not (text.isascii() and text.isdigit())))
def test_luhn_refuses_anything_but_ascii_digits(text: str) -> None:
    """Letters, signs and non-ASCII digits are refused rather than summed as something else."""
    with pytest.raises(ValueError, match="ASCII digits"):
        luhn_check_digit(text)
    assert not luhn_valid(text + "0")


def test_generated_codes_are_issued_shape() -> None:
    """Issued codes start with 00, have the fixed length and a valid check digit."""
    for _ in range(200):
        code = generate_code()
        assert code.startswith("00")
        assert len(code) == ISSUED_LENGTH
        assert classify(code) is CodeShape.ISSUED


def test_generated_codes_are_not_sequential() -> None:
    """A thousand codes are all different and do not step by a constant."""
    codes = [int(generate_code()) for _ in range(1000)]
    assert len(set(codes)) == 1000
    steps = {b - a for a, b in itertools.pairwise(codes)}
    assert len(steps) > 900


@given(st.data())
def test_one_mistyped_digit_is_malformed(data: st.DataObject) -> None:
    """Changing any single digit of an issued code makes it a format error."""
    code = generate_code()
    position = data.draw(st.integers(min_value=2, max_value=len(code) - 1))
    replacement = data.draw(st.sampled_from([d for d in "0123456789" if d != code[position]]))
    typo = code[:position] + replacement + code[position + 1 :]
    assert classify(typo) is CodeShape.MALFORMED


@given(st.data())
def test_swapped_neighbours_are_malformed(data: st.DataObject) -> None:
    """Swapping two different adjacent digits is caught (Luhn's one blind spot, 09/90, aside)."""
    code = generate_code()
    position = data.draw(st.integers(min_value=2, max_value=len(code) - 2))
    a, b = code[position], code[position + 1]
    if a == b or {a, b} == {"0", "9"}:
        return
    swapped = code[:position] + b + a + code[position + 2 :]
    assert classify(swapped) is CodeShape.MALFORMED


def test_foreign_codes_pass_as_they_are() -> None:
    """Imported codes of other shapes are looked up, not judged by a check digit."""
    assert classify("12345") is CodeShape.FOREIGN
    assert classify("ABC-77") is CodeShape.FOREIGN
    assert classify("0012345") is CodeShape.FOREIGN


def test_bad_characters_and_lengths_are_malformed() -> None:
    """Empty, too long, punctuation, non-ASCII digits and spaces inside are format errors."""
    for bad in ["", "1" * 33, "12;34", "١٢٣", "00 12", "12\x00", "a b"]:
        assert classify(bad) is CodeShape.MALFORMED


def test_normalize_strips_spaces() -> None:
    """Codes typed in groups mean the same code."""
    assert normalize(" 0012 3456 7890 ") == "001234567890"


def test_mask_keeps_last_four() -> None:
    """Logs see only the last four characters."""
    assert mask("001234567897") == "********7897"
    assert mask("123") == "***"
    assert mask(None) is None


def test_mask_name() -> None:
    """Surname and first initial only."""
    assert mask_name("Asanov Asan Asanovich") == "Asanov A."
    assert mask_name("Madonna") == "Madonna"
    assert mask_name("   ") == ""


def _mask_name_word_by_word(full_name: str) -> str:
    parts = full_name.split()
    return parts[0] + "".join(f" {part[0]}." for part in parts[1:2]) if parts else ""


@given(st.text(alphabet=st.sampled_from("Aa Ыы\t\u00a0\u2003.-"), max_size=30))
def test_mask_name_keeps_the_first_word_and_one_initial(full_name: str) -> None:
    """Whatever the spacing (tabs, no-break and em spaces), the payer's name shows its first
    word and the second word's initial only, as the word-by-word rule gives."""
    assert mask_name(full_name) == _mask_name_word_by_word(full_name)
