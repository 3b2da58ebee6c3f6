"""The serving pool and the store's lanes: no reset query on release, yet no transaction
outlives its request; calls run in the order requests made them."""

import asyncio

import asyncpg
import pytest

from tolem.core import errors
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


async def test_store_runs_calls_in_arrival_order(database_url: str) -> None:
    """With every lane busy, waiting calls run first come, first served, even while another
    caller keeps asking again the moment its call is answered."""
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=1)
    store = PgStore(pool)
    order: list[int] = []
    waiting = 20

    async def call(n: int) -> None:
        nonlocal waiting
        order.append(await store._run("fetchval", "SELECT $1::int", n))
        waiting -= 1

    async def eager() -> None:
        # New requests keep arriving in a busy server; none may jump the queue.
        while waiting:
            await store._run("fetchval", "SELECT -1")
            await asyncio.sleep(0)

    try:
        busy = asyncio.create_task(store._run("execute", "SELECT pg_sleep(0.1)"))
        await asyncio.sleep(0.02)
        tasks = [asyncio.create_task(call(n)) for n in range(20)]
        await asyncio.sleep(0.02)
        tasks.append(asyncio.create_task(eager()))
        await asyncio.gather(busy, *tasks)
    finally:
        await store.close()
        await pool.close()
    assert order == list(range(20))


async def test_lane_keeps_its_connection_only_while_calls_wait(database_url: str) -> None:
    """Calls back to back share one checkout of the connection; idle lanes hold none."""
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=1)
    store = PgStore(pool)
    try:
        pids = await asyncio.gather(*(store._run("fetchval", "SELECT pg_backend_pid()") for _ in range(30)))
        assert len(set(pids)) == 1
        await asyncio.sleep(0.05)
        # The pool's other users get the connection as soon as the gateway is idle.
        async with asyncio.timeout(1), pool.acquire() as conn:
            assert await conn.fetchval("SELECT pg_backend_pid()") == pids[0]
    finally:
        await store.close()
        await pool.close()


async def test_a_call_given_up_while_waiting_never_runs(database_url: str) -> None:
    """A caller cancelled (its deadline passed) before a lane reached its call leaves no trace."""
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=1)
    store = PgStore(pool)
    await pool.execute("CREATE TABLE lane_probe (n int)")
    try:
        busy = asyncio.create_task(store._run("execute", "SELECT pg_sleep(0.2)"))
        await asyncio.sleep(0.02)
        late = asyncio.create_task(store._run("execute", "INSERT INTO lane_probe VALUES (1)"))
        await asyncio.sleep(0.02)
        late.cancel()
        await busy
        with pytest.raises(asyncio.CancelledError):
            await late
        assert await store._run("fetchval", "SELECT count(*) FROM lane_probe") == 0
    finally:
        await store.close()
        await pool.execute("DROP TABLE lane_probe")
        await pool.close()


async def test_lane_maps_database_failures_and_goes_on(database_url: str) -> None:
    """A failed statement reaches its caller as the domain's retry error; the next call runs."""
    pool = await create_pool(database_url, size=1, deadline=0.2)
    store = PgStore(pool)
    try:
        with pytest.raises(errors.RetryableConflict) as conflict:
            await store._run("execute", "DO $$ BEGIN RAISE EXCEPTION 'x' USING ERRCODE = '40P01'; END $$")
        assert isinstance(conflict.value.__cause__, asyncpg.DeadlockDetectedError)
        with pytest.raises(errors.TemporarilyUnavailable):
            # The pool's statement_timeout (80 % of the 0.2 s deadline) ends it on the server.
            await store._run("execute", "SELECT pg_sleep(1)")
        assert await store._run("fetchval", "SELECT 1") == 1
    finally:
        await store.close()
        await pool.close()


async def test_closing_answers_waiting_calls_and_returns_connections(database_url: str) -> None:
    """Calls running or queued at shutdown get "temporarily unavailable"; the pool gets its
    connection back."""
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=1)
    store = PgStore(pool)
    busy = asyncio.create_task(store._run("execute", "SELECT pg_sleep(0.5)"))
    await asyncio.sleep(0.02)
    queued = asyncio.create_task(store._run("fetchval", "SELECT 1"))
    await asyncio.sleep(0.02)
    try:
        await store.close()
        for call in (busy, queued):
            with pytest.raises(errors.TemporarilyUnavailable):
                await call
        assert pool.get_idle_size() == pool.get_size()
    finally:
        await pool.close()


async def test_closing_answers_a_call_whose_lane_waits_for_a_connection(database_url: str) -> None:
    """A lane still waiting for a pooled connection at shutdown answers its call too."""
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=1)
    store = PgStore(pool)
    try:
        async with pool.acquire():
            waiting = asyncio.create_task(store._run("fetchval", "SELECT 1"))
            await asyncio.sleep(0.05)
            await store.close()
            with pytest.raises(errors.TemporarilyUnavailable):
                await waiting
    finally:
        await pool.close()
