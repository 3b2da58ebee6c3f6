"""The persistence port the service needs. The PostgreSQL implementation lives in tolem.db."""

from datetime import datetime
from typing import Protocol

from tolem.core.model import CheckResult, PayCommand, Payment


class Outcome(Protocol):
    """A stored operation's outcome word and the payment it concerns, if any."""

    @property
    def outcome(self) -> str: ...

    @property
    def replayed(self) -> bool: ...

    @property
    def payment(self) -> Payment | None: ...


class PaymentStore(Protocol):
    """Each method is one database transaction; they raise RetryableConflict or
    TemporarilyUnavailable for infrastructure failures, CurrencyRefused when the database itself
    refused to mix currencies, and never anything else of their own."""

    async def find_payer(self, payment_code: str) -> tuple[CheckResult, str] | None:
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
