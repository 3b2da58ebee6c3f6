"""Complete: the prepared payment is found by both ids, checked, then credited or voided once."""

from tests.conftest import Factory
from tests.http.click.conftest import SECRET, SERVICE_ID, ClickSide, ClickWorld, ClientMaker, ok_complete
from tolem.app import create_app
from tolem.settings import Settings


def complete_answer(
    code: str, error: int, note: str, confirm_id: int | None, click_trans_id: int = 1001
) -> dict[str, object]:
    """A Complete answer."""
    return {
        "click_trans_id": click_trans_id,
        "merchant_trans_id": code,
        "merchant_confirm_id": confirm_id,
        "error": error,
        "error_note": note,
    }


async def prepared(world: ClickWorld, click_trans_id: str = "1001", **kw: str) -> int:
    """Our prepare id of a fresh successful Prepare."""
    reply = await world.click.prepare(click_trans_id, **kw)
    assert reply.body["error"] == 0
    return int(reply.body["merchant_prepare_id"])


class TestLookup:
    async def test_prepare_id_of_another_click_transaction_is_minus_6(self, world: ClickWorld) -> None:
        """Our id paired with a click_trans_id that is not its own names no payment: -6."""
        first = await prepared(world, "1001")
        await prepared(world, "1002")
        reply = await world.click.complete(first, "1002")
        assert reply.body == complete_answer(world.code, -6, "Transaction does not exist", None, 1002)
        assert await world.money() == (0, 2, 0)

    async def test_complete_without_prepare_is_minus_6(self, world: ClickWorld) -> None:
        """A Complete for a click_trans_id never prepared answers -6 and stores nothing."""
        reply = await world.click.complete(1, "4242")
        assert reply.body == complete_answer(world.code, -6, "Transaction does not exist", None, 4242)
        assert await world.money() == (0, 0, 0)

    async def test_another_providers_payment_is_invisible(
        self, world: ClickWorld, aiohttp_client: ClientMaker, settings: Settings, factory: Factory
    ) -> None:
        """A second Click provider cannot complete the first one's payment by its ids: -6."""
        prepare_id = await prepared(world)
        await factory.provider("click2", protocol="click", allow_ips=[], secret=SECRET, service_id=SERVICE_ID)
        other = ClickSide(await aiohttp_client(create_app(settings)), world.code)
        response = await other.client.post("/gw/click2", data=other.complete_fields(prepare_id))
        assert await response.json() == complete_answer(world.code, -6, "Transaction does not exist", None)
        assert await world.state(prepare_id) == ("reserved", None)
        assert await world.money() == (0, 1, 0)


class TestChecks:
    async def test_other_code_than_prepared_is_minus_8(self, world: ClickWorld) -> None:
        """Complete naming another payer's code than was prepared: -8, nobody is credited."""
        prepare_id = await prepared(world)
        other_account, other_code = await world.factory.account("Beketov Bek")
        reply = await world.click.complete(prepare_id, merchant_trans_id=other_code)
        assert reply.body == complete_answer(other_code, -8, "Error in request from click", None)
        assert await world.factory.balance(other_account) == 0
        assert await world.money() == (0, 1, 0)

    async def test_same_money_written_differently_completes(self, world: ClickWorld) -> None:
        """Prepared as `1000`, completed as `1000.00`: the same amount, credited once."""
        prepare_id = await prepared(world)
        reply = await world.click.complete(prepare_id, amount="1000.00")
        assert reply.body == ok_complete(world.code, prepare_id)
        assert await world.money() == (1000_00, 1, 1)

    async def test_unreadable_amount_is_minus_2(self, world: ClickWorld) -> None:
        """A Complete whose amount is not an amount answers -2 and credits nothing."""
        prepare_id = await prepared(world)
        reply = await world.click.complete(prepare_id, amount="1000.000")
        assert reply.body == complete_answer(world.code, -2, "Incorrect parameter amount", None)
        assert await world.money() == (0, 1, 0)

    async def test_positive_click_error_is_minus_8(self, world: ClickWorld) -> None:
        """A Complete with a status Click does not define (error>0) neither credits nor voids."""
        prepare_id = await prepared(world)
        reply = await world.click.complete(prepare_id, error="2")
        assert reply.body == complete_answer(world.code, -8, "Error in request from click", None)
        assert await world.state(prepare_id) == ("reserved", None)
        assert await world.money() == (0, 1, 0)

    async def test_blocked_after_prepare_still_completes(self, world: ClickWorld) -> None:
        """A reservation made before the block is honoured: Click already took the payer's money."""
        prepare_id = await prepared(world)
        await world.factory.block(world.account_id)
        reply = await world.click.complete(prepare_id)
        assert reply.body == ok_complete(world.code, prepare_id)
        assert await world.money() == (1000_00, 1, 1)


class TestCancel:
    async def test_cancelling_a_credited_payment_is_already_paid(self, world: ClickWorld) -> None:
        """error<0 after a successful Complete answers -4 and does not take the money back."""
        prepare_id = await prepared(world)
        await world.click.complete(prepare_id)
        reply = await world.click.complete(prepare_id, error="-5017")
        assert reply.body == complete_answer(world.code, -4, "Already paid", prepare_id)
        assert await world.state(prepare_id) == ("credited", None)
        assert await world.money() == (1000_00, 1, 1)

    async def test_repeated_cancel_is_minus_9(self, world: ClickWorld) -> None:
        """A cancelling Complete repeated answers -9 again and keeps the first reason."""
        prepare_id = await prepared(world)
        await world.click.complete(prepare_id, error="-5017")
        reply = await world.click.complete(prepare_id, error="-1")
        assert reply.body == complete_answer(world.code, -9, "Transaction cancelled", None)
        assert await world.state(prepare_id) == ("voided", -5017)
        assert await world.money() == (0, 1, 0)
