"""The serving pool: no reset query on release, yet no transaction outlives its request; and
connections are handed out in the order requests asked for them."""

import asyncio

import asyncpg
import pytest

from tolem.db.pool import create_pool
from tolem.db.store import PgStore


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
async def test_transaction_left_open_is_rolled_back_on_release(database_url: str) -> None:
    """A connection released mid-transaction comes back with nothing of that transaction kept."""
    pool = await create_pool(database_url, size=1, deadline=2.0)
    loop = asyncio.get_running_loop()
    previous = loop.get_exception_handler()
    # asyncpg reports the open transaction through the loop's exception handler, then rolls back.
    loop.set_exception_handler(lambda _loop, _context: None)
    try:
        async with pool.acquire() as conn:
            await conn.execute("BEGIN")
            await conn.execute("CREATE TABLE left_open (id int)")
        async with pool.acquire() as conn:
            assert not conn.is_in_transaction()
            exists = await conn.fetchval("SELECT to_regclass('left_open') IS NOT NULL")
        assert exists is False
    finally:
        loop.set_exception_handler(previous)
        await pool.close()


async def test_store_hands_out_connections_in_arrival_order(database_url: str) -> None:
    """With every connection busy, waiting calls get one first come, first served, even while
    another caller keeps asking again the moment it gives its connection back."""
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=1)
    store = PgStore(pool)
    order: list[int] = []
    waiting = 20

    async def call(n: int) -> None:
        nonlocal waiting
        async with store._connection() as conn:
            order.append(n)
            await conn.fetchval("SELECT 1")
        waiting -= 1

    async def eager() -> None:
        # New requests keep arriving in a busy server; none may jump the queue.
        while waiting:
            async with store._connection() as conn:
                await conn.fetchval("SELECT 1")
            await asyncio.sleep(0)

    try:
        async with store._connection():
            tasks = [asyncio.create_task(call(n)) for n in range(20)]
            await asyncio.sleep(0.05)
            tasks.append(asyncio.create_task(eager()))
            await asyncio.sleep(0.05)
        await asyncio.gather(*tasks)
    finally:
        await pool.close()
    assert order == list(range(20))
