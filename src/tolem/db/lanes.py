"""Connection lanes: the gateway's statements run first come, first served on a few connections.

Why lanes rather than `pool.acquire()` per call: a gateway call is one statement, and what it
costs beyond the database's own work is the time between statements. Each lane is a task that
owns a pooled connection while calls are waiting and runs them one after another, sending the
next statement as soon as the previous answer is in, so a statement is never more than one turn
of the event loop behind the answer before it; handing the connection back to the pool and to
the next waiting request between calls cost a turn more, and under load a turn is milliseconds
(docs/performance.md has the measurements).

The queue is strictly FIFO: asyncpg's own pool lets a newcomer take a freed connection ahead of
a woken waiter, which had some requests wait over a second while most were answered at once.

A lane gives its connection back when nothing is waiting, so the pool's other users (journal,
provider reloads, admin) get one whenever the gateway is not saturated; the application sizes
the pool with room for them.
"""

import asyncio
import contextlib
from dataclasses import dataclass
from typing import Any, Final

import asyncpg
import structlog

from tolem.core import errors

_log = structlog.get_logger("tolem.store")

# After these the session is gone (or in an unknown state): the lane lets the connection go.
_LOST_CONNECTION: Final = (asyncpg.InterfaceError, asyncpg.PostgresConnectionError, OSError, TimeoutError)


@dataclass(frozen=True, slots=True)
class _Call:
    """One statement waiting for a lane, and where its answer goes."""

    answer: asyncio.Future[Any]
    method: str
    query: str
    args: tuple[Any, ...]


def _settle(call: _Call, exc: BaseException) -> None:
    if not call.answer.done():
        call.answer.set_exception(exc)


class Lanes:
    """`count` lane tasks over `pool`, started by the first call, sharing one FIFO queue."""

    def __init__(self, pool: asyncpg.Pool, *, count: int) -> None:
        self._pool = pool
        self._count = count
        self._calls: asyncio.Queue[_Call] = asyncio.Queue()
        self._lanes: list[asyncio.Task[None]] = []

    async def close(self) -> None:
        """Stops the lanes; calls running or still queued get TemporarilyUnavailable."""
        lanes, self._lanes = self._lanes, []
        for lane in lanes:
            lane.cancel()
        for lane in lanes:
            with contextlib.suppress(asyncio.CancelledError):
                await lane
        while not self._calls.empty():
            call = self._calls.get_nowait()
            if not call.answer.done():
                call.answer.set_exception(errors.TemporarilyUnavailable("store closed"))

    async def run(self, method: str, query: str, *args: Any) -> Any:
        """`conn.<method>(query, *args)` on the next free lane; errors come back as raised."""
        if not self._lanes:
            self._lanes = [
                asyncio.create_task(self._lane(), name=f"tolem-store-lane-{n}") for n in range(self._count)
            ]
        answer: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._calls.put_nowait(_Call(answer, method, query, args))
        return await answer

    async def _lane(self) -> None:
        while True:
            call = await self._calls.get()
            try:
                await self._serve(call)
            except asyncio.CancelledError:
                _settle(call, errors.TemporarilyUnavailable("store closed"))
                raise
            except Exception as exc:  # noqa: BLE001 - a lane that died would leave calls unserved
                _settle(call, exc)
                _log.exception("store_lane_error")

    async def _serve(self, call: _Call) -> None:
        """Runs `call` and every call queued behind it on one checkout of a connection."""
        try:
            conn = await self._pool.acquire()
        except Exception as exc:  # noqa: BLE001 - the caller gets it, the lane goes on
            _settle(call, exc)
            return
        try:
            while True:
                # A caller that gave up (its deadline passed) is skipped, never run late.
                if not call.answer.done() and not await self._answer(conn, call):
                    return  # the connection is gone; the pool replaces it
                if self._calls.empty():
                    return
                call = self._calls.get_nowait()
        finally:
            # A connection that died was already taken back by the pool.
            with contextlib.suppress(asyncpg.InterfaceError):
                await self._pool.release(conn)

    @staticmethod
    async def _answer(conn: asyncpg.Connection, call: _Call) -> bool:
        """Runs one call; whether the connection is still fit for the next."""
        try:
            result = await getattr(conn, call.method)(call.query, *call.args)
        except asyncio.CancelledError:
            # Closing: whether the statement committed is unknown.
            _settle(call, errors.TemporarilyUnavailable("store closed"))
            raise
        except _LOST_CONNECTION as exc:
            _settle(call, exc)
            return False
        except Exception as exc:  # noqa: BLE001 - the caller gets it
            _settle(call, exc)
            return True
        if not call.answer.done():
            call.answer.set_result(result)
        return True
