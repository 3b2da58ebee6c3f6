"""Real concurrent commits: the unique key and row locks, not luck, keep money exact."""

import asyncio

from tests.conftest import Factory
from tolem.core import errors
from tolem.core.model import PayCommand, PaymentResult
from tolem.core.service import PaymentService


async def test_fifty_identical_pays_credit_once(service: PaymentService, factory: Factory) -> None:
    """50 concurrent copies of one pay: one credit, 49 replays, all of the same payment."""
    provider = await factory.provider()
    account_id, code = await factory.account()
    command = PayCommand("race-1", code, 12345)
    results = await asyncio.gather(*(service.pay(provider, command) for _ in range(50)))
    assert sum(not r.replayed for r in results) == 1
    assert {r.payment for r in results} == {results[0].payment}
    assert await factory.balance(account_id) == 12345
    assert await factory.count("SELECT count(*) FROM transfers") == 1


async def test_many_ids_many_copies(service: PaymentService, factory: Factory) -> None:
    """20 ids x 10 copies interleaved: each id credited exactly once."""
    provider = await factory.provider()
    account_id, code = await factory.account()
    commands = [PayCommand(f"id-{n}", code, 100 + n) for n in range(20)] * 10
    results = await asyncio.gather(*(service.pay(provider, c) for c in commands))
    fresh = [r for r in results if not r.replayed]
    assert len(fresh) == 20
    assert await factory.balance(account_id) == sum(100 + n for n in range(20))
    assert await factory.count("SELECT count(*) FROM payments") == 20


async def test_distinct_pays_to_one_account_all_land(
    service: PaymentService,
    factory: Factory,
) -> None:
    """100 different transactions to one hot account all credit; none lost to a race."""
    provider = await factory.provider()
    account_id, code = await factory.account()
    results = await asyncio.gather(
        *(service.pay(provider, PayCommand(f"hot-{n}", code, 1)) for n in range(100)),
    )
    assert not any(r.replayed for r in results)
    assert await factory.balance(account_id) == 100


async def test_racing_conflicting_pays_credit_one_amount(
    service: PaymentService,
    factory: Factory,
) -> None:
    """Two amounts racing on one id: exactly one wins, every other call replays or conflicts."""
    provider = await factory.provider()
    account_id, code = await factory.account()
    commands = [PayCommand("contested", code, 100 if n % 2 else 200) for n in range(30)]
    outcomes = await asyncio.gather(
        *(service.pay(provider, c) for c in commands),
        return_exceptions=True,
    )
    winners = [o for o in outcomes if isinstance(o, PaymentResult) and not o.replayed]
    assert len(winners) == 1
    amount = winners[0].payment.amount_minor
    for command, outcome in zip(commands, outcomes, strict=True):
        if command.amount_minor == amount:
            assert isinstance(outcome, PaymentResult)
        else:
            assert isinstance(outcome, errors.IdempotencyConflict)
    assert await factory.balance(account_id) == amount


async def test_concurrent_perform_and_cancel(service: PaymentService, factory: Factory) -> None:
    """Performs and cancels of one reservation race: the ledger ends consistent either way."""
    provider = await factory.provider("wallet", "payme", password="k")
    account_id, code = await factory.account()
    for n in range(10):
        await service.reserve(provider, PayCommand(f"r-{n}", code, 500))
    calls = []
    for n in range(10):
        calls += [service.perform(provider, external_id=f"r-{n}") for _ in range(5)]
        calls += [service.cancel(provider, external_id=f"r-{n}") for _ in range(5)]
    outcomes = await asyncio.gather(*calls, return_exceptions=True)
    assert all(isinstance(o, PaymentResult | errors.WrongState) for o in outcomes)
    credited = await factory.count("SELECT count(*) FROM payments WHERE state = 'credited'")
    assert await factory.balance(account_id) == credited * 500
    assert await factory.count("SELECT count(*) FROM transfers WHERE code = 'topup'") <= 10


async def test_concurrent_cancels_reverse_once(service: PaymentService, factory: Factory) -> None:
    """20 concurrent cancels of one credit write exactly one reversal."""
    provider = await factory.provider()
    account_id, code = await factory.account()
    await service.pay(provider, PayCommand("c-1", code, 700))
    results = await asyncio.gather(
        *(service.cancel(provider, external_id="c-1") for _ in range(20)),
    )
    assert sum(not r.replayed for r in results) == 1
    assert await factory.balance(account_id) == 0
    assert await factory.count("SELECT count(*) FROM transfers WHERE code = 'reversal'") == 1
