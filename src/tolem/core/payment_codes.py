"""Payment codes: what a customer types at the kiosk.

Issued codes are `00` + random digits + a Luhn check digit, so a single mistyped digit or two
swapped neighbours is a *format* error found before any lookup, and a neighbour's code cannot be
guessed by counting. Codes imported from an older billing are taken as they are, as long as they
cannot be mistaken for an issued code with a wrong check digit.
"""

import enum
import re
import secrets
from typing import Final

from tolem.core.errors import MalformedCode

ISSUED_PREFIX: Final = "00"
# 9 random digits: 10^9 possibilities, so with a million customers a guessed well-formed code
# hits an existing one about once in a thousand tries, and each try is logged.
ISSUED_RANDOM_DIGITS: Final = 9
ISSUED_LENGTH: Final = len(ISSUED_PREFIX) + ISSUED_RANDOM_DIGITS + 1
MAX_CODE_LENGTH: Final = 32
_CODE_CHARS_RE: Final = re.compile(r"[0-9A-Za-z-]{1,32}")
_MASK_KEEP: Final = 4


class CodeShape(enum.Enum):
    """How a typed code looks before any lookup."""

    ISSUED = "issued"
    FOREIGN = "foreign"
    MALFORMED = "malformed"


def luhn_check_digit(digits: str) -> str:
    """The digit that, appended to `digits` (ASCII digits), makes the Luhn sum divisible by ten."""
    if digits and not (digits.isascii() and digits.isdigit()):
        raise ValueError("a Luhn sum needs ASCII digits")
    total = 0
    # From the right: the digit next to the (future) check digit is doubled first.
    for index, char in enumerate(reversed(digits)):
        value = int(char) * 2 if index % 2 == 0 else int(char)
        total += value - 9 if value > 9 else value
    return str((10 - total % 10) % 10)


def luhn_valid(code: str) -> bool:
    """Whether an all-digit string ends with its own Luhn check digit."""
    return len(code) >= 2 and code.isascii() and code.isdigit() and luhn_check_digit(code[:-1]) == code[-1]


def generate_code() -> str:
    """A fresh random issued code; the database's unique key decides whether it is really new."""
    body = ISSUED_PREFIX + "".join(str(secrets.randbelow(10)) for _ in range(ISSUED_RANDOM_DIGITS))
    return body + luhn_check_digit(body)


def looks_issued(code: str) -> bool:
    """Whether a code has the shape of one we issue (and so must carry a valid check digit)."""
    return len(code) == ISSUED_LENGTH and code.isascii() and code.isdigit() and code.startswith(ISSUED_PREFIX)


def normalize(raw: str) -> str:
    """What customers type with spaces (`0012 3456 7890`) means the code without them."""
    return "".join(raw.split())


def classify(code: str) -> CodeShape:
    """Tells a malformed code (bad characters, length, check digit) from a lookup-able one."""
    if not _CODE_CHARS_RE.fullmatch(code):
        return CodeShape.MALFORMED
    if looks_issued(code):
        return CodeShape.ISSUED if luhn_valid(code) else CodeShape.MALFORMED
    return CodeShape.FOREIGN


def validate_code(raw: str) -> str:
    """The code as typed with its spaces removed; MalformedCode before anything is looked up."""
    code = normalize(raw)
    if classify(code) is CodeShape.MALFORMED:
        raise MalformedCode("payment code is malformed")
    return code


def mask(code: str | None) -> str | None:
    """The last digits only, for logs: enough to correlate, not enough to pay into."""
    if code is None:
        return None
    if len(code) <= _MASK_KEEP:
        return "*" * len(code)
    return "*" * (len(code) - _MASK_KEEP) + code[-_MASK_KEEP:]


def mask_name(full_name: str) -> str:
    """`Asanov Asan Asanovich` → `Asanov A.`: enough for the payer to recognise, no more."""
    parts = full_name.split(maxsplit=2)
    if len(parts) < 2:
        return parts[0] if parts else ""
    return f"{parts[0]} {parts[1][0]}."
