"""Currency: Click's Prepare for an account of another currency is cancelled, not reserved."""

from tests.http.click.conftest import ClickWorld


async def test_prepare_for_an_account_in_another_currency_is_cancelled(world: ClickWorld) -> None:
    """A KGS Click provider preparing for a UZS account gets -9 "currency refused"; nothing is stored."""
    uzs_account, code = await world.factory.foreign_account("UZS")
    for _ in range(2):
        reply = await world.click.prepare(merchant_trans_id=code)
        assert reply.status == 200
        assert reply.body == {
            "click_trans_id": 1001,
            "merchant_trans_id": code,
            "merchant_prepare_id": None,
            "error": -9,
            "error_note": "Currency refused",
        }
    assert await world.factory.balance(uzs_account) == 0
    assert await world.money() == (0, 0, 0)
