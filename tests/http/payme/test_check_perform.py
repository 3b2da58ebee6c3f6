"""CheckPerformTransaction: may this code receive this amount? It never stores or moves anything."""

from typing import Any

from tests.conftest import Factory
from tests.http.payme.conftest import Payme, err, ok
from tolem.core import errors
from tolem.protocols.payme import codes

# Every way an amount can be unacceptable before the limits are even looked at.
BAD_AMOUNTS: list[Any] = [0, -1, -15000, 1.5, 100.0, "500", "5.00", True, False, None, [500], {"v": 500}]
BAD_ACCOUNTS: list[Any] = [
    None,
    "0012345678905",
    [],
    {},
    {"login": "0012345678905"},
    {"code": None},
    {"code": 12345678905},
    {"code": ""},
    {"code": "   "},
    {"code": ["00"]},
    {"code": True},
    {"code": "0" * 65},
]


def _check(code: Any, amount: Any = 500) -> dict[str, Any]:
    return {"amount": amount, "account": {"code": code}}


async def test_payable_code_is_allowed_with_masked_name(payme: Payme, account: tuple[int, str]) -> None:
    """A payable code gets allow: true and the masked holder name, never the balance."""
    account_id, code = account
    body = await payme.call("CheckPerformTransaction", _check(code), request_id=21)
    assert body == ok({"allow": True, "additional": {"name": "Asanov A."}}, 21)
    spaced = f"{code[:4]} {code[4:8]} {code[8:]}"
    body = await payme.call("CheckPerformTransaction", _check(spaced))
    assert body == ok({"allow": True, "additional": {"name": "Asanov A."}})
    assert await payme.money(account_id) == (0, 0, 0)


async def test_unacceptable_amounts_are_wrong_amount(payme: Payme, account: tuple[int, str]) -> None:
    """Zero, negative, fractional, float, string, boolean and null amounts are -31001."""
    account_id, code = account
    for amount in BAD_AMOUNTS:
        body = await payme.call("CheckPerformTransaction", _check(code, amount))
        assert body == err(codes.wrong_amount()), amount
    assert await payme.money(account_id) == (0, 0, 0)


async def test_huge_integer_is_wrong_amount(payme: Payme, account: tuple[int, str]) -> None:
    """An integer too large for any balance (even beyond 64 bits) is -31001, not a system error."""
    account_id, code = account
    for literal in [b"1000000000000001", b"9223372036854775808", b"100000000000000000000", b"1e3"]:
        body = b'{"method":"CheckPerformTransaction","id":1,"params":{"account":{"code":"%s"},"amount":%s}}'
        answer = await payme.raw(body % (code.encode(), literal))
        assert answer == err(codes.wrong_amount()), literal
    assert await payme.money(account_id) == (0, 0, 0)


async def test_limits_are_wrong_amount_with_their_own_message(payme: Payme, account: tuple[int, str]) -> None:
    """Below the minimum (1.00) and above the maximum (500.00) are -31001 saying which."""
    account_id, code = account
    below = await payme.call("CheckPerformTransaction", _check(code, 99))
    assert below == err(codes.from_domain(errors.AmountTooSmall("")))
    assert below["error"]["message"]["en"] == "Amount is below the minimum"
    above = await payme.call("CheckPerformTransaction", _check(code, 50001))
    assert above == err(codes.from_domain(errors.AmountTooLarge("")))
    for edge in (100, 50000):
        body = await payme.call("CheckPerformTransaction", _check(code, edge))
        assert body == ok({"allow": True, "additional": {"name": "Asanov A."}}), edge
    assert await payme.money(account_id) == (0, 0, 0)


async def test_bad_account_objects_are_account_errors(payme: Payme, account: tuple[int, str]) -> None:
    """An account that is not an object with a non-empty string `code` is -31050 naming `code`."""
    account_id, _ = account
    for value in BAD_ACCOUNTS:
        body = await payme.call("CheckPerformTransaction", {"amount": 500, "account": value})
        assert body == err(codes.bad_account()), value
        assert body["error"]["data"] == "code"
    assert await payme.money(account_id) == (0, 0, 0)


async def test_malformed_and_unknown_codes(payme: Payme, account: tuple[int, str]) -> None:
    """A wrong check digit or bad characters, and a well-formed code nobody has, are -31050."""
    account_id, code = account
    wrong_digit = code[:-1] + str((int(code[-1]) + 1) % 10)
    for malformed in [wrong_digit, "00;123", "x" * 33]:
        body = await payme.call("CheckPerformTransaction", _check(malformed))
        assert body == err(codes.from_domain(errors.MalformedCode(""))), malformed
    unknown = await payme.call("CheckPerformTransaction", _check("000000000000"))
    assert unknown == {
        "jsonrpc": "2.0",
        "id": 1,
        "error": {
            "code": -31050,
            "message": {
                "ru": "Лицевой счёт не найден",
                "uz": "Hisob topilmadi",
                "en": "Account not found",
                "ky": "Эсеп табылган жок",
            },
            "data": "code",
        },
    }
    assert await payme.money(account_id) == (0, 0, 0)


async def test_blocked_account(payme: Payme, factory: Factory, account: tuple[int, str]) -> None:
    """A blocked account's code is -31051 naming `code`."""
    account_id, code = account
    await factory.block(account_id)
    body = await payme.call("CheckPerformTransaction", _check(code))
    assert body == err(codes.from_domain(errors.AccountBlocked("")))
    assert body["error"]["code"] == -31051
    assert body["error"]["data"] == "code"
    assert await payme.money(account_id) == (0, 0, 0)


async def test_amount_is_judged_before_account(payme: Payme, account: tuple[int, str]) -> None:
    """With both a bad amount and an unknown code the answer is -31001: one answer per input."""
    account_id, _ = account
    body = await payme.call("CheckPerformTransaction", _check("000000000000", 0))
    assert body == err(codes.wrong_amount())
    assert await payme.money(account_id) == (0, 0, 0)
