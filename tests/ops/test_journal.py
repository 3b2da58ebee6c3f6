"""The request journal: every gateway call to a known provider, masked, searchable, archivable."""

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from tests.conftest import Factory
from tests.ops.conftest import Cli, ClickWorld, Payme
from tolem.core.payment_codes import mask
from tolem.db import journal as journal_db
from tolem.db.journal import JournalEntry, JournalFilter
from tolem.gateway.handler import JOURNAL
from tolem.gateway.journal import entry_for, scrub_body
from tolem.gateway.journal_writer import JournalWriter


async def journal_rows(world: ClickWorld) -> list[dict[str, Any]]:
    """Everything journaled so far (buffered calls written first), oldest first."""
    await world.click.client.app[JOURNAL].flush()
    async with world.factory.pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT provider, host(remote_addr) AS remote_addr, method, command, txn, code_masked, "
            "result, http_status, response_body, details, duration_us, request_id "
            "FROM request_journal ORDER BY id"
        )
    return [dict(r) for r in rows]


def entry(provider: str = "kiosk", txn: str = "1", at: datetime | None = None, **kw: Any) -> JournalEntry:
    """A journal entry with plain defaults."""
    fields: dict[str, Any] = {
        "received_at": at or datetime.now(UTC),
        "provider": provider,
        "remote_addr": "10.0.0.1",
        "method": "GET",
        "command": "pay",
        "txn": txn,
        "code_masked": "********1234",
        "result": "0",
        "http_status": 200,
        "response_body": "<response><result>0</result></response>",
        "duration_us": 1500,
        "request_id": "r-1",
        "details": {"amount": 15000},
    }
    fields.update(kw)
    return JournalEntry(**fields)


class TestGatewayRecording:
    async def test_accepted_call_is_journaled_masked(self, world: ClickWorld) -> None:
        """A Prepare leaves one row: provider, address, command, txn, masked code, result, masked body."""
        reply = await world.click.post(world.click.prepare_fields("777"), headers={"X-Request-Id": "req-777"})
        assert reply.body["error"] == 0
        [row] = await journal_rows(world)
        assert {k: row[k] for k in ("provider", "remote_addr", "method", "command", "txn")} == {
            "provider": "click",
            "remote_addr": "127.0.0.1",
            "method": "POST",
            "command": "prepare",
            "txn": "777",
        }
        assert (row["code_masked"], row["result"], row["http_status"]) == (mask(world.code), "0", 200)
        assert row["request_id"] == "req-777"
        assert row["duration_us"] >= 0
        body = json.loads(row["response_body"])
        assert body["merchant_trans_id"] == mask(world.code)
        assert body["merchant_prepare_id"] == reply.body["merchant_prepare_id"]
        assert world.code not in json.dumps(row, default=str)

    async def test_refused_call_is_journaled_without_its_signature(self, world: ClickWorld) -> None:
        """A call with a wrong signature is recorded with its refusal; the signature is nowhere."""
        fields = world.click.prepare_fields("778", sign_string="0" * 31 + "f")
        reply = await world.click.post(fields)
        assert reply.body["error"] == -1
        [row] = await journal_rows(world)
        assert (row["command"], row["result"]) == ("prepare", "-1")
        assert json.loads(row["details"])["refusal"] == "bad signature"
        assert "0" * 31 + "f" not in json.dumps(row, default=str)

    async def test_unknown_provider_is_not_journaled(self, world: ClickWorld) -> None:
        """A call to a provider we do not have gets 404 and leaves no row."""
        response = await world.click.client.get("/gw/nobody?command=pay")
        assert response.status == 404
        assert await journal_rows(world) == []

    async def test_every_repeat_is_its_own_row(self, world: ClickWorld) -> None:
        """A retried call is journaled again: the journal is the conversation, not the payments."""
        first = await world.click.prepare("779")
        second = await world.click.prepare("779")
        assert first.body == second.body
        rows = await journal_rows(world)
        assert [r["txn"] for r in rows] == ["779", "779"]
        assert await world.factory.count("SELECT count(*) FROM payments") == 1


