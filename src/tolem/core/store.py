"""The persistence port the service needs. The PostgreSQL implementation lives in tolem.db."""

import enum
from datetime import datetime
from typing import Protocol

from tolem.core.model import AccountStatus, CheckResult, PayCommand, Payment


class StoreOutcome(enum.StrEnum):
    """The outcome words the payment functions answer with (tolem_payment_result.outcome)."""

    OK = "ok"
    CONFLICT = "conflict"
    UNKNOWN_CODE = "unknown_code"
    ACCOUNT_BLOCKED = "account_blocked"
    AMOUNT_TOO_SMALL = "amount_too_small"
    AMOUNT_TOO_LARGE = "amount_too_large"
    PROVIDER_DISABLED = "provider_disabled"
    CURRENCY_REFUSED = "currency_refused"
    NOT_FOUND = "not_found"
    WRONG_STATE = "wrong_state"
    INSUFFICIENT_FUNDS = "insufficient_funds"


class Outcome(Protocol):
    """A stored operation's outcome and the payment it concerns, if any."""

    @property
    def outcome(self) -> StoreOutcome: ...

    @property
    def replayed(self) -> bool: ...

    @property
    def payment(self) -> Payment | None: ...


class PaymentStore(Protocol):
    """Each method is one database transaction; they raise RetryableConflict or
    TemporarilyUnavailable for infrastructure failures, CurrencyRefused when the database itself
    refused to mix currencies, and never anything else of their own."""

    async def find_payer(self, payment_code: str) -> tuple[CheckResult, AccountStatus] | None:
        """The payer with that code and its account status."""
        ...

    async def accept(
        self,
        provider_id: int,
        command: PayCommand,
        *,
        credit: bool,
        expire_before: datetime | None,
        expire_reason: int | None,
        currency: str | None,
    ) -> Outcome:
        """Pays (credit) or reserves a new payment, or replays the one with that external id.

        A new payment is refused ('currency_refused') unless the provider's currency is the
        account's and, when given, `currency`.
        """
        ...

    async def perform(
        self,
        provider_id: int,
        external_id: str | None,
        payment_id: int | None,
        *,
        expire_before: datetime | None,
        expire_reason: int | None,
    ) -> Outcome:
        """Credits a reservation."""
        ...

    async def cancel(
        self,
        provider_id: int,
        external_id: str | None,
        payment_id: int | None,
        *,
        reason: int | None,
    ) -> Outcome:
        """Voids a reservation or reverses a credit."""
        ...

    async def void(
        self,
        provider_id: int,
        external_id: str | None,
        payment_id: int | None,
        *,
        reason: int | None,
    ) -> Outcome:
        """Voids a reservation; never touches a credit."""
        ...

    async def get_payment(
        self,
        provider_id: int,
        external_id: str | None,
        payment_id: int | None,
    ) -> Payment | None:
        """One payment of a provider by its id or ours."""
        ...

    async def statement(
        self,
        provider_id: int,
        since: datetime,
        until: datetime,
    ) -> list[Payment]:
        """Payments of a provider whose provider time lies in [since, until], oldest first."""
        ...

    async def expire_reservations(
        self,
        provider_id: int,
        before: datetime,
        reason: int | None,
        limit: int,
    ) -> int:
        """Voids up to `limit` reservations of a provider stamped before `before`; how many."""
        ...
