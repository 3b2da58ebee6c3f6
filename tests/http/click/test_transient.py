"""When the database cannot tell us the outcome, Click gets no answer it could take as final."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg

from tests.http.click.conftest import ClickWorld, Reply, ok_complete, ok_prepare


@asynccontextmanager
async def held(world: ClickWorld, statement: str, *args: object) -> AsyncIterator[None]:
    """Holds the locks `statement` takes, in an open transaction, until the block ends."""
    conn: asyncpg.Connection = await world.factory.pool.acquire()
    try:
        async with conn.transaction():
            await conn.execute(statement, *args)
            yield
    finally:
        await world.factory.pool.release(conn)


def is_retry(reply: Reply) -> bool:
    """HTTP 503 with a body that is not JSON: neither success nor any Click code."""
    return reply.status == 503 and reply.body is None and reply.content_type.startswith("text/plain")


async def test_prepare_while_database_is_stuck_asks_for_retry(world: ClickWorld) -> None:
    """A Prepare that cannot reach the payments table in time gets the retry answer; the
    repeat, once the lock is gone, reserves normally."""
    async with held(world, "LOCK TABLE payments IN ACCESS EXCLUSIVE MODE"):
        reply = await world.click.prepare()
    assert is_retry(reply)
    assert await world.money() == (0, 0, 0)
    again = await world.click.prepare()
    assert again.body == ok_prepare(world.code, again.body["merchant_prepare_id"])


async def test_complete_while_payment_is_locked_asks_for_retry(world: ClickWorld) -> None:
    """A Complete whose credit cannot take the payment's row lock gets the retry answer and
    credits nothing; the repeat credits exactly once and answers 0."""
    prepare_id = (await world.click.prepare()).body["merchant_prepare_id"]
    async with held(world, "SELECT 1 FROM payments WHERE id = $1 FOR UPDATE", prepare_id):
        reply = await world.click.complete(prepare_id)
        assert is_retry(reply)
    assert await world.money() == (0, 1, 0)
    again = await world.click.complete(prepare_id)
    assert again.body == ok_complete(world.code, prepare_id)
    assert await world.money() == (1000_00, 1, 1)


async def test_retry_answer_carries_retry_after(world: ClickWorld) -> None:
    """The retry answer tells Click how soon to come back."""
    async with held(world, "LOCK TABLE payments IN ACCESS EXCLUSIVE MODE"):
        response = await world.click.client.post("/gw/click", data=world.click.prepare_fields())
        assert (response.status, response.headers["Retry-After"]) == (503, "1")
        assert await response.text() == "temporarily unavailable, retry later\n"
