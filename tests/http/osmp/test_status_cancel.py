"""status reports a txn_id's fate; cancel reverses a paid payment once and repeats answer the same."""

from tests.http.osmp.conftest import OsmpWorld, paid, refused, stated


async def test_status_of_paid_payment(world: OsmpWorld) -> None:
    """status of a credited txn_id: 0 with prv_txn, sum and state paid."""
    await world.kiosk.pay("3001", "75.50")
    prv_txn = await world.payment_id("3001")
    assert (await world.kiosk.status("3001")).text == stated("3001", prv_txn, "75.50", "paid")


async def test_status_of_unknown_txn_id(world: OsmpWorld) -> None:
    """status of a txn_id we never accepted is 300 (also for one we refused)."""
    assert (await world.kiosk.status("3002")).text == refused("3002", 300, "unknown txn_id")
    await world.kiosk.pay("3003", "1.00")  # below the minimum: refused, not stored
    assert (await world.kiosk.status("3003")).text == refused("3003", 300, "unknown txn_id")


async def test_cancel_reverses_once_and_repeats_answer_the_same(world: OsmpWorld) -> None:
    """cancel of a paid txn_id reverses the credit with a new transfer; a repeat moves nothing."""
    await world.kiosk.pay("3010", "200.00")
    prv_txn = await world.payment_id("3010")
    first = await world.kiosk.cancel("3010")
    assert first.text == stated("3010", prv_txn, "200.00", "cancelled")
    assert await world.money() == (0, 1, 2)
    assert (await world.kiosk.cancel("3010")).text == first.text
    assert await world.money() == (0, 1, 2)
    assert (await world.kiosk.status("3010")).text == stated("3010", prv_txn, "200.00", "cancelled")


async def test_pay_repeated_after_cancel_replays_the_first_answer(world: OsmpWorld) -> None:
    """A late repeat of a cancelled pay answers what the pay answered and credits nothing."""
    first = await world.kiosk.pay("3011", "20.00")
    await world.kiosk.cancel("3011")
    assert (await world.kiosk.pay("3011", "20.00")).text == first.text
    assert await world.money() == (0, 1, 2)


async def test_cancel_of_unknown_txn_id(world: OsmpWorld) -> None:
    """cancel of a txn_id we never accepted is 300 and moves nothing."""
    assert (await world.kiosk.cancel("3020")).text == refused("3020", 300, "unknown txn_id")
    assert await world.money() == (0, 0, 0)


async def test_prv_txn_must_name_the_same_payment(world: OsmpWorld) -> None:
    """With prv_txn given, status and cancel act only when it is ours for that txn_id."""
    await world.kiosk.pay("3030", "30.00")
    await world.kiosk.pay("3031", "31.00")
    prv_txn = await world.payment_id("3030")
    other = await world.payment_id("3031")
    assert (await world.kiosk.status("3030", prv_txn=str(prv_txn))).text == stated(
        "3030", prv_txn, "30.00", "paid"
    )
    assert (await world.kiosk.cancel("3030", prv_txn=str(other))).text == refused(
        "3030", 300, "unknown txn_id"
    )
    assert await world.money() == (61_00, 2, 2)


async def test_status_answer_does_not_need_account_or_sum(world: OsmpWorld) -> None:
    """status and cancel take the txn_id alone; a pay's answer is unaffected by them."""
    reply = await world.kiosk.pay("3050", "12.00")
    assert reply.text == paid("3050", await world.payment_id("3050"), "12.00")
    assert "<state>paid</state>" in (await world.kiosk.status("3050")).text
