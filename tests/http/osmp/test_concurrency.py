"""Twin requests in flight at once, over HTTP with real commits: money moves at most once."""

import asyncio

from tests.http.osmp.conftest import OsmpWorld, paid, stated

TWINS = 20


async def test_concurrent_identical_pays_credit_once(world: OsmpWorld) -> None:
    """20 identical pays at once: all answer 0 with the same body (one prv_txn), one credit."""
    replies = await asyncio.gather(*(world.kiosk.pay("6001", "250.00") for _ in range(TWINS)))
    prv_txn = await world.payment_id("6001")
    assert {reply.text for reply in replies} == {paid("6001", prv_txn, "250.00")}
    assert await world.money() == (250_00, 1, 1)


async def test_concurrent_pays_with_different_sums_credit_one(world: OsmpWorld) -> None:
    """Same txn_id, two sums racing: one sum is credited, every other answer is 300 or that pay."""
    sums = ["100.00", "200.00"] * (TWINS // 2)
    replies = await asyncio.gather(*(world.kiosk.pay("6002", total) for total in sums))
    balance, payments, transfers = await world.money()
    assert (payments, transfers) == (1, 1)
    winner = f"{balance // 100}.00"
    prv_txn = await world.payment_id("6002")
    for total, reply in zip(sums, replies, strict=True):
        if total == winner:
            assert reply.text == paid("6002", prv_txn, winner)
        else:
            assert "<result>300</result>" in reply.text


async def test_concurrent_cancels_reverse_once(world: OsmpWorld) -> None:
    """20 cancels of one paid txn_id at once: one reversal, the same answer for all."""
    await world.kiosk.pay("6003", "80.00")
    prv_txn = await world.payment_id("6003")
    replies = await asyncio.gather(*(world.kiosk.cancel("6003") for _ in range(TWINS)))
    assert {reply.text for reply in replies} == {stated("6003", prv_txn, "80.00", "cancelled")}
    assert await world.money() == (0, 1, 2)


async def test_many_distinct_pays_at_once(world: OsmpWorld) -> None:
    """Distinct txn_ids to one account at once all credit: the balance is their exact sum."""
    replies = await asyncio.gather(*(world.kiosk.pay(str(7000 + n), "10.01") for n in range(TWINS)))
    assert all("<result>0</result>" in reply.text for reply in replies)
    assert await world.money() == (TWINS * 10_01, TWINS, TWINS)
