"""Complete: the prepared payment is found by our merchant_prepare_id, checked against the
request, then credited or voided once, whatever click_trans_id the Complete carries."""

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
    async def test_complete_with_its_own_click_trans_id_credits_the_prepared_payment(
        self, world: ClickWorld
    ) -> None:
        """A Complete carrying a click_trans_id other than its Prepare's credits the payment our
        id names, once; the payment keeps the Prepare's click_trans_id; the answer echoes the new one."""
        first = await prepared(world, "1001")
        second = await prepared(world, "1002")
        reply = await world.click.complete(first, "2001")
        assert reply.body == ok_complete(world.code, first, 2001)
        assert await world.state(first) == ("credited", None)
        assert await world.state(second) == ("reserved", None)
        async with world.factory.pool.acquire() as conn:
            assert await conn.fetchval("SELECT external_id FROM payments WHERE id = $1", first) == "1001"
        assert await world.money() == (1000_00, 2, 1)

    async def test_repeats_under_any_click_trans_id_answer_already_paid(self, world: ClickWorld) -> None:
        """After a credit, Completes of the same prepare id under a new, the first or the
        Prepare's click_trans_id all answer -4 with the same merchant_confirm_id; one credit."""
        prepare_id = await prepared(world, "1001")
        assert (await world.click.complete(prepare_id, "2001")).body["error"] == 0
        for click_trans_id in ("2002", "2001", "1001"):
            reply = await world.click.complete(prepare_id, click_trans_id)
            assert reply.body == complete_answer(
                world.code, -4, "Already paid", prepare_id, int(click_trans_id)
            )
        assert await world.money() == (1000_00, 1, 1)

    async def test_cancelling_complete_with_its_own_click_trans_id_voids(self, world: ClickWorld) -> None:
        """Complete with error<0 and a new click_trans_id voids the reservation our id names."""
        prepare_id = await prepared(world, "1001")
        reply = await world.click.complete(prepare_id, "2001", error="-5017")
        assert reply.body == complete_answer(world.code, -9, "Transaction cancelled", None, 2001)
        assert await world.state(prepare_id) == ("voided", -5017)
        assert await world.money() == (0, 1, 0)

    async def test_complete_without_prepare_is_minus_6(self, world: ClickWorld) -> None:
        """A Complete for a click_trans_id never prepared answers -6 and stores nothing."""
        reply = await world.click.complete(1, "4242")
        assert reply.body == complete_answer(world.code, -6, "Transaction does not exist", None, 4242)
        assert await world.money() == (0, 0, 0)

    async def test_another_providers_payment_is_invisible(
        self, world: ClickWorld, aiohttp_client: ClientMaker, settings: Settings, factory: Factory
    ) -> None:
        """A second Click provider cannot complete the first one's payment by our id, with the
        Prepare's click_trans_id or a new one: -6, the reservation stays."""
        prepare_id = await prepared(world)
        await factory.provider("click2", protocol="click", allow_ips=[], secret=SECRET, service_id=SERVICE_ID)
        other = ClickSide(await aiohttp_client(create_app(settings)), world.code)
        for click_trans_id in (1001, 3001):
            fields = other.complete_fields(prepare_id, str(click_trans_id))
            response = await other.client.post("/gw/click2", data=fields)
            assert await response.json() == complete_answer(
                world.code, -6, "Transaction does not exist", None, click_trans_id
            )
        assert await world.state(prepare_id) == ("reserved", None)
        assert await world.money() == (0, 1, 0)


class TestChecks:
    async def test_other_code_than_prepared_is_minus_5(self, world: ClickWorld) -> None:
        """Complete naming another payer's code than was prepared: -5 (Click's "check
        merchant_trans_id"), nobody is credited, the reservation stays."""
        prepare_id = await prepared(world)
        other_account, other_code = await world.factory.account("Beketov Bek")
        reply = await world.click.complete(prepare_id, "2001", merchant_trans_id=other_code)
        assert reply.body == complete_answer(other_code, -5, "User does not exist", None, 2001)
        assert await world.factory.balance(other_account) == 0
        assert await world.state(prepare_id) == ("reserved", None)
        assert await world.money() == (0, 1, 0)

    async def test_unknown_code_with_a_real_prepare_id_is_minus_5(self, world: ClickWorld) -> None:
        """Complete naming a code no payer has, for a prepare id we issued: -5, nothing moves."""
        prepare_id = await prepared(world)
        reply = await world.click.complete(prepare_id, "2001", merchant_trans_id="legacy-404")
        assert reply.body == complete_answer("legacy-404", -5, "User does not exist", None, 2001)
        assert await world.state(prepare_id) == ("reserved", None)
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
