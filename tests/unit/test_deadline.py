"""The gateway's request deadline: asyncio.timeout's contract for one awaited call."""

import asyncio

import pytest

from tolem.app import _within


async def test_an_answer_in_time_is_returned() -> None:
    """A call that finishes before the deadline gives its answer and leaves no cancellation."""

    async def quick() -> str:
        await asyncio.sleep(0)
        return "answer"

    assert await _within(1.0, quick()) == "answer"
    task = asyncio.current_task()
    assert task is not None
    assert task.cancelling() == 0


async def test_a_late_call_raises_timeout_at_the_deadline() -> None:
    """A call still running at the deadline is cancelled and TimeoutError raised, in time."""
    cancelled = asyncio.Event()

    async def slow() -> str:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return "too late"

    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(TimeoutError):
        await _within(0.05, slow())
    assert 0.05 <= loop.time() - started < 1.0
    assert cancelled.is_set()
    task = asyncio.current_task()
    assert task is not None
    assert task.cancelling() == 0
    # The task goes on awaiting normally afterwards: no cancellation is left pending.
    await asyncio.sleep(0.01)


async def test_a_cancellation_from_elsewhere_is_not_a_timeout() -> None:
    """Shutdown cancelling the call's task propagates as CancelledError, not as a timeout."""
    started = asyncio.Event()

    async def slow() -> str:
        started.set()
        await asyncio.sleep(10)
        return "never"

    async def serve() -> str:
        return await _within(5.0, slow())

    task = asyncio.create_task(serve())
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_a_cancellation_from_elsewhere_wins_even_after_the_deadline() -> None:
    """When shutdown and the deadline both cancelled, the shutdown's cancellation propagates."""
    started = asyncio.Event()

    async def stubborn() -> str:
        started.set()
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            # Still winding down when the deadline passes.
            await asyncio.shield(asyncio.sleep(0.1))
            raise
        return "never"

    async def serve() -> str:
        return await _within(0.05, stubborn())

    task = asyncio.create_task(serve())
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_a_call_that_swallows_the_deadline_keeps_its_answer() -> None:
    """A call that catches our cancellation and answers anyway is answered, with no
    cancellation left pending on the task."""

    async def swallowing() -> str:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            return "answered anyway"
        return "never"

    assert await _within(0.05, swallowing()) == "answered anyway"
    task = asyncio.current_task()
    assert task is not None
    assert task.cancelling() == 0
    await asyncio.sleep(0.01)
