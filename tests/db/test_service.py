"""PaymentService against a real database: every outcome, replays, conflicts, two-phase."""

from datetime import UTC, datetime, timedelta

import pytest

from tests.conftest import Factory
from tolem.core import errors
from tolem.core.model import PayCommand, PaymentState
from tolem.core.service import PaymentService


def cmd(external_id: str, code: str, amount: int = 10000) -> PayCommand:
    """A pay command with defaults."""
    return PayCommand(external_id=external_id, payment_code=code, amount_minor=amount)


class TestCheck:
    async def test_check_returns_payer_without_moving_money(
        self,
        service: PaymentService,
        factory: Factory,
    ) -> None:
        """A payable code yields its payer; the balance stays zero and no payment is stored."""
        provider = await factory.provider()
        account_id, code = await factory.account()
        result = await service.check(provider, code, 5000)
        assert (result.account_id, result.payment_code, result.payer_name) == (
            account_id,
            code,
            "Asanov Asan Asanovich",
        )
        assert await factory.balance(account_id) == 0
        assert await factory.count("SELECT count(*) FROM payments") == 0

    async def test_check_outcomes(self, service: PaymentService, factory: Factory) -> None:
        """Malformed, unknown, blocked and out-of-limit codes each get their own error."""
        provider = await factory.provider(min_amount_minor=1000, max_amount_minor=100000)
        account_id, code = await factory.account()
        bad_digit = code[:-1] + str((int(code[-1]) + 1) % 10)
        with pytest.raises(errors.MalformedCode):
            await service.check(provider, bad_digit)
        with pytest.raises(errors.UnknownCode):
            await service.check(provider, "000000000000")
        with pytest.raises(errors.AmountTooSmall):
            await service.check(provider, code, 999)
        with pytest.raises(errors.AmountTooLarge):
            await service.check(provider, code, 100001)
        await factory.block(account_id)
        with pytest.raises(errors.AccountBlocked):
            await service.check(provider, code)


