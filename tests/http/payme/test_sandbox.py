"""Payme's two sandbox scenarios (test.paycom.uz), end to end, in the order the sandbox runs them."""

from typing import Any

from tests.http.payme.conftest import Clock, Payme, err, ok
from tolem.core.errors import AmountTooSmall, UnknownCode
from tolem.protocols.payme import codes

UNKNOWN_CODE = "000000000000"
AMOUNT = 15000


async def _common_steps(payme: Payme, code: str, account_id: int, clock: Clock, txn: str) -> int:
    """Steps 1 to 5 of both scenarios; returns the next request id."""
    time_ms = clock.ms()
    create: dict[str, Any] = {"id": txn, "time": time_ms, "amount": AMOUNT, "account": {"code": code}}
    check: dict[str, Any] = {"amount": AMOUNT, "account": {"code": code}}
    every_method = [
        ("CheckPerformTransaction", check),
        ("CreateTransaction", create),
        ("PerformTransaction", {"id": txn}),
        ("CancelTransaction", {"id": txn, "reason": 1}),
        ("CheckTransaction", {"id": txn}),
        ("GetStatement", {"from": time_ms - 1000, "to": time_ms + 1000}),
    ]
    # 1. Invalid authorization: every method refused.
    for n, (method, params) in enumerate(every_method, start=1):
        body = await payme.call(method, params, request_id=n, auth=None)
        assert body == err(codes.insufficient_privilege(), n)

    # 2. Invalid amount: below the provider's minimum of 1.00.
    small = {**check, "amount": 99}
    expected = err(codes.from_domain(AmountTooSmall("")), 11)
    assert await payme.call("CheckPerformTransaction", small, request_id=11) == expected
    expected = err(codes.from_domain(AmountTooSmall("")), 12)
    assert await payme.call("CreateTransaction", {**create, "amount": 99}, request_id=12) == expected

    # 3. Nonexistent account.
    unknown = {**check, "account": {"code": UNKNOWN_CODE}}
    expected = err(codes.from_domain(UnknownCode("")), 13)
    assert await payme.call("CheckPerformTransaction", unknown, request_id=13) == expected
    expected = err(codes.from_domain(UnknownCode("")), 14)
    assert await payme.call("CreateTransaction", {**create, **unknown}, request_id=14) == expected
    assert await payme.money(account_id) == (0, 0, 0)

    # 4. A payable account.
    assert await payme.call("CheckPerformTransaction", check, request_id=15) == ok(
        {"allow": True, "additional": {"name": "Asanov A."}}, 15
    )

    # 5. Create, its repeat answered identically, and CheckTransaction.
    first = await payme.call("CreateTransaction", create, request_id=16)
    stored = await payme.stored(txn)
    created = {"create_time": stored["create_time"], "transaction": stored["transaction"], "state": 1}
    assert first == ok(created, 16)
    assert await payme.call("CreateTransaction", create, request_id=17) == ok(created, 17)
    assert await payme.check(txn, 18) == ok(
        {**created, "perform_time": 0, "cancel_time": 0, "reason": None}, 18
    )
    assert await payme.money(account_id) == (0, 1, 0)
    return 19


async def test_scenario_one_create_and_cancel_unperformed(
    payme: Payme, account: tuple[int, str], clock: Clock
) -> None:
    """Sandbox scenario 1: refusals, create, repeat, cancel in state 1 (-> -1); nothing credited."""
    account_id, code = account
    txn = "5e730e8e0b852a417aa49ceb"
    n = await _common_steps(payme, code, account_id, clock, txn)

    cancelled = await payme.cancel(txn, 3, n)
    stored = await payme.stored(txn)
    answer = {"transaction": stored["transaction"], "cancel_time": stored["cancel_time"], "state": -1}
    assert stored["cancel_time"] > 0
    assert cancelled == ok(answer, n)
    assert await payme.cancel(txn, 3, n + 1) == ok(answer, n + 1)
    assert await payme.check(txn, n + 2) == ok(
        {
            "create_time": stored["create_time"],
            "perform_time": 0,
            "cancel_time": stored["cancel_time"],
            "transaction": stored["transaction"],
            "state": -1,
            "reason": 3,
        },
        n + 2,
    )
    assert await payme.money(account_id) == (0, 1, 0)


async def test_scenario_two_create_perform_cancel_performed(
    payme: Payme, account: tuple[int, str], clock: Clock
) -> None:
    """Sandbox scenario 2: create, perform (+repeat), cancel in state 2 (-> -2, money back)."""
    account_id, code = account
    txn = "5e730e8e0b852a417aa49cec"
    n = await _common_steps(payme, code, account_id, clock, txn)

    performed = await payme.perform(txn, n)
    stored = await payme.stored(txn)
    answer = {"transaction": stored["transaction"], "perform_time": stored["perform_time"], "state": 2}
    assert stored["perform_time"] > 0
    assert performed == ok(answer, n)
    assert await payme.money(account_id) == (AMOUNT, 1, 1)
    assert await payme.perform(txn, n + 1) == ok(answer, n + 1)
    assert await payme.money(account_id) == (AMOUNT, 1, 1)
    check_view = {
        "create_time": stored["create_time"],
        "perform_time": stored["perform_time"],
        "cancel_time": 0,
        "transaction": stored["transaction"],
        "state": 2,
        "reason": None,
    }
    assert await payme.check(txn, n + 2) == ok(check_view, n + 2)

    cancelled = await payme.cancel(txn, 5, n + 3)
    stored = await payme.stored(txn)
    answer = {"transaction": stored["transaction"], "cancel_time": stored["cancel_time"], "state": -2}
    assert cancelled == ok(answer, n + 3)
    assert await payme.cancel(txn, 5, n + 4) == ok(answer, n + 4)
    assert await payme.check(txn, n + 5) == ok(
        {**check_view, "cancel_time": stored["cancel_time"], "state": -2, "reason": 5}, n + 5
    )
    assert await payme.money(account_id) == (0, 1, 2)
