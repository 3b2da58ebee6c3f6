"""Money is an integer count of minor units; decimal strings are parsed here, strictly.

No float ever holds an amount: `"10.10"` must become 1010 exactly, and a third decimal digit is a
refusal, not a rounding.
"""

import re
from typing import Final

# Up to 15 integer digits keeps every amount far inside bigint after scaling to minor units.
_AMOUNT_RE: Final = re.compile(r"(0|[1-9][0-9]{0,14})(?:\.([0-9]{1,2}))?")
MINOR_PER_MAJOR: Final = 100


class AmountError(ValueError):
    """The text is not an amount we accept."""


def parse_amount(text: str, *, allow_zero: bool = False) -> int:
    """Parses `150`, `150.5` or `150.50` (major units, dot separator) into minor units.

    Refuses signs, exponents, spaces, commas, more than two decimals and (unless `allow_zero`)
    zero, because every one of those is a typo or an attack at a payment endpoint.
    """
    match = _AMOUNT_RE.fullmatch(text)
    if match is None:
        raise AmountError(f"not an amount with at most two decimals: {text[:40]!r}")
    whole, fraction = match.groups()
    minor = int(whole) * MINOR_PER_MAJOR + int((fraction or "").ljust(2, "0"))
    if minor == 0 and not allow_zero:
        raise AmountError("amount must be greater than zero")
    return minor


def format_amount(minor: int) -> str:
    """Renders minor units as a major-unit decimal with exactly two decimals (`1050` → `10.50`)."""
    sign = "-" if minor < 0 else ""
    whole, fraction = divmod(abs(minor), MINOR_PER_MAJOR)
    return f"{sign}{whole}.{fraction:02d}"
