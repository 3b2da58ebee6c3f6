"""The stored request journal: append-only rows, search, `tolem journal` and its archive."""

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest

from tests.conftest import Factory
from tests.ops.conftest import Cli, entry
from tolem.core.payment_codes import mask
from tolem.db import journal as journal_db
from tolem.db.journal import JournalFilter


class TestStorage:
    async def test_rows_cannot_be_edited_or_deleted(self, pool: asyncpg.Pool) -> None:
        """UPDATE, DELETE and TRUNCATE on the journal are refused outside the archive command."""
        await journal_db.insert_many(pool, [entry()])
        for statement in (
            "UPDATE request_journal SET result = '1'",
            "DELETE FROM request_journal",
            "TRUNCATE request_journal",
        ):
            with pytest.raises(asyncpg.RestrictViolationError):
                await pool.execute(statement)
        assert await pool.fetchval("SELECT count(*) FROM request_journal") == 1

    async def test_details_keep_text_and_any_integer(self, pool: asyncpg.Pool) -> None:
        """Non-ASCII text and an integer beyond 64 bits in `details` are stored as given."""
        details = {"comment": "Оплата принята", "big": 2**70, "replayed": False, "duration": 1.5}
        await journal_db.insert_many(pool, [entry(details=details)])
        stored = await pool.fetchval("SELECT details::text FROM request_journal")
        assert json.loads(stored) == details

    async def test_search_filters_and_pages(self, pool: asyncpg.Pool) -> None:
        """Search narrows by provider, txn, masked code and time range, newest first, paged by id."""
        base = datetime(2026, 11, 25, 12, tzinfo=UTC)
        await journal_db.insert_many(
            pool,
            [
                entry("pay24", "123", base, code_masked="********1111"),
                entry("pay24", "124", base + timedelta(hours=1)),
                entry("elsom", "123", base + timedelta(hours=2)),
            ],
        )
        by_txn = await journal_db.search(pool, JournalFilter(provider="pay24", txn="123"), limit=10)
        assert [(r.provider, r.txn) for r in by_txn] == [("pay24", "123")]
        by_code = await journal_db.search(pool, JournalFilter(code="ZZ-000001111"), limit=10)
        assert [r.txn for r in by_code] == ["123"]
        window = JournalFilter(since=base + timedelta(minutes=30), until=base + timedelta(hours=2))
        assert [r.txn for r in await journal_db.search(pool, window, limit=10)] == ["124"]
        first = await journal_db.search(pool, JournalFilter(), limit=2)
        rest = await journal_db.search(pool, JournalFilter(before_id=first[-1].id), limit=2)
        assert [r.provider for r in first + rest] == ["elsom", "pay24", "pay24"]
        assert first[0].details == {"amount": 15000}

    async def test_code_search_leaves_out_payments_to_lookalike_codes(
        self, pool: asyncpg.Pool, factory: Factory
    ) -> None:
        """Two codes that mask alike: a code's search drops the calls that paid the other one."""
        from tolem.core.model import PayCommand
        from tolem.core.service import PaymentService
        from tolem.db.store import PgStore

        provider = await factory.provider("pay24")
        _, mine = await factory.account(payment_code="AA-000001234")
        _, theirs = await factory.account(payment_code="BB-000001234")
        service = PaymentService(PgStore(pool))
        await service.pay(provider, PayCommand("mine-1", mine, 100_00))
        await service.pay(provider, PayCommand("theirs-1", theirs, 100_00))
        masked = mask(mine)
        assert masked == mask(theirs)
        await journal_db.insert_many(
            pool,
            [
                entry("pay24", "mine-1", code_masked=masked),
                entry("pay24", "theirs-1", code_masked=masked),
                entry("pay24", "check-only", code_masked=masked, command="check"),
            ],
        )
        found = await journal_db.search(pool, JournalFilter(code=mine), limit=10)
        assert [r.txn for r in found] == ["check-only", "mine-1"]


class TestCli:
    async def test_journal_answers_did_you_receive_txn(self, cli: Cli, pool: asyncpg.Pool) -> None:
        """`tolem journal --provider pay24 --txn 123` shows what was asked and what we answered."""
        at = datetime(2026, 11, 25, 8, 30, tzinfo=UTC)
        await journal_db.insert_many(pool, [entry("pay24", "123", at), entry("pay24", "999")])
        run = await cli("journal", "--provider", "pay24", "--txn", "123")
        assert run.code == 0, run.err
        assert "pay24" in run.out and "txn=123" in run.out and "<result>0</result>" in run.out
        assert run.out.startswith("2026-11-25 14:30:00.000+0600  #")
        assert "txn=999" not in run.out
        as_json = await cli("journal", "--txn", "123", "--json")
        [row] = as_json.json()
        assert (row["provider"], row["result"], row["details"]) == ("pay24", "0", {"amount": 15000})

    async def test_journal_by_code_and_time(self, cli: Cli, pool: asyncpg.Pool) -> None:
        """--code matches by the masked form; --since/--until read naive times in TOLEM_TIMEZONE."""
        at = datetime(2026, 11, 25, 6, tzinfo=UTC)  # 12:00 in Bishkek (+6)
        await journal_db.insert_many(pool, [entry(txn="a", at=at), entry(txn="b", code_masked="****0000")])
        window = ("--since", "2026-11-25T11:59", "--until", "2026-11-26")
        run = await cli("journal", "--code", "ZZ-000001234", *window, "--json")
        assert run.code == 0, run.err
        assert [r["txn"] for r in run.json()] == ["a"]
        bad = await cli("journal", "--since", "yesterday")
        assert (bad.code, bad.err.strip()) == (2, "tolem: error: not an ISO date or date-time: 'yesterday'")

    async def test_archive_moves_old_rows_and_leaves_payments(
        self, cli: Cli, pool: asyncpg.Pool, factory: Factory, tmp_path: Path
    ) -> None:
        """Archiving writes rows older than --before to a new file, deletes them, and touches nothing else."""
        provider = await factory.provider()
        _, code = await factory.account()
        from tolem.core.model import PayCommand
        from tolem.core.service import PaymentService
        from tolem.db.store import PgStore

        await PaymentService(PgStore(pool)).pay(provider, PayCommand("p1", code, 100_00))
        old = datetime(2026, 1, 10, tzinfo=UTC)
        await journal_db.insert_many(
            pool, [entry(txn="old-1", at=old), entry(txn="old-2", at=old), entry(txn="new")]
        )
        target = tmp_path / "journal-2026-01.jsonl"
        run = await cli("journal", "archive", "--before", "2026-02-01", "--to", str(target), "--json")
        assert run.code == 0, run.err
        assert run.json()["archived"] == 2
        archived = [json.loads(line) for line in target.read_text().splitlines()]
        assert [a["txn"] for a in archived] == ["old-1", "old-2"]
        assert await pool.fetchval("SELECT array_agg(txn) FROM request_journal") == ["new"]
        assert await factory.count("SELECT count(*) FROM payments") == 1
        again = await cli("journal", "archive", "--before", "2026-02-01", "--to", str(target))
        assert again.code == 2 and "never overwritten" in again.err
