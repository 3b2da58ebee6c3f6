"""Currency: a payment is never credited across currencies; the kiosk reads 7 "currency refused"."""

from pydantic import SecretStr

from tests.http.osmp.conftest import ClientMaker, Kiosk, OsmpWorld, paid, refused
from tolem.app import create_app
from tolem.settings import Settings

REFUSED = "currency refused"


async def test_code_of_an_account_in_another_currency_is_refused(world: OsmpWorld) -> None:
    """A KGS kiosk paying a UZS account gets 7 on check and pay, repeated alike; nothing is stored."""
    uzs_account, uzs_code = await world.factory.foreign_account("UZS")
    assert (await world.kiosk.check("3001", account=uzs_code)).text == refused("3001", 7, REFUSED)
    for _ in range(2):
        assert (await world.kiosk.pay("3001", account=uzs_code)).text == refused("3001", 7, REFUSED)
    assert await world.factory.balance(uzs_account) == 0
    assert await world.money() == (0, 0, 0)


async def test_deployment_currency_other_than_the_database_credits_nothing(
    world: OsmpWorld, aiohttp_client: ClientMaker, database_url: str
) -> None:
    """Started with TOLEM_CURRENCY=UZS on a KGS database, the gateway refuses new pays with 7 and
    answers an earlier pay's repeat as the first time."""
    first = await world.kiosk.pay("3010", "150.00")
    uzs_settings = Settings(
        database_url=SecretStr(database_url), currency="UZS", provider_cache_seconds=0, request_deadline=2.0
    )
    uzs = Kiosk(await aiohttp_client(create_app(uzs_settings)), world.code)
    assert (
        (await uzs.pay("3010", "150.00")).text
        == first.text
        == paid("3010", await world.payment_id("3010"), "150.00")
    )
    assert (await uzs.check("3011")).text == refused("3011", 7, REFUSED)
    assert (await uzs.pay("3011")).text == refused("3011", 7, REFUSED)
    assert await world.money() == (150_00, 1, 1)
