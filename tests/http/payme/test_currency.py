"""Currency: an account of another currency is a final account error for Payme, never "retry"."""

from tests.conftest import Factory
from tests.http.payme.conftest import Clock, Payme, err
from tolem.protocols.payme import codes


async def test_account_in_another_currency_is_a_final_refusal(
    payme: Payme, factory: Factory, clock: Clock
) -> None:
    """Check and Create for a UZS account of a KGS provider get -31052; nothing is stored."""
    uzs_account, code = await factory.foreign_account("UZS")
    expected = err(codes.currency_refused())
    assert expected["error"]["code"] == -31052
    check = await payme.call("CheckPerformTransaction", {"amount": 500, "account": {"code": code}})
    assert check == expected
    assert await payme.create("c-1", code, 500, clock.ms()) == expected
    assert await payme.create("c-1", code, 500, clock.ms()) == expected
    assert await payme.money(uzs_account) == (0, 0, 0)
