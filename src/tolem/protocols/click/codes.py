"""Click's result codes (the `error` field of every answer) and the notes that go with them.

Click publishes one table and no fatal / non-fatal split, so every negative code is a final
answer for the transaction it names. None of them means "retry": that answer is not a code at
all (see handlers.temporary_answer).
"""

import enum
from typing import Final


class ClickError(enum.IntEnum):
    """The `error` values we answer, with the meaning Click gives them."""

    SUCCESS = 0
    SIGN_CHECK_FAILED = -1
    INCORRECT_AMOUNT = -2
    ACTION_NOT_FOUND = -3
    ALREADY_PAID = -4
    USER_NOT_FOUND = -5
    TRANSACTION_NOT_FOUND = -6
    # Click's "Failed to update user". Deliberately unused: Click would take it as a final
    # refusal, and the only crediting failures we have are the ones whose outcome is unknown.
    FAILED_TO_UPDATE_USER = -7
    BAD_REQUEST = -8
    TRANSACTION_CANCELLED = -9


# Click's own wording, which its test tool and support staff recognise.
NOTES: Final[dict[ClickError, str]] = {
    ClickError.SUCCESS: "Success",
    ClickError.SIGN_CHECK_FAILED: "SIGN CHECK FAILED!",
    ClickError.INCORRECT_AMOUNT: "Incorrect parameter amount",
    ClickError.ACTION_NOT_FOUND: "Action not found",
    ClickError.ALREADY_PAID: "Already paid",
    ClickError.USER_NOT_FOUND: "User does not exist",
    ClickError.TRANSACTION_NOT_FOUND: "Transaction does not exist",
    ClickError.FAILED_TO_UPDATE_USER: "Failed to update user",
    ClickError.BAD_REQUEST: "Error in request from click",
    ClickError.TRANSACTION_CANCELLED: "Transaction cancelled",
}

# The places we word a code differently. Support must tell "no such code" from "blocked".
ACCOUNT_BLOCKED_NOTE: Final = "User is blocked"
# Click has no code of its own for a request naming another service; -8 goes with this note,
# in Click's own wording for a wrong field ("Incorrect parameter amount").
WRONG_SERVICE_NOTE: Final = "Incorrect parameter service_id"
