"""PaymentService: the rules every protocol shares. Adapters translate wire to these calls.

Each public method is one database transaction (through the store). Deadlocks and serialization
failures are rerun a bounded number of times; past that, and for any failure where the outcome
is unknown, the caller gets TemporarilyUnavailable and must answer "retry later".
"""

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Final, TypeVar

import structlog

from tolem.core import errors
from tolem.core.model import AccountStatus, CheckResult, PayCommand, Payment, PaymentResult, Provider
from tolem.core.payment_codes import validate_code
from tolem.core.store import Outcome, PaymentStore, StoreOutcome

# Three tries: a deadlock between two pays is already rare (one row lock each), and a fourth
# collision in a row means the database is in trouble and the aggregator's retry is better.
MAX_ATTEMPTS: Final = 3

T = TypeVar("T")

_log = structlog.get_logger("tolem.service")

# Every outcome but OK is a refusal (tests/db/test_schema_words.py holds them to the SQL).
REFUSALS: Final[dict[StoreOutcome, type[errors.DomainError]]] = {
    StoreOutcome.UNKNOWN_CODE: errors.UnknownCode,
    StoreOutcome.ACCOUNT_BLOCKED: errors.AccountBlocked,
    StoreOutcome.AMOUNT_TOO_SMALL: errors.AmountTooSmall,
    StoreOutcome.AMOUNT_TOO_LARGE: errors.AmountTooLarge,
    StoreOutcome.PROVIDER_DISABLED: errors.ProviderDisabled,
    StoreOutcome.CURRENCY_REFUSED: errors.CurrencyRefused,
    StoreOutcome.CONFLICT: errors.IdempotencyConflict,
    StoreOutcome.NOT_FOUND: errors.PaymentNotFound,
    StoreOutcome.WRONG_STATE: errors.WrongState,
    StoreOutcome.INSUFFICIENT_FUNDS: errors.InsufficientFunds,
}


class Observer:
    """What operators count; the default counts nothing. The core stays free of metrics code."""

    def retried(self) -> None:
        """A deadlock or serialization failure was rerun."""

    def credited(self, provider: Provider, amount_minor: int) -> None:
        """Money reached a balance."""

    def replayed(self, provider: Provider) -> None:
        """A repeat was answered from the stored first result."""

    def conflicted(self, provider: Provider) -> None:
        """A transaction id came back with other data."""