class TestPaymeRecording:
    async def test_statement_codes_masked_error_codes_kept_key_never_stored(
        self, payme: Payme, account: tuple[int, str], clock: Any
    ) -> None:
        """Payme's statement is journaled with codes masked, errors keep their numbers, the key is nowhere."""
        from tests.http.payme.conftest import KEY, basic

        _, code = account
        assert "result" in await payme.create("p-1", code, 1000, clock.ms())
        statement = await payme.call("GetStatement", {"from": 0, "to": clock.ms() + 1})
        assert statement["result"]["transactions"][0]["account"] == {"code": code}
        unknown = await payme.create("p-2", "ZZ-404", 1000, clock.ms())
        refused = await payme.call("CheckTransaction", {"id": "p-1"}, auth=basic("Paycom", KEY[:-1] + "x"))
        await payme.client.app[JOURNAL].flush()
        async with payme.factory.pool.acquire() as conn:
            rows = await conn.fetch(
                "SELECT command, txn, result, response_body FROM request_journal ORDER BY id"
            )
        assert [(r["command"], r["txn"]) for r in rows] == [
            ("CreateTransaction", "p-1"),
            ("GetStatement", None),
            ("CreateTransaction", "p-2"),
            ("CheckTransaction", "p-1"),
        ]
        stored = json.loads(rows[1]["response_body"])
        assert stored["result"]["transactions"][0]["account"] == {"code": mask(code)}
        assert json.loads(rows[2]["response_body"])["error"]["code"] == unknown["error"]["code"]
        assert rows[3]["result"] == str(refused["error"]["code"])
        everything = json.dumps([dict(r) for r in rows])
        assert code not in everything and KEY not in everything


class TestScrubbing:
    def test_json_codes_masked_and_secrets_replaced(self) -> None:
        """Code-bearing keys are masked, secret keys replaced, other values kept."""
        body = json.dumps(
            {
                "result": {"transactions": [{"account": {"code": "ABC-123456"}, "amount": 500}]},
                "sign_string": "deadbeef",
                "merchant_trans_id": "001234567897",
            }
        )
        assert json.loads(scrub_body(body)) == {
            "result": {"transactions": [{"account": {"code": "******3456"}, "amount": 500}]},
            "sign_string": "***",
            "merchant_trans_id": "********7897",
        }

    def test_numeric_error_codes_are_kept(self) -> None:
        """A JSON-RPC error's numeric `code` is a result, not a payment code: it stays as it is."""
        body = json.dumps({"id": 7, "error": {"code": -31050, "message": {"en": "x"}, "data": "code"}})
        assert json.loads(scrub_body(body)) == json.loads(body)

    def test_xml_and_bare_issued_codes_masked(self) -> None:
        """XML fields named like codes are masked, and so is any bare issued-shape code."""
        body = "<r><account>ZX-99887766</account><comment>paid 001234567897 ok</comment></r>"
        assert (
            scrub_body(body) == "<r><account>*******7766</account><comment>paid ********7897 ok</comment></r>"
        )

    def test_xml_keys_match_in_any_case_and_only_whole_names(self) -> None:
        """<Sign> and <ACCOUNT> are scrubbed; <accounts> and <code_hint> are not code fields."""
        others = "<accounts>7</accounts><code_hint>x</code_hint>"
        body = f"<r><Sign>abc</Sign><ACCOUNT>ZX-99887766</ACCOUNT>{others}</r>"
        assert scrub_body(body) == f"<r><Sign>***</Sign><ACCOUNT>*******7766</ACCOUNT>{others}</r>"

    def test_issued_code_shape_needs_digit_free_edges(self) -> None:
        """Only a standalone 00+10 digits is masked: at either end of the body, not inside a longer number."""
        assert scrub_body("001234567897") == "********7897"
        assert scrub_body("x:001234567897.") == "x:********7897."
        assert scrub_body("9001234567897") == "9001234567897"
        assert scrub_body("0012345678970") == "0012345678970"
        assert scrub_body("0001234567897") == "0001234567897"

    def test_unmasked_code_in_log_line_is_masked_before_storing(self) -> None:
        """Whatever an adapter put as `code`, the stored value shows at most four characters."""
        from aiohttp import web

        stored = entry_for(
            provider="kiosk",
            method="GET",
            remote_addr=None,
            received_at=datetime.now(UTC),
            duration_s=0.01,
            line={"command": "pay", "code": "001234567897", "txn": "5", "secretless": True},
            response=web.Response(text="ok"),
            request_id=None,
        )
        assert stored.code_masked == "********7897"
        assert stored.details == {"secretless": True}
        assert stored.duration_us == 10_000


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
