"""The journal writer: batches in the background, bounded buffer, survives failed and refused writes."""

import asyncio
from typing import Any

import asyncpg
import pytest

from tests.ops.conftest import entry
from tolem.db import journal as journal_db
from tolem.gateway.journal_writer import JournalWriter


class TestWriter:
    async def test_buffer_is_bounded_and_drops_are_counted(self, pool: asyncpg.Pool) -> None:
        """Past its capacity the writer drops new entries instead of growing; the rest are written."""
        from tolem.ops import metrics

        writer = JournalWriter(pool, capacity=2)
        before = metrics.JOURNAL_DROPPED._value.get()
        for n in range(3):
            writer.record(entry(txn=str(n)))
        await writer.flush()
        assert metrics.JOURNAL_DROPPED._value.get() - before == 1
        assert await pool.fetchval("SELECT array_agg(txn ORDER BY id) FROM request_journal") == ["0", "1"]

    async def test_entries_survive_a_failed_write(self, database_url: str) -> None:
        """When the database refuses a batch the entries stay buffered and a later flush writes them."""
        broken = await asyncpg.create_pool(database_url, min_size=1, max_size=1)
        writer = JournalWriter(broken)
        writer.record(entry(txn="kept"))
        await broken.close()
        with pytest.raises(asyncpg.InterfaceError):
            await writer.flush()
        writer._pool = await asyncpg.create_pool(database_url, min_size=1, max_size=1)
        try:
            await writer.flush()
            assert await writer._pool.fetchval("SELECT txn FROM request_journal") == "kept"
        finally:
            await writer._pool.close()

    async def test_close_writes_what_is_buffered(self, pool: asyncpg.Pool) -> None:
        """Closing a running writer, even while it is writing, leaves every recorded entry stored."""
        writer = JournalWriter(pool, interval=0, batch=1)
        writer.start()
        for n in range(50):
            writer.record(entry(txn=str(n)))
            if n == 25:
                await asyncio.sleep(0)
        await writer.close()
        assert await pool.fetchval("SELECT count(*) FROM request_journal") == 50

    async def test_steady_traffic_is_written_in_one_batch_per_interval(
        self, pool: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Calls recorded while a batch is being written wait for the next round, not a write of their own."""
        statements = 0
        real_insert = journal_db.insert_many

        async def counted(conn: Any, entries: Any) -> None:
            nonlocal statements
            statements += 1
            await real_insert(conn, entries)

        monkeypatch.setattr(journal_db, "insert_many", counted)
        writer = JournalWriter(pool, interval=0.1)
        writer.start()
        loop = asyncio.get_running_loop()
        started = loop.time()
        recorded = 0
        while loop.time() - started < 0.6:
            writer.record(entry(txn=str(recorded)))
            recorded += 1
            await asyncio.sleep(0.001)
        await writer.close()
        assert await pool.fetchval("SELECT count(*) FROM request_journal") == recorded
        # About six rounds in 0.6 s, and the close; draining until empty made one per commit.
        assert recorded > 200
        assert statements <= 9

    async def test_close_also_writes_calls_recorded_during_its_last_write(
        self, pool: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A call that finishes while close() is writing the last batch is stored too."""
        writer = JournalWriter(pool)
        real_insert = journal_db.insert_many

        async def insert_and_record_a_late_call(conn: Any, entries: Any) -> None:
            await real_insert(conn, entries)
            if entries[0].txn == "first":
                writer.record(entry(txn="late"))

        monkeypatch.setattr(journal_db, "insert_many", insert_and_record_a_late_call)
        writer.record(entry(txn="first"))
        await writer.close()
        stored = await pool.fetchval("SELECT array_agg(txn ORDER BY id) FROM request_journal")
        assert stored == ["first", "late"]

    async def test_a_refused_row_does_not_hold_back_its_batch(self, pool: asyncpg.Pool) -> None:
        """A row the schema refuses is dropped alone; its batch-mates are written."""
        writer = JournalWriter(pool)
        writer.record(entry(txn="good-1"))
        writer.record(entry(txn="x" * 65))
        writer.record(entry(txn="good-2"))
        await writer.flush()
        assert await pool.fetchval("SELECT array_agg(txn ORDER BY id) FROM request_journal") == [
            "good-1",
            "good-2",
        ]

    async def test_a_value_that_cannot_be_encoded_does_not_hold_back_its_batch(
        self, pool: asyncpg.Pool
    ) -> None:
        """A row refused before it reaches the database (an address that is none) is dropped alone."""
        writer = JournalWriter(pool)
        writer.record(entry(txn="good-1"))
        writer.record(entry(txn="bad", remote_addr="not-an-address"))
        writer.record(entry(txn="good-2"))
        await writer.flush()
        assert await pool.fetchval("SELECT array_agg(txn ORDER BY id) FROM request_journal") == [
            "good-1",
            "good-2",
        ]
