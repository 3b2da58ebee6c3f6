"""OSMP result codes: the one table from the core's outcomes to what the aggregator reads.

Only 1 is a "retry" answer; every other code is final, and the aggregator settles the payment
with the payer on it. So a final code is given only when we know nothing moved (a refusal) or
exactly what moved (a success or a replay); when the outcome is unknown the answer is 1.
"""

import enum
from typing import Final

from tolem.core import errors


class Result(enum.IntEnum):
    """The `<result>` values we answer (docs/osmp.md, "Answers")."""

    OK = 0
    TEMPORARY = 1
    MALFORMED_ACCOUNT = 4
    ACCOUNT_NOT_FOUND = 5
    FORBIDDEN = 7
    ACCOUNT_BLOCKED = 79
    SUM_TOO_SMALL = 241
    SUM_TOO_LARGE = 242
    OTHER = 300


# The `<comment>` that goes with each code unless a more precise one is given. Operators read
# these in the aggregator's console, so they name the cause in plain words.
COMMENTS: Final[dict[Result, str]] = {
    Result.OK: "OK",
    Result.TEMPORARY: "temporary error, retry later",
    Result.MALFORMED_ACCOUNT: "malformed account",
    Result.ACCOUNT_NOT_FOUND: "account not found",
    Result.FORBIDDEN: "payment forbidden",
    Result.ACCOUNT_BLOCKED: "account blocked",
    Result.SUM_TOO_SMALL: "sum too small",
    Result.SUM_TOO_LARGE: "sum too large",
    Result.OTHER: "request refused",
}


def from_domain(exc: errors.DomainError) -> tuple[Result, str] | None:
    """The code and comment for a core refusal; None for one not known to be final."""
    match exc:
        case errors.MalformedCode():
            return Result.MALFORMED_ACCOUNT, COMMENTS[Result.MALFORMED_ACCOUNT]
        case errors.UnknownCode():
            return Result.ACCOUNT_NOT_FOUND, COMMENTS[Result.ACCOUNT_NOT_FOUND]
        case errors.AccountBlocked():
            return Result.ACCOUNT_BLOCKED, COMMENTS[Result.ACCOUNT_BLOCKED]
        case errors.AmountTooSmall():
            return Result.SUM_TOO_SMALL, COMMENTS[Result.SUM_TOO_SMALL]
        case errors.AmountTooLarge():
            return Result.SUM_TOO_LARGE, COMMENTS[Result.SUM_TOO_LARGE]
        case errors.ProviderDisabled():
            return Result.FORBIDDEN, "provider disabled"
        case errors.CurrencyRefused():
            return Result.FORBIDDEN, "currency refused"
        case errors.IdempotencyConflict():
            return Result.OTHER, "txn_id already used with another account or sum"
        case errors.PaymentNotFound():
            return Result.OTHER, "unknown txn_id"
        case errors.InsufficientFunds():
            return Result.OTHER, "cancel impossible: the payment was already spent"
        case errors.WrongState():
            return Result.OTHER, "operation not possible in the payment's state"
        case _:
            return None
