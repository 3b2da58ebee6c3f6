"""Typed domain outcomes. Each protocol adapter maps these codes to its own wire codes.

`code` is stable: adapters, logs and metrics key on it.
"""

from typing import ClassVar

from tolem.core.model import Payment


class DomainError(Exception):
    """A final, deterministic refusal: the same request gets the same answer."""

    code: ClassVar[str] = "domain_error"

    def __init__(self, message: str, *, payment: Payment | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.payment = payment


class MalformedCode(DomainError):
    """The payment code has bad characters, a bad length or a bad check digit."""

    code = "malformed_code"


class UnknownCode(DomainError):
    """The code is well formed but belongs to no payer."""

    code = "unknown_code"


class AccountBlocked(DomainError):
    """The code's account is blocked and accepts no new payments."""

    code = "account_blocked"


class AmountTooSmall(DomainError):
    """The amount is below the provider's minimum."""

    code = "amount_too_small"


class AmountTooLarge(DomainError):
    """The amount is above the provider's maximum."""

    code = "amount_too_large"


class ProviderDisabled(DomainError):
    """The provider is switched off: it may not move money."""

    code = "provider_disabled"


class CurrencyRefused(DomainError):
    """The payment's currency is not the account's, the provider's or the deployment's.

    tolem never converts, so such a payment is refused, finally, and nothing moves.
    """

    code = "currency_refused"


class IdempotencyConflict(DomainError):
    """The provider's transaction id was used before with another amount or code."""

    code = "idempotency_conflict"


class PaymentNotFound(DomainError):
    """No payment of this provider has that id."""

    code = "not_found"


class WrongState(DomainError):
    """The payment exists but the operation does not apply to its state."""

    code = "wrong_state"


class InsufficientFunds(DomainError):
    """A credit cannot be reversed: the customer has already spent the money."""

    code = "insufficient_funds"


class TemporarilyUnavailable(Exception):
    """We do not know whether the operation took effect, or could not try: ask for a retry.

    Never a final answer: the aggregator repeats the request and the idempotency key settles it.
    """

    code: ClassVar[str] = "temporarily_unavailable"


class RetryableConflict(Exception):
    """A deadlock or serialization failure: the transaction rolled back and may simply be rerun."""