class TestPay:
    async def test_pay_credits_once_and_replays(
        self,
        service: PaymentService,
        factory: Factory,
    ) -> None:
        """The first pay credits; an identical repeat returns the same payment, marked replayed."""
        provider = await factory.provider()
        account_id, code = await factory.account()
        first = await service.pay(provider, cmd("t-1", code))
        again = await service.pay(provider, cmd("t-1", code))
        assert not first.replayed
        assert again.replayed
        assert again.payment == first.payment
        assert first.payment.state is PaymentState.CREDITED
        assert await factory.balance(account_id) == 10000
        assert await factory.count("SELECT count(*) FROM transfers") == 1

    async def test_spaced_code_is_the_same_code(
        self,
        service: PaymentService,
        factory: Factory,
    ) -> None:
        """A code typed with spaces pays the same payer and replays as the same request."""
        provider = await factory.provider()
        account_id, code = await factory.account()
        spaced = f"{code[:4]} {code[4:8]} {code[8:]}"
        first = await service.pay(provider, cmd("t-1", spaced))
        again = await service.pay(provider, cmd("t-1", code))
        assert again.replayed
        assert first.payment.payment_code == code
        assert await factory.balance(account_id) == 10000

    @pytest.mark.parametrize("change", ["amount", "code"])
    async def test_reused_id_with_other_data_conflicts(
        self,
        service: PaymentService,
        factory: Factory,
        change: str,
    ) -> None:
        """Same transaction id with another amount or code is refused and moves nothing."""
        provider = await factory.provider()
        account_id, code = await factory.account()
        other_account, other_code = await factory.account()
        await service.pay(provider, cmd("t-1", code))
        repeat = cmd("t-1", code, 20000) if change == "amount" else cmd("t-1", other_code)
        with pytest.raises(errors.IdempotencyConflict):
            await service.pay(provider, repeat)
        assert await factory.balance(account_id) == 10000
        assert await factory.balance(other_account) == 0

    async def test_same_id_at_two_providers_is_two_payments(
        self,
        service: PaymentService,
        factory: Factory,
    ) -> None:
        """The idempotency key is per provider: equal ids from two aggregators both credit."""
        first_provider = await factory.provider("one")
        second_provider = await factory.provider("two")
        account_id, code = await factory.account()
        await service.pay(first_provider, cmd("42", code))
        await service.pay(second_provider, cmd("42", code))
        assert await factory.balance(account_id) == 20000

    async def test_refusals_store_nothing(self, service: PaymentService, factory: Factory) -> None:
        """Unknown, blocked, limits and a disabled provider refuse without a payment row."""
        provider = await factory.provider(min_amount_minor=500, max_amount_minor=50000)
        account_id, code = await factory.account()
        with pytest.raises(errors.UnknownCode):
            await service.pay(provider, cmd("a", "000000000000"))
        with pytest.raises(errors.MalformedCode):
            await service.pay(provider, cmd("b", "00123;45"))
        with pytest.raises(errors.AmountTooSmall):
            await service.pay(provider, cmd("c", code, 499))
        with pytest.raises(errors.AmountTooLarge):
            await service.pay(provider, cmd("d", code, 50001))
        await factory.block(account_id)
        with pytest.raises(errors.AccountBlocked):
            await service.pay(provider, cmd("e", code))
        async with factory.pool.acquire() as conn:
            await conn.execute("UPDATE providers SET enabled = false")
        with pytest.raises(errors.ProviderDisabled):
            await service.pay(provider, cmd("f", code))
        assert await factory.count("SELECT count(*) FROM payments") == 0
        assert await factory.balance(account_id) == 0

    async def test_replay_survives_block_and_limit_change(
        self,
        service: PaymentService,
        factory: Factory,
    ) -> None:
        """A repeat of an accepted pay replays even after the account was blocked."""
        provider = await factory.provider()
        account_id, code = await factory.account()
        first = await service.pay(provider, cmd("t-1", code))
        await factory.block(account_id)
        async with factory.pool.acquire() as conn:
            await conn.execute("UPDATE providers SET max_amount_minor = 1")
        again = await service.pay(provider, cmd("t-1", code))
        assert again.replayed
        assert again.payment.id == first.payment.id
        assert await factory.balance(account_id) == 10000

    async def test_repeat_is_judged_by_the_stored_payment_before_any_refusal(
        self,
        service: PaymentService,
        factory: Factory,
    ) -> None:
        """Once a provider is disabled in the database, a repeat still replays; a repeat naming
        a code nobody has is a conflict with the stored payment, not an unknown code."""
        provider = await factory.provider()
        account_id, code = await factory.account()
        first = await service.pay(provider, cmd("t-1", code))
        async with factory.pool.acquire() as conn:
            # The gateway's provider cache may still say enabled: the database decides.
            await conn.execute("UPDATE providers SET enabled = false")
        again = await service.pay(provider, cmd("t-1", code))
        assert again.replayed
        assert again.payment.id == first.payment.id
        with pytest.raises(errors.ProviderDisabled):
            await service.pay(provider, cmd("t-2", code))
        async with factory.pool.acquire() as conn:
            await conn.execute("UPDATE providers SET enabled = true")
        with pytest.raises(errors.IdempotencyConflict):
            await service.pay(provider, cmd("t-1", "009999999999"))
        assert await factory.count("SELECT count(*) FROM payments") == 1
        assert await factory.balance(account_id) == 10000

    async def test_provider_time_is_stored(self, service: PaymentService, factory: Factory) -> None:
        """The aggregator's own timestamp is kept next to ours."""
        provider = await factory.provider()
        _, code = await factory.account()
        stamp = datetime(2026, 3, 15, 8, 30, 5, tzinfo=UTC)
        result = await service.pay(provider, PayCommand("t", code, 100, stamp, "20260315143005"))
        assert result.payment.provider_time == stamp
        status = await service.status(provider, external_id="t")
        assert status == result.payment


