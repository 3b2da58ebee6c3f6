"""Prepare: what gets reserved, what is refused, and how repeats are answered."""

from datetime import UTC, datetime

import pytest

from tests.http.click.conftest import ClickWorld, ok_prepare


def prepare_answer(code: str, error: int, note: str, prepare_id: int | None) -> dict[str, object]:
    """A Prepare answer for click_trans_id 1001."""
    return {
        "click_trans_id": 1001,
        "merchant_trans_id": code,
        "merchant_prepare_id": prepare_id,
        "error": error,
        "error_note": note,
    }


class TestReserve:
    async def test_times_and_ids_are_stored(self, world: ClickWorld) -> None:
        """The payment keeps Click's id, the raw sign_time and its UTC instant (Tashkent +5)."""
        reply = await world.click.prepare(sign_time="2024-05-01 12:00:00")
        prepare_id = reply.body["merchant_prepare_id"]
        async with world.factory.pool.acquire() as conn:
            row = await conn.fetchrow(
                "SELECT external_id, provider_time, provider_time_raw, amount_minor, state "
                "FROM payments WHERE id = $1",
                prepare_id,
            )
        assert dict(row) == {
            "external_id": "1001",
            "provider_time": datetime(2024, 5, 1, 7, 0, tzinfo=UTC),
            "provider_time_raw": "2024-05-01 12:00:00",
            "amount_minor": 1000_00,
            "state": "reserved",
        }

    async def test_code_typed_with_spaces_is_the_same_payer(self, world: ClickWorld) -> None:
        """merchant_trans_id with spaces reserves for the payer, and is echoed as sent."""
        spaced = f"{world.code[:4]} {world.code[4:]}"
        reply = await world.click.prepare(merchant_trans_id=spaced)
        assert reply.body == {
            **ok_prepare(world.code, reply.body["merchant_prepare_id"]),
            "merchant_trans_id": spaced,
        }
        assert await world.money() == (0, 1, 0)

    async def test_each_click_transaction_is_its_own_payment(self, world: ClickWorld) -> None:
        """Top-ups accumulate: two click_trans_ids for one code are two reservations."""
        first = (await world.click.prepare("1001")).body["merchant_prepare_id"]
        second = (await world.click.prepare("1002")).body["merchant_prepare_id"]
        assert first != second
        assert await world.money() == (0, 2, 0)


class TestRefusals:
    async def test_malformed_code_is_unknown_user(self, world: ClickWorld) -> None:
        """A code failing its check digit answers -5 without any lookup result stored."""
        bad = world.code[:-1] + str((int(world.code[-1]) + 1) % 10)
        reply = await world.click.prepare(merchant_trans_id=bad)
        assert reply.body == prepare_answer(bad, -5, "User does not exist", None)
        assert await world.money() == (0, 0, 0)

    async def test_blocked_account_is_minus_5_with_its_own_note(self, world: ClickWorld) -> None:
        """A blocked account answers -5 with a note support can tell apart; nothing is stored."""
        await world.factory.block(world.account_id)
        reply = await world.click.prepare()
        assert reply.body == prepare_answer(world.code, -5, "User is blocked", None)
        assert await world.money() == (0, 0, 0)

    @pytest.mark.parametrize("amount", ["99.99", "1000000.01"])
    async def test_outside_limits_is_minus_2(self, world: ClickWorld, amount: str) -> None:
        """Below the minimum or above the maximum: -2, nothing stored."""
        reply = await world.click.prepare(amount=amount)
        assert reply.body == prepare_answer(world.code, -2, "Incorrect parameter amount", None)
        assert await world.money() == (0, 0, 0)

    @pytest.mark.parametrize("amount", ["0", "0.00", "-1000", "1000.001", "1e3", "1,000", " 1000", "", "abc"])
    async def test_unacceptable_amount_text_is_minus_2(self, world: ClickWorld, amount: str) -> None:
        """Zero, negative, three decimals, exponent, comma, blanks: -2, nothing stored."""
        reply = await world.click.prepare(amount=amount)
        assert reply.body == prepare_answer(world.code, -2, "Incorrect parameter amount", None)
        assert await world.money() == (0, 0, 0)

    async def test_click_error_in_prepare_reserves_nothing(self, world: ClickWorld) -> None:
        """A Prepare in which Click already reports a failure (error<0) answers -9, stores nothing."""
        reply = await world.click.prepare(error="-5017", error_note="Insufficient funds")
        assert reply.body == prepare_answer(world.code, -9, "Transaction cancelled", None)
        assert await world.money() == (0, 0, 0)

    async def test_positive_click_error_is_minus_8(self, world: ClickWorld) -> None:
        """A status Click does not define (error>0) is a bad request, not a reservation."""
        reply = await world.click.prepare(error="1")
        assert reply.body == prepare_answer(world.code, -8, "Error in request from click", None)
        assert await world.money() == (0, 0, 0)

    async def test_disabled_provider_is_unknown(self, world: ClickWorld) -> None:
        """A disabled provider's URL answers 404 and records nothing."""
        async with world.factory.pool.acquire() as conn:
            await conn.execute("UPDATE providers SET enabled = false WHERE name = 'click'")
        response = await world.click.client.post("/gw/click", data=world.click.prepare_fields())
        assert response.status == 404
        assert await world.money() == (0, 0, 0)


