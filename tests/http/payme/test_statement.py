"""GetStatement: every transaction created in [from, to] by Payme's `time`, in any state,
ordered by `time`, with every field the spec lists."""

from datetime import timedelta

from tests.conftest import Factory
from tests.http.payme.conftest import Clock, Payme, ok
from tolem.core.model import PayCommand
from tolem.core.service import PaymentService
from tolem.protocols.payme import wire


async def _entry(payme: Payme, txn: str, code: str) -> dict[str, object]:
    stored = await payme.stored(txn)
    states = {"reserved": 1, "credited": 2, "voided": -1, "reversed": -2}
    return {
        "id": txn,
        "time": stored["time"],
        "amount": stored["amount"],
        "account": {"code": code},
        "create_time": stored["create_time"],
        "perform_time": stored["perform_time"],
        "cancel_time": stored["cancel_time"],
        "transaction": stored["transaction"],
        "state": states[stored["state"]],
        "reason": stored["reason"],
        "receivers": None,
    }


async def test_statement_lists_every_state_in_time_order_with_inclusive_bounds(
    payme: Payme, account: tuple[int, str], clock: Clock
) -> None:
    """Created out of order and left in all four states, transactions come back sorted by `time`;
    both bounds are inclusive and a millisecond either side excludes the edge."""
    account_id, code = account
    base = clock.ms()
    # (id, offset in ms from base) in creation order, deliberately not time order.
    plan = [("t30", 30), ("t10", 10), ("t20", 20), ("t40", 40), ("t25", 25), ("t05", 5)]
    for txn, offset in plan:
        created = await payme.create(txn, code, 100 + offset, base + offset)
        assert created["result"]["state"] == 1
    await payme.perform("t10")
    await payme.cancel("t20", 3)
    await payme.perform("t25")
    await payme.cancel("t25", 5)

    async def statement(since: int, until: int) -> dict[str, object]:
        return await payme.call("GetStatement", {"from": base + since, "to": base + until}, request_id=61)

    expected = [await _entry(payme, t, code) for t in ("t10", "t20", "t25", "t30")]
    assert await statement(10, 30) == ok({"transactions": expected}, 61)
    assert await statement(11, 30) == ok({"transactions": expected[1:]}, 61)
    assert await statement(10, 29) == ok({"transactions": expected[:3]}, 61)
    assert await statement(20, 20) == ok({"transactions": expected[1:2]}, 61)
    everything = [await _entry(payme, t, code) for t in ("t05", "t10", "t20", "t25", "t30", "t40")]
    assert await statement(-(10**6), 10**6) == ok({"transactions": everything}, 61)
    assert await payme.money(account_id) == (110, 6, 3)


async def test_empty_and_inverted_ranges_are_empty(
    payme: Payme, account: tuple[int, str], clock: Clock
) -> None:
    """A range with no transactions, or with `from` after `to`, is an empty list, not an error."""
    account_id, code = account
    base = clock.ms()
    await payme.create("only", code, 500, base)
    assert await payme.call("GetStatement", {"from": base + 1, "to": base + 10**6}) == ok(
        {"transactions": []}
    )
    assert await payme.call("GetStatement", {"from": base, "to": base - 1}) == ok({"transactions": []})
    assert await payme.call("GetStatement", {"from": 0, "to": 0}) == ok({"transactions": []})
    assert await payme.money(account_id) == (0, 1, 0)


async def test_failed_creates_and_other_providers_are_not_listed(
    payme: Payme, factory: Factory, service: PaymentService, account: tuple[int, str], clock: Clock
) -> None:
    """Creates that were refused and another provider's payments never appear."""
    account_id, code = account
    base = clock.ms()
    await payme.create("refused-amount", code, 1, base)
    await payme.create("refused-code", "000000000000", 500, base)
    await payme.create("kept", code, 500, base)
    other = await factory.provider("other", "payme", password="other-key", allow_ips=[])
    await service.reserve(other, PayCommand("foreign", code, 500, wire.from_ms(base), str(base)))
    body = await payme.call("GetStatement", {"from": base, "to": base})
    assert body == ok({"transactions": [await _entry(payme, "kept", code)]})
    assert await payme.money(account_id) == (0, 2, 0)


async def test_same_time_is_ordered_stably(payme: Payme, account: tuple[int, str], clock: Clock) -> None:
    """Transactions sharing one `time` come back in creation order, the same on every call."""
    account_id, code = account
    base = clock.ms()
    for txn in ("b", "a", "c"):
        await payme.create(txn, code, 500, base)
    first = await payme.call("GetStatement", {"from": base, "to": base})
    assert [t["id"] for t in first["result"]["transactions"]] == ["b", "a", "c"]
    assert await payme.call("GetStatement", {"from": base, "to": base}) == first
    clock.advance(timedelta(minutes=5))
    assert await payme.call("GetStatement", {"from": base, "to": base}) == first
    assert await payme.money(account_id) == (0, 3, 0)