class TestCancel:
    async def test_cancel_reverses_once(self, service: PaymentService, factory: Factory) -> None:
        """Cancel writes one reversing transfer; a second cancel replays it."""
        provider = await factory.provider()
        account_id, code = await factory.account()
        paid = await service.pay(provider, cmd("t-1", code))
        cancelled = await service.cancel(provider, external_id="t-1", reason=5)
        again = await service.cancel(provider, external_id="t-1", reason=5)
        assert cancelled.payment.state is PaymentState.REVERSED
        assert cancelled.payment.cancel_reason == 5
        assert not cancelled.replayed
        assert again.replayed
        assert again.payment == cancelled.payment
        assert cancelled.payment.id == paid.payment.id
        assert await factory.balance(account_id) == 0
        assert (
            await factory.count(
                "SELECT count(*) FROM transfers WHERE code = 'reversal' AND reverses_transfer_id IS NOT NULL",
            )
            == 1
        )

    async def test_cancel_unknown_is_not_found(self, service: PaymentService, factory: Factory) -> None:
        """Cancel and status of an id never seen are PaymentNotFound."""
        provider = await factory.provider()
        with pytest.raises(errors.PaymentNotFound):
            await service.cancel(provider, external_id="nope")
        with pytest.raises(errors.PaymentNotFound):
            await service.status(provider, external_id="nope")

    async def test_cancel_of_spent_money_is_refused(
        self,
        service: PaymentService,
        factory: Factory,
    ) -> None:
        """A reversal that would drive the balance negative is refused and changes nothing."""
        provider = await factory.provider()
        account_id, code = await factory.account()
        await service.pay(provider, cmd("t-1", code, 10000))
        # Spending happens in the hosting billing, outside tolem: emulate it for the duration
        # of the cancel and put it back, so the ledger invariants hold when the test ends.
        spend = (
            "UPDATE ledger_accounts SET balance_minor = balance_minor + $2 "
            "WHERE id = (SELECT ledger_account_id FROM accounts WHERE id = $1)"
        )
        async with factory.pool.acquire() as conn:
            await conn.execute(spend, account_id, -9000)
        try:
            with pytest.raises(errors.InsufficientFunds):
                await service.cancel(provider, external_id="t-1")
        finally:
            async with factory.pool.acquire() as conn:
                await conn.execute(spend, account_id, 9000)
        status = await service.status(provider, external_id="t-1")
        assert status.state is PaymentState.CREDITED
        assert await factory.balance(account_id) == 10000


class TestTwoPhase:
    async def test_reserve_perform_cancel(self, service: PaymentService, factory: Factory) -> None:
        """Reserve holds no money; perform credits once; cancel then reverses."""
        provider = await factory.provider("wallet", "payme", password="k")
        account_id, code = await factory.account()
        reserved = await service.reserve(provider, cmd("p-1", code))
        assert reserved.payment.state is PaymentState.RESERVED
        assert await factory.balance(account_id) == 0
        assert (await service.reserve(provider, cmd("p-1", code))).replayed
        performed = await service.perform(provider, external_id="p-1")
        repeat = await service.perform(provider, payment_id=reserved.payment.id)
        assert performed.payment.state is PaymentState.CREDITED
        assert not performed.replayed
        assert repeat.replayed
        assert repeat.payment == performed.payment
        assert await factory.balance(account_id) == 10000
        cancelled = await service.cancel(provider, external_id="p-1", reason=5)
        assert cancelled.payment.state is PaymentState.REVERSED
        assert await factory.balance(account_id) == 0

    async def test_void_then_perform_is_wrong_state(
        self,
        service: PaymentService,
        factory: Factory,
    ) -> None:
        """A voided reservation can never be credited."""
        provider = await factory.provider("wallet", "payme", password="k")
        account_id, code = await factory.account()
        await service.reserve(provider, cmd("p-1", code))
        voided = await service.cancel(provider, external_id="p-1", reason=3)
        assert voided.payment.state is PaymentState.VOIDED
        with pytest.raises(errors.WrongState) as caught:
            await service.perform(provider, external_id="p-1")
        assert caught.value.payment is not None
        assert caught.value.payment.state is PaymentState.VOIDED
        assert await factory.balance(account_id) == 0
        assert await factory.count("SELECT count(*) FROM transfers") == 0

    async def test_stale_reservation_expires(
        self,
        service: PaymentService,
        factory: Factory,
    ) -> None:
        """Perform or repeat-reserve past the time limit voids with the given reason."""
        provider = await factory.provider("wallet", "payme", password="k")
        account_id, code = await factory.account()
        old = datetime.now(UTC) - timedelta(hours=13)
        await service.reserve(provider, PayCommand("p-1", code, 100, old))
        await service.reserve(provider, PayCommand("p-2", code, 100, old))
        limit = datetime.now(UTC) - timedelta(hours=12)
        with pytest.raises(errors.WrongState) as caught:
            await service.perform(provider, external_id="p-1", expire_before=limit, expire_reason=4)
        assert caught.value.payment is not None
        assert caught.value.payment.state is PaymentState.VOIDED
        assert caught.value.payment.cancel_reason == 4
        replay = await service.reserve(
            provider,
            PayCommand("p-2", code, 100, old),
            expire_before=limit,
            expire_reason=4,
        )
        assert replay.payment.state is PaymentState.VOIDED
        assert await factory.balance(account_id) == 0

    async def test_perform_unknown_is_not_found(
        self,
        service: PaymentService,
        factory: Factory,
    ) -> None:
        """Perform of an id never reserved is PaymentNotFound."""
        provider = await factory.provider("wallet", "payme", password="k")
        with pytest.raises(errors.PaymentNotFound):
            await service.perform(provider, external_id="missing")
        with pytest.raises(errors.PaymentNotFound):
            await service.perform(provider, payment_id=123456)

    async def test_other_providers_payment_is_invisible(
        self,
        service: PaymentService,
        factory: Factory,
    ) -> None:
        """A provider cannot perform, cancel or see another provider's payment by our id."""
        mine = await factory.provider("mine", "payme", password="k")
        theirs = await factory.provider("theirs", "payme", password="k")
        _, code = await factory.account()
        reserved = await service.reserve(mine, cmd("p-1", code))
        with pytest.raises(errors.PaymentNotFound):
            await service.perform(theirs, payment_id=reserved.payment.id)
        with pytest.raises(errors.PaymentNotFound):
            await service.cancel(theirs, payment_id=reserved.payment.id)
        with pytest.raises(errors.PaymentNotFound):
            await service.status(theirs, payment_id=reserved.payment.id)
        await service.cancel(mine, payment_id=reserved.payment.id)


