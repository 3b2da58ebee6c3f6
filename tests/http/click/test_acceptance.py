"""Click's acceptance checklist (protocols.md §4.5 / §8), one test per script of its test tool.

docs/click.md maps each script to the test here. Every test asserts the whole answer and
whether money moved.
"""

from tests.http.click.conftest import (
    ClickWorld,
    bad_request,
    echoing,
    ok_complete,
    ok_prepare,
    sign_failed,
)


def answer(
    code: str, error: int, note: str, payment_id: int | None, *, complete: bool, click_trans_id: int = 1001
) -> dict[str, object]:
    """An answer echoing click_trans_id (1001 unless given) and the code."""
    id_field = "merchant_confirm_id" if complete else "merchant_prepare_id"
    return {
        "click_trans_id": click_trans_id,
        "merchant_trans_id": code,
        id_field: payment_id,
        "error": error,
        "error_note": note,
    }


async def prepared(world: ClickWorld) -> int:
    """Runs a successful Prepare and returns our prepare id."""
    reply = await world.click.prepare()
    assert reply.body["error"] == 0
    return int(reply.body["merchant_prepare_id"])


class TestPrepareScripts:
    async def test_wrong_signature_is_refused(self, world: ClickWorld) -> None:
        """Prepare with a forged sign_string answers -1 and stores nothing."""
        fields = world.click.prepare_fields(sign_string="0" * 32)
        reply = await world.click.post(fields)
        assert (reply.status, reply.body) == (200, sign_failed(fields))
        assert await world.money() == (0, 0, 0)

    async def test_unknown_user_is_minus_5(self, world: ClickWorld) -> None:
        """Prepare for a merchant_trans_id no payer has answers -5 and stores nothing."""
        reply = await world.click.prepare(merchant_trans_id="legacy-404")
        assert reply.body == {
            "click_trans_id": 1001,
            "merchant_trans_id": "legacy-404",
            "merchant_prepare_id": None,
            "error": -5,
            "error_note": "User does not exist",
        }
        assert await world.money() == (0, 0, 0)

    async def test_incorrect_amount_is_minus_2(self, world: ClickWorld) -> None:
        """Prepare above the provider's maximum answers -2 and stores nothing."""
        reply = await world.click.prepare(amount="1000000.01")
        assert reply.body == answer(world.code, -2, "Incorrect parameter amount", None, complete=False)
        assert await world.money() == (0, 0, 0)

    async def test_unknown_action_is_minus_3(self, world: ClickWorld) -> None:
        """A correctly signed request with action=5 answers -3 and stores nothing."""
        fields = world.click.prepare_fields(action="5")
        reply = await world.click.post(fields)
        assert reply.body == echoing(fields, -3, "Action not found")
        assert await world.money() == (0, 0, 0)

    async def test_prepare_reserves_without_crediting(self, world: ClickWorld) -> None:
        """A good Prepare answers 0 with our prepare id; the payment is reserved, no money moves."""
        reply = await world.click.prepare()
        prepare_id = reply.body["merchant_prepare_id"]
        assert (reply.status, reply.content_type) == (200, "application/json; charset=utf-8")
        assert reply.body == ok_prepare(world.code, prepare_id)
        assert await world.state(prepare_id) == ("reserved", None)
        assert await world.money() == (0, 1, 0)

    async def test_missing_parameter_is_minus_8(self, world: ClickWorld) -> None:
        """A Prepare without its amount answers -8 and stores nothing."""
        fields = world.click.prepare_fields()
        del fields["amount"]
        reply = await world.click.post(fields)
        assert reply.body == bad_request(fields)
        assert await world.money() == (0, 0, 0)


