"""CreateTransaction: reserves without crediting; repeats answer the stored reservation."""

import asyncio
from datetime import timedelta

from tests.conftest import Factory
from tests.http.payme.conftest import Clock, Payme, err, ok
from tolem.core import errors
from tolem.protocols.payme import codes

TXN = "6400a8b2c3d4e5f6a7b8c9d0"


async def test_create_reserves_without_crediting(
    payme: Payme, account: tuple[int, str], clock: Clock
) -> None:
    """Create answers state 1 with our id and creation time; the balance does not move."""
    account_id, code = account
    time_ms = clock.ms()
    body = await payme.create(TXN, code, 12345, time_ms, request_id=31)
    stored = await payme.stored(TXN)
    assert body == ok(
        {"create_time": stored["create_time"], "transaction": stored["transaction"], "state": 1}, 31
    )
    assert (stored["state"], stored["amount"], stored["time"], stored["time_raw"]) == (
        "reserved",
        12345,
        time_ms,
        str(time_ms),
    )
    assert await payme.money(account_id) == (0, 1, 0)


async def test_repeat_create_answers_the_same(payme: Payme, account: tuple[int, str], clock: Clock) -> None:
    """A repeated Create (same id, amount, code) returns the stored answer and stores nothing new."""
    account_id, code = account
    time_ms = clock.ms()
    first = await payme.create(TXN, code, 500, time_ms)
    clock.advance(timedelta(hours=1))
    spaced = f"{code[:4]} {code[4:]}"
    for _ in range(3):
        assert await payme.create(TXN, spaced, 500, time_ms) == first
    assert await payme.money(account_id) == (0, 1, 0)


async def test_mismatched_repeat_never_moves_money(
    payme: Payme, factory: Factory, account: tuple[int, str], clock: Clock
) -> None:
    """The same id with another amount or code is -31008; the original stays as it was."""
    account_id, code = account
    other_account, other_code = await factory.account()
    time_ms = clock.ms()
    first = await payme.create(TXN, code, 500, time_ms)
    conflict = err(codes.from_domain(errors.IdempotencyConflict("")))
    assert await payme.create(TXN, code, 501, time_ms) == conflict
    assert await payme.create(TXN, other_code, 500, time_ms) == conflict
    assert conflict["error"]["code"] == -31008
    assert await payme.create(TXN, code, 500, time_ms) == first
    performed = await payme.perform(TXN)
    assert performed["result"]["state"] == 2
    assert await payme.create(TXN, code, 501, time_ms) == conflict
    assert await payme.money(account_id) == (500, 1, 1)
    assert await factory.balance(other_account) == 0


async def test_create_refusals_store_nothing(
    payme: Payme, factory: Factory, account: tuple[int, str], clock: Clock
) -> None:
    """Bad amount, limits, bad or unknown code and a blocked account: an error, no payment row."""
    account_id, code = account
    time_ms = clock.ms()
    assert await payme.create("a", code, 0, time_ms) == err(codes.wrong_amount())
    assert await payme.create("b", code, 99, time_ms) == err(codes.from_domain(errors.AmountTooSmall("")))
    assert await payme.create("c", code, 50001, time_ms) == err(codes.from_domain(errors.AmountTooLarge("")))
    assert await payme.create("d", "000000000000", 500, time_ms) == err(
        codes.from_domain(errors.UnknownCode(""))
    )
    assert await payme.create("e", "00;1", 500, time_ms) == err(codes.from_domain(errors.MalformedCode("")))
    await factory.block(account_id)
    assert await payme.create("f", code, 500, time_ms) == err(codes.from_domain(errors.AccountBlocked("")))
    assert await payme.money(account_id) == (0, 0, 0)


async def test_repeat_survives_a_block_after_create(
    payme: Payme, factory: Factory, account: tuple[int, str], clock: Clock
) -> None:
    """An account blocked after Create still gets the same answer to the repeat, and Perform."""
    account_id, code = account
    first = await payme.create(TXN, code, 500, clock.ms())
    await factory.block(account_id)
    assert await payme.create(TXN, code, 500, clock.ms()) == first
    assert (await payme.perform(TXN))["result"]["state"] == 2
    assert await payme.money(account_id) == (500, 1, 1)


async def test_create_after_perform_or_cancel_is_refused(
    payme: Payme, account: tuple[int, str], clock: Clock
) -> None:
    """Create of an id already performed, voided or reversed is -31008 and changes nothing."""
    account_id, code = account
    time_ms = clock.ms()
    for txn in ("performed", "voided", "reversed"):
        await payme.create(txn, code, 500, time_ms)
    await payme.perform("performed")
    await payme.cancel("voided", 3)
    await payme.perform("reversed")
    await payme.cancel("reversed", 5)
    for txn in ("performed", "voided", "reversed"):
        assert await payme.create(txn, code, 500, time_ms) == err(codes.cannot_perform()), txn
    assert await payme.money(account_id) == (500, 3, 3)


async def test_top_ups_accumulate_in_parallel(payme: Payme, account: tuple[int, str], clock: Clock) -> None:
    """Any number of transactions for one code may be open at once; each credits once."""
    account_id, code = account
    time_ms = clock.ms()
    txns = [f"acc-{n:02d}" for n in range(12)]
    created = await asyncio.gather(*(payme.create(t, code, 1000 + n, time_ms) for n, t in enumerate(txns)))
    assert all(body["result"]["state"] == 1 for body in created)
    assert len({body["result"]["transaction"] for body in created}) == len(txns)
    assert await payme.money(account_id) == (0, 12, 0)
    performed = await asyncio.gather(*(payme.perform(t) for t in txns))
    assert all(body["result"]["state"] == 2 for body in performed)
    assert await payme.money(account_id) == (sum(1000 + n for n in range(12)), 12, 12)


async def test_concurrent_duplicate_creates_store_one(
    payme: Payme, account: tuple[int, str], clock: Clock
) -> None:
    """Twenty simultaneous identical Creates: one reservation, twenty identical answers."""
    account_id, code = account
    time_ms = clock.ms()
    answers = await asyncio.gather(*(payme.create(TXN, code, 700, time_ms, request_id=3) for _ in range(20)))
    stored = await payme.stored(TXN)
    expected = ok({"create_time": stored["create_time"], "transaction": stored["transaction"], "state": 1}, 3)
    assert answers == [expected] * 20
    assert await payme.money(account_id) == (0, 1, 0)