class TestStatement:
    async def test_statement_orders_by_provider_time_within_bounds(
        self,
        service: PaymentService,
        factory: Factory,
    ) -> None:
        """Every payment in [since, until] by provider time, oldest first, any state."""
        provider = await factory.provider("wallet", "payme", password="k")
        _, code = await factory.account()
        base = datetime(2026, 1, 1, tzinfo=UTC)
        for n, minutes in enumerate([30, 10, 20, 40]):
            await service.reserve(
                provider, PayCommand(f"s-{n}", code, 100, base + timedelta(minutes=minutes))
            )
        await service.cancel(provider, external_id="s-1")
        rows = await service.statement(provider, base + timedelta(minutes=10), base + timedelta(minutes=30))
        assert [p.external_id for p in rows] == ["s-1", "s-2", "s-0"]
        assert rows[0].state is PaymentState.VOIDED


class TestVoid:
    async def test_void_ends_a_reservation_once(self, service: PaymentService, factory: Factory) -> None:
        """Void turns a reservation into voided with its reason; a repeat replays."""
        provider = await factory.provider("wallet", "click", secret="s", service_id="1")
        account_id, code = await factory.account()
        await service.reserve(provider, cmd("v-1", code))
        voided = await service.void(provider, external_id="v-1", reason=-5017)
        again = await service.void(provider, external_id="v-1", reason=-1)
        assert (voided.payment.state, voided.payment.cancel_reason, voided.replayed) == (
            PaymentState.VOIDED,
            -5017,
            False,
        )
        assert again.replayed
        assert again.payment == voided.payment
        assert await factory.balance(account_id) == 0

    async def test_void_never_touches_a_credit(self, service: PaymentService, factory: Factory) -> None:
        """Void of a credited payment is WrongState carrying the payment; the money stays."""
        provider = await factory.provider("wallet", "click", secret="s", service_id="1")
        account_id, code = await factory.account()
        await service.reserve(provider, cmd("v-1", code))
        await service.perform(provider, external_id="v-1")
        with pytest.raises(errors.WrongState) as caught:
            await service.void(provider, external_id="v-1")
        assert caught.value.payment is not None
        assert caught.value.payment.state is PaymentState.CREDITED
        assert await factory.balance(account_id) == 10000
        with pytest.raises(errors.PaymentNotFound):
            await service.void(provider, external_id="missing")
