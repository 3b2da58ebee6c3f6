"""Recording gateway calls in the request journal without slowing the answer down.

The gateway hands each finished call to `JournalWriter.record`, which only appends to an
in-memory buffer; a background task writes the buffer in batches (one COPY per batch). So a
pay costs no extra database round trip, and a journal outage cannot fail or delay a payment.

The price: rows still buffered when the process dies (at most `interval` seconds' worth, or
whatever a database outage held back) are lost. The journal is evidence of the conversation,
not the money: payments and the ledger are written in the pay transaction itself and stay the
source of truth; the canonical log line of each call is the second copy.
"""

import asyncio
import contextlib
from typing import Final

import asyncpg
import structlog

from tolem.db import journal as journal_db
from tolem.db.journal import JournalEntry
from tolem.log import OUTAGE_REPORT_SECONDS, Outage
from tolem.ops import metrics

_log = structlog.get_logger("tolem.journal")

# A row the schema refuses must not hold back the rows batched with it. The batch is a binary
# COPY: a value that cannot be encoded is refused here, before the database sees it, as a
# ValueError or TypeError.
_BAD_ROW_ERRORS: Final = (asyncpg.IntegrityConstraintViolationError, asyncpg.DataError, ValueError, TypeError)


class JournalWriter:
    """Buffers entries and writes them in batches from one background task.

    `record` never blocks and never raises. When the database refuses writes the buffer keeps
    up to `capacity` entries and then drops the newest, counting them in
    tolem_journal_dropped_total, so memory stays bounded during an outage.
    """

    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        interval: float = 0.2,
        batch: int = 500,
        capacity: int = 20_000,
        retry_delay: float = 1.0,
        outage: Outage | None = None,
    ) -> None:
        self._pool = pool
        self._outage = outage or Outage(OUTAGE_REPORT_SECONDS)
        self._interval = interval
        self._batch = batch
        self._capacity = capacity
        self._retry_delay = retry_delay
        self._buffer: list[JournalEntry] = []
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def record(self, entry: JournalEntry) -> None:
        """Queues an entry for the next batch."""
        if len(self._buffer) >= self._capacity:
            metrics.JOURNAL_DROPPED.inc()
            return
        self._buffer.append(entry)
        # The buffered gauge is refreshed by the writer each round, not here: a gauge that is
        # at most a round (or a retry delay) behind is as good to a scrape, and cheaper per call.
        self._wake.set()

    def start(self) -> None:
        """Starts the background writer."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="tolem-journal-writer")

    async def close(self, grace: float = 5.0) -> None:
        """Stops the writer and writes what is still buffered (within `grace` seconds).

        The task is asked to stop rather than cancelled: cancelling it inside a COPY would
        leave its connection mid-statement.
        """
        try:
            async with asyncio.timeout(grace):
                if self._task is not None:
                    self._stopping.set()
                    self._wake.set()
                    await self._task
                await self.flush()
        except Exception as exc:  # noqa: BLE001 - shutdown goes on; the loss is logged and counted
            metrics.JOURNAL_DROPPED.inc(len(self._buffer))
            _log.warning("journal_lost_on_shutdown", rows=len(self._buffer), error=type(exc).__name__)
        finally:
            if self._task is not None and not self._task.done():
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._task
            self._task = None

    async def flush(self, limit: int | None = None) -> None:
        """Writes at most `limit` entries, or without one until the buffer is empty (entries
        recorded meanwhile included); raises if the database refuses.

        Entries that a refused write held back stay buffered for the next flush.
        """
        async with self._lock:
            left = limit
            while self._buffer and (left is None or left > 0):
                chunk = self._buffer[: self._batch if left is None else min(self._batch, left)]
                if left is not None:
                    left -= len(chunk)
                async with self._pool.acquire() as conn:
                    try:
                        await journal_db.insert_many(conn, chunk)
                        written = len(chunk)
                    except _BAD_ROW_ERRORS:
                        written = await self._one_by_one(conn, chunk)
                del self._buffer[: len(chunk)]
                metrics.JOURNAL_WRITTEN.inc(written)
                metrics.JOURNAL_BUFFERED.set(len(self._buffer))
                self._outage.recovered()

    @staticmethod
    async def _one_by_one(conn: asyncpg.Connection, chunk: list[JournalEntry]) -> int:
        written = 0
        for entry in chunk:
            try:
                await journal_db.insert_many(conn, [entry])
                written += 1
            except _BAD_ROW_ERRORS as exc:
                metrics.JOURNAL_DROPPED.inc()
                _log.error(
                    "journal_row_refused",
                    provider=entry.provider,
                    command=entry.command,
                    error=type(exc).__name__,
                )
        return written

    async def _pause(self, seconds: float) -> None:
        """Sleeps, but wakes at once when close() asks the writer to stop."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._stopping.wait()

    async def _run(self) -> None:
        while not self._stopping.is_set():
            await self._wake.wait()
            self._wake.clear()
            # Let a batch gather: under load one COPY carries many calls.
            await self._pause(self._interval)
            metrics.JOURNAL_BUFFERED.set(len(self._buffer))
            try:
                # Only what had gathered: calls recorded during this write wait for the next
                # round. Draining until empty kept the writer in a loop of ten-row INSERTs under
                # load, a commit every few milliseconds that each check ended up paying for.
                await self.flush(len(self._buffer))
            except Exception as exc:  # noqa: BLE001 - the writer must outlive any one failure
                metrics.JOURNAL_WRITE_FAILURES.inc()
                # The rows stay buffered (JOURNAL_BUFFERED says how many) and go out on recovery.
                self._outage.failed("journal", exc)
                self._wake.set()
                await self._pause(self._retry_delay)