class TestRepeats:
    async def test_repeat_of_reserved_answers_the_same(self, world: ClickWorld) -> None:
        """A repeated Prepare answers 0 with the same prepare id; still one payment."""
        first = await world.click.prepare()
        again = await world.click.prepare()
        assert again.body == first.body == ok_prepare(world.code, first.body["merchant_prepare_id"])
        assert await world.money() == (0, 1, 0)

    async def test_repeat_after_complete_is_already_paid(self, world: ClickWorld) -> None:
        """A Prepare repeated after its Complete answers -4 with the id, credits nothing more."""
        prepare_id = (await world.click.prepare()).body["merchant_prepare_id"]
        await world.click.complete(prepare_id)
        reply = await world.click.prepare()
        assert reply.body == prepare_answer(world.code, -4, "Already paid", prepare_id)
        assert await world.money() == (1000_00, 1, 1)

    async def test_repeat_after_cancel_is_cancelled(self, world: ClickWorld) -> None:
        """A Prepare repeated after a cancelling Complete answers -9 with the id."""
        prepare_id = (await world.click.prepare()).body["merchant_prepare_id"]
        await world.click.complete(prepare_id, error="-1")
        reply = await world.click.prepare()
        assert reply.body == prepare_answer(world.code, -9, "Transaction cancelled", prepare_id)
        assert await world.money() == (0, 1, 0)

    async def test_same_id_other_amount_is_minus_2(self, world: ClickWorld) -> None:
        """click_trans_id reused with another amount: -2, the first reservation untouched."""
        prepare_id = (await world.click.prepare()).body["merchant_prepare_id"]
        reply = await world.click.prepare(amount="2000")
        assert reply.body == prepare_answer(world.code, -2, "Incorrect parameter amount", None)
        assert await world.state(prepare_id) == ("reserved", None)
        assert await world.money() == (0, 1, 0)

    async def test_same_id_other_code_is_minus_8(self, world: ClickWorld) -> None:
        """click_trans_id reused for another payer's code: -8, nothing else stored or moved."""
        await world.click.prepare()
        other_account, other_code = await world.factory.account("Beketov Bek")
        reply = await world.click.prepare(merchant_trans_id=other_code)
        assert reply.body == prepare_answer(other_code, -8, "Error in request from click", None)
        assert await world.factory.balance(other_account) == 0
        assert await world.money() == (0, 1, 0)

    async def test_replay_survives_a_block(self, world: ClickWorld) -> None:
        """A repeat of an accepted Prepare replays it even after the account was blocked."""
        first = await world.click.prepare()
        await world.factory.block(world.account_id)
        again = await world.click.prepare()
        assert again.body == first.body
