"""Twin requests in flight at once, over HTTP with real commits: money moves at most once."""

import asyncio
from collections import Counter

from tests.http.click.conftest import ClickWorld

TWINS = 20


async def test_concurrent_completes_credit_once(world: ClickWorld) -> None:
    """20 identical Completes at once: exactly one answers 0, the other 19 answer -4, one credit."""
    prepare_id = (await world.click.prepare()).body["merchant_prepare_id"]
    replies = await asyncio.gather(*(world.click.complete(prepare_id) for _ in range(TWINS)))
    assert {reply.status for reply in replies} == {200}
    assert Counter(reply.body["error"] for reply in replies) == {0: 1, -4: TWINS - 1}
    assert {reply.body["merchant_confirm_id"] for reply in replies} == {prepare_id}
    assert await world.state(prepare_id) == ("credited", None)
    assert await world.money() == (1000_00, 1, 1)


async def test_concurrent_prepares_reserve_once(world: ClickWorld) -> None:
    """20 identical Prepares at once all answer 0 with one and the same prepare id."""
    replies = await asyncio.gather(*(world.click.prepare() for _ in range(TWINS)))
    assert Counter(reply.body["error"] for reply in replies) == {0: TWINS}
    assert len({reply.body["merchant_prepare_id"] for reply in replies}) == 1
    assert await world.money() == (0, 1, 0)


async def test_racing_complete_and_cancel_never_credit_and_reverse(world: ClickWorld) -> None:
    """Completes and cancelling Completes racing: either one credit (0 once, -4 for all the rest,
    cancels included) or a void (-9 for all); never a credit taken back by a cancel."""
    prepare_id = (await world.click.prepare()).body["merchant_prepare_id"]
    requests = []
    for i in range(TWINS):
        requests.append(world.click.complete(prepare_id, error="-5017" if i % 2 else "0"))
    replies = await asyncio.gather(*requests)
    errors = Counter(reply.body["error"] for reply in replies)
    state, _ = await world.state(prepare_id)
    if state == "credited":
        assert errors == {0: 1, -4: TWINS - 1}
        assert await world.money() == (1000_00, 1, 1)
    else:
        assert (state, errors) == ("voided", {-9: TWINS})
        assert await world.money() == (0, 1, 0)