class PaymentService:
    """check / pay / reserve / perform / cancel / status / statement for one deployment.

    `currency` is the deployment's (TOLEM_CURRENCY): a provider of another currency is refused
    on check and on every new payment. Without it only the provider's and the account's
    currencies are compared (the database compares those in any case).
    """

    def __init__(
        self,
        store: PaymentStore,
        *,
        currency: str | None = None,
        observer: Observer | None = None,
    ) -> None:
        self._store = store
        self._currency = currency
        self._observer = observer or Observer()

    @staticmethod
    def check_limits(provider: Provider, amount_minor: int) -> None:
        """AmountTooSmall / AmountTooLarge against the provider's configured limits."""
        if provider.min_amount_minor is not None and amount_minor < provider.min_amount_minor:
            raise errors.AmountTooSmall("amount is below the provider's minimum")
        if provider.max_amount_minor is not None and amount_minor > provider.max_amount_minor:
            raise errors.AmountTooLarge("amount is above the provider's maximum")

    async def check(
        self,
        provider: Provider,
        raw_code: str,
        amount_minor: int | None = None,
    ) -> CheckResult:
        """Whether a code may be paid (with that amount); moves nothing.

        Raises ProviderDisabled, CurrencyRefused, MalformedCode, AmountTooSmall, AmountTooLarge,
        UnknownCode, AccountBlocked; TemporarilyUnavailable.
        """
        if not provider.enabled:
            raise errors.ProviderDisabled("provider is disabled")
        if self._currency is not None and provider.currency != self._currency:
            raise errors.CurrencyRefused("provider's currency is not the deployment's")
        code = validate_code(raw_code)
        if amount_minor is not None:
            self.check_limits(provider, amount_minor)
        # One SELECT under read committed takes no row locks and cannot fail serialization:
        # there is nothing to retry, so no retry loop wraps it on every check.
        found = await self._store.find_payer(code)
        if found is None:
            raise errors.UnknownCode("no payer has this payment code")
        result, status = found
        if result.currency != provider.currency:
            raise errors.CurrencyRefused("account is held in another currency than the provider's")
        if status is not AccountStatus.ACTIVE:
            raise errors.AccountBlocked("account is blocked")
        return result

    async def pay(self, provider: Provider, command: PayCommand) -> PaymentResult:
        """Credits a payment exactly once per (provider, external id); a repeat replays it.

        Raises MalformedCode, ProviderDisabled, CurrencyRefused, AmountTooSmall, AmountTooLarge,
        UnknownCode, AccountBlocked, IdempotencyConflict; TemporarilyUnavailable.
        """
        return await self._accept(provider, command, credit=True)

    async def reserve(
        self,
        provider: Provider,
        command: PayCommand,
        *,
        expire_before: datetime | None = None,
        expire_reason: int | None = None,
    ) -> PaymentResult:
        """Records a payment without crediting it (two-phase); a repeat replays it.

        A repeat of a reservation older than `expire_before` voids it first (with
        `expire_reason`) and then replays the voided payment. Raises as `pay`.
        """
        return await self._accept(
            provider,
            command,
            credit=False,
            expire_before=expire_before,
            expire_reason=expire_reason,
        )

    async def perform(
        self,
        provider: Provider,
        *,
        external_id: str | None = None,
        payment_id: int | None = None,
        expire_before: datetime | None = None,
        expire_reason: int | None = None,
    ) -> PaymentResult:
        """Credits a reservation exactly once; a repeat replays the credit.

        A reservation older than `expire_before` is voided instead and WrongState raised.
        Raises PaymentNotFound, WrongState (voided, reversed, expired), CurrencyRefused (a
        reservation written across currencies before the database refused them);
        TemporarilyUnavailable.
        """
        outcome = await self._retrying(
            lambda: self._store.perform(
                provider.id,
                external_id,
                payment_id,
                expire_before=expire_before,
                expire_reason=expire_reason,
            )
        )
        return self._result(provider, outcome, credits=True)

    async def cancel(
        self,
        provider: Provider,
        *,
        external_id: str | None = None,
        payment_id: int | None = None,
        reason: int | None = None,
    ) -> PaymentResult:
        """Voids a reservation or reverses a credit with a reversing transfer; repeats replay.

        Raises PaymentNotFound, InsufficientFunds; TemporarilyUnavailable.
        """
        outcome = await self._retrying(
            lambda: self._store.cancel(
                provider.id,
                external_id,
                payment_id,
                reason=reason,
            )
        )
        return self._result(provider, outcome)

    async def void(
        self,
        provider: Provider,
        *,
        external_id: str | None = None,
        payment_id: int | None = None,
        reason: int | None = None,
    ) -> PaymentResult:
        """Voids a reservation; a repeat replays. Unlike cancel it never reverses a credit.

        Raises PaymentNotFound, WrongState (credited or reversed: the error carries the
        payment); TemporarilyUnavailable.
        """
        outcome = await self._retrying(
            lambda: self._store.void(provider.id, external_id, payment_id, reason=reason)
        )
        return self._result(provider, outcome)

    async def status(
        self,
        provider: Provider,
        *,
        external_id: str | None = None,
        payment_id: int | None = None,
    ) -> Payment:
        """The stored payment. Raises PaymentNotFound; TemporarilyUnavailable."""
        payment = await self._retrying(
            lambda: self._store.get_payment(provider.id, external_id, payment_id),
        )
        if payment is None:
            raise errors.PaymentNotFound("no such payment")
        return payment

    async def statement(
        self,
        provider: Provider,
        since: datetime,
        until: datetime,
    ) -> list[Payment]:
        """Every payment of the provider stamped within [since, until], oldest first."""
        return await self._retrying(lambda: self._store.statement(provider.id, since, until))

    async def expire_reservations(
        self,
        provider: Provider,
        *,
        before: datetime,
        reason: int | None,
        limit: int,
    ) -> int:
        """Voids up to `limit` of the provider's reservations stamped before `before` (one
        transaction; safe to run from several processes at once) and says how many.

        Raises TemporarilyUnavailable.
        """
        return await self._retrying(
            lambda: self._store.expire_reservations(provider.id, before, reason, limit),
        )

    async def _accept(
        self,
        provider: Provider,
        command: PayCommand,
        *,
        credit: bool,
        expire_before: datetime | None = None,
        expire_reason: int | None = None,
    ) -> PaymentResult:
        code = validate_code(command.payment_code)
        normalized = PayCommand(
            external_id=command.external_id,
            payment_code=code,
            amount_minor=command.amount_minor,
            provider_time=command.provider_time,
            provider_time_raw=command.provider_time_raw,
        )
        # Limits, currencies and the enabled flag are checked in the database after replay
        # detection, so that a replay of an accepted payment still replays after they changed.
        outcome = await self._retrying(
            lambda: self._store.accept(
                provider.id,
                normalized,
                credit=credit,
                expire_before=expire_before,
                expire_reason=expire_reason,
                currency=self._currency,
            )
        )
        return self._result(provider, outcome, credits=credit)

    def _result(self, provider: Provider, outcome: Outcome, *, credits: bool = False) -> PaymentResult:
        if outcome.outcome is StoreOutcome.OK and outcome.payment is not None:
            if outcome.replayed:
                self._observer.replayed(provider)
            elif credits:
                self._observer.credited(provider, outcome.payment.amount_minor)
            return PaymentResult(payment=outcome.payment, replayed=outcome.replayed)
        if outcome.outcome is StoreOutcome.CONFLICT:
            self._observer.conflicted(provider)
        refusal = REFUSALS.get(outcome.outcome)
        if refusal is None:
            raise errors.TemporarilyUnavailable(f"unexpected outcome {outcome.outcome!r}")
        raise refusal(outcome.outcome.replace("_", " "), payment=outcome.payment)

    async def _retrying(self, operation: Callable[[], Awaitable[T]]) -> T:
        for attempt in range(1, MAX_ATTEMPTS + 1):
            try:
                return await operation()
            except errors.RetryableConflict:
                self._observer.retried()
                _log.warning("transaction_retry", attempt=attempt)
        raise errors.TemporarilyUnavailable("gave up after repeated deadlocks or serialization failures")