class TestCompleteScripts:
    """Each Complete carries a click_trans_id of its own, as the test tool sends them."""

    async def test_wrong_signature_is_refused(self, world: ClickWorld) -> None:
        """Complete with a forged sign_string answers -1 and credits nothing."""
        prepare_id = await prepared(world)
        fields = world.click.complete_fields(prepare_id, "2001", sign_string="f" * 32)
        reply = await world.click.post(fields)
        assert reply.body == sign_failed(fields)
        assert await world.state(prepare_id) == ("reserved", None)
        assert await world.money() == (0, 1, 0)

    async def test_unknown_prepare_id_is_minus_6(self, world: ClickWorld) -> None:
        """Complete naming a merchant_prepare_id we never issued answers -6, credits nothing."""
        prepare_id = await prepared(world)
        reply = await world.click.complete(prepare_id + 1000, "2001")
        assert reply.body == step(world.code, 2001, -6, "Transaction does not exist", None, complete=True)
        assert await world.money() == (0, 1, 0)

    async def test_incorrect_amount_is_minus_2(self, world: ClickWorld) -> None:
        """Complete with an amount other than the prepared one answers -2, credits nothing."""
        prepare_id = await prepared(world)
        reply = await world.click.complete(prepare_id, "2001", amount="999")
        assert reply.body == step(world.code, 2001, -2, "Incorrect parameter amount", None, complete=True)
        assert await world.state(prepare_id) == ("reserved", None)
        assert await world.money() == (0, 1, 0)

    async def test_complete_credits(self, world: ClickWorld) -> None:
        """A good Complete answers 0 with merchant_confirm_id and credits the amount once."""
        prepare_id = await prepared(world)
        reply = await world.click.complete(prepare_id, "2001")
        assert reply.body == ok_complete(world.code, prepare_id, 2001)
        assert await world.state(prepare_id) == ("credited", None)
        assert await world.money() == (1000_00, 1, 1)

    async def test_repeated_complete_is_already_paid(self, world: ClickWorld) -> None:
        """The same Complete again answers -4 "Already paid" and credits nothing more."""
        prepare_id = await prepared(world)
        await world.click.complete(prepare_id, "2001")
        reply = await world.click.complete(prepare_id, "2002")
        assert reply.body == step(world.code, 2002, -4, "Already paid", prepare_id, complete=True)
        assert await world.money() == (1000_00, 1, 1)

    async def test_click_error_cancels(self, world: ClickWorld) -> None:
        """Complete carrying error<0 voids the reservation and answers -9; no money moves."""
        prepare_id = await prepared(world)
        reply = await world.click.complete(prepare_id, "2001", error="-5017", error_note="Insufficient funds")
        assert reply.body == step(world.code, 2001, -9, "Transaction cancelled", None, complete=True)
        assert await world.state(prepare_id) == ("voided", -5017)
        assert await world.money() == (0, 1, 0)

    async def test_complete_after_cancel_is_minus_9(self, world: ClickWorld) -> None:
        """After a cancelling Complete, a successful Complete answers -9 and credits nothing."""
        prepare_id = await prepared(world)
        await world.click.complete(prepare_id, "2001", error="-5017")
        reply = await world.click.complete(prepare_id, "2002")
        assert reply.body == step(world.code, 2002, -9, "Transaction cancelled", None, complete=True)
        assert await world.state(prepare_id) == ("voided", -5017)
        assert await world.money() == (0, 1, 0)


def step(
    code: str, click_trans_id: int, error: int, note: str, payment_id: int | None, *, complete: bool
) -> dict[str, object]:
    """An answer echoing the step's own click_trans_id and the code."""
    return answer(code, error, note, payment_id, complete=complete, click_trans_id=click_trans_id)


async def test_whole_tool_run_in_order(world: ClickWorld) -> None:
    """The test tool's scripts run one after another against one service, each step with a
    click_trans_id of its own and Complete tied to Prepare only by merchant_prepare_id: every
    answer is the script's, and exactly the two successful payments are credited."""
    click, code = world.click, world.code
    forged = click.prepare_fields("1", sign_string="0" * 32)
    assert (await click.post(forged)).body == sign_failed(forged)
    unknown = await click.prepare("2", merchant_trans_id="legacy-404")
    assert unknown.body == step("legacy-404", 2, -5, "User does not exist", None, complete=False)
    too_small = await click.prepare("3", amount="0.50")
    assert too_small.body == step(code, 3, -2, "Incorrect parameter amount", None, complete=False)
    paid = (await click.prepare("4")).body["merchant_prepare_id"]
    wrong_amount = await click.complete(paid, "5", amount="1000.01")
    assert wrong_amount.body == step(code, 5, -2, "Incorrect parameter amount", None, complete=True)
    missing = await click.complete(paid + 1000, "6")
    assert missing.body == step(code, 6, -6, "Transaction does not exist", None, complete=True)
    forged = click.complete_fields(paid, "7", sign_string="0" * 32)
    assert (await click.post(forged)).body == sign_failed(forged)
    assert (await click.complete(paid, "8")).body == ok_complete(code, paid, 8)
    repeated = await click.complete(paid, "9")
    assert repeated.body == step(code, 9, -4, "Already paid", paid, complete=True)
    unknown_action = click.prepare_fields("10", action="5")
    assert (await click.post(unknown_action)).body == echoing(unknown_action, -3, "Action not found")
    cancelled = (await click.prepare("11")).body["merchant_prepare_id"]
    failed = await click.complete(cancelled, "12", error="-1")
    assert failed.body == step(code, 12, -9, "Transaction cancelled", None, complete=True)
    after_cancel = await click.complete(cancelled, "13")
    assert after_cancel.body == step(code, 13, -9, "Transaction cancelled", None, complete=True)
    again = (await click.prepare("14", amount="2500.50")).body["merchant_prepare_id"]
    assert (await click.complete(again, "15", amount="2500.50")).body == ok_complete(code, again, 15)
    assert await world.state(paid) == ("credited", None)
    assert await world.state(cancelled) == ("voided", -1)
    assert await world.money() == (1000_00 + 2500_50, 3, 2)
