"""The migration runner: fresh apply, idempotent re-run, edited files refused, concurrent runs."""

import asyncio
import shutil
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from tests.conftest import Factory
from tolem.core.model import PayCommand
from tolem.core.service import PaymentService
from tolem.db.migrate import (
    MigrationError,
    load_functions,
    load_migrations,
    migrate,
    migrations_dir,
    pending,
)


@pytest.fixture
async def empty_database(server_dsn: str) -> AsyncIterator[str]:
    """A brand-new database with no schema at all."""
    name = f"tolem_empty_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(server_dsn)
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{server_dsn.rpartition('/')[0]}/{name}"
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def test_fresh_apply_then_noop(empty_database: str) -> None:
    """Every file applies once, in order, then the functions files; a second run applies nothing."""
    conn = await asyncpg.connect(empty_database)
    try:
        first = await migrate(conn)
        second = await migrate(conn)
        rows = await conn.fetch("SELECT version, name FROM schema_migrations ORDER BY version")
        migrations = [m.name for m in load_migrations()]
        assert first == migrations + [f"functions/{f.name}" for f in load_functions()]
        assert second == []
        assert [r["name"] for r in rows] == migrations
        assert await pending(conn) == []
    finally:
        await conn.close()


async def test_edited_file_is_refused(empty_database: str, tmp_path: Path) -> None:
    """A migration changed after it was applied stops the runner with a clear error."""
    copy = tmp_path / "migrations"
    shutil.copytree(migrations_dir(), copy)
    conn = await asyncpg.connect(empty_database)
    try:
        await migrate(conn, copy)
        first = sorted(copy.glob("*.sql"))[0]
        first.write_text(first.read_text() + "\n-- edited\n")
        with pytest.raises(MigrationError, match="changed after it was applied"):
            await migrate(conn, copy)
        with pytest.raises(MigrationError):
            await pending(conn, copy)
    finally:
        await conn.close()


async def test_new_file_applies_and_failing_file_rolls_back(
    empty_database: str,
    tmp_path: Path,
) -> None:
    """A later file applies on its own; a broken one leaves no trace and no record."""
    copy = tmp_path / "migrations"
    shutil.copytree(migrations_dir(), copy)
    conn = await asyncpg.connect(empty_database)
    try:
        await migrate(conn, copy)
        (copy / "9000_extra.sql").write_text("CREATE TABLE extra_probe (id int);")
        assert await migrate(conn, copy) == ["9000_extra.sql"]
        (copy / "9001_broken.sql").write_text("CREATE TABLE half (id int); SELECT 1/0;")
        with pytest.raises(asyncpg.DivisionByZeroError):
            await migrate(conn, copy)
        assert await conn.fetchval("SELECT to_regclass('half')") is None
        assert await conn.fetchval("SELECT count(*) FROM schema_migrations WHERE version = '9001'") == 0
    finally:
        await conn.close()


async def test_unknown_applied_version_is_refused(empty_database: str, tmp_path: Path) -> None:
    """A database ahead of the code (a version with no file) is refused, not ignored."""
    conn = await asyncpg.connect(empty_database)
    try:
        await migrate(conn)
        await conn.execute(
            "INSERT INTO schema_migrations (version, name, sha256) VALUES ('9999', '9999_x.sql', 'x')",
        )
        with pytest.raises(MigrationError, match="does not know"):
            await migrate(conn)
    finally:
        await conn.close()


def test_misnamed_file_is_refused(tmp_path: Path) -> None:
    """Files must be NNNN_slug.sql so their order is unambiguous."""
    (tmp_path / "1_bad.sql").write_text("SELECT 1;")
    with pytest.raises(MigrationError, match="NNNN_slug"):
        load_migrations(tmp_path)


async def test_concurrent_runners_apply_once(empty_database: str) -> None:
    """Four runners at once (four hosts deploying): each file is applied exactly once."""
    conns = [await asyncpg.connect(empty_database) for _ in range(4)]
    try:
        applied = await asyncio.gather(*(migrate(c) for c in conns))
        names = [name for run in applied for name in run]
        files = [m.label for m in load_migrations()] + [f.label for f in load_functions()]
        assert sorted(names) == sorted(files)
    finally:
        for conn in conns:
            await conn.close()


async def test_ledger_is_append_only(pool: asyncpg.Pool, factory: Factory, service: PaymentService) -> None:
    """UPDATE, DELETE and TRUNCATE on transfers are refused by the database itself."""
    provider = await factory.provider()
    _, code = await factory.account()
    await service.pay(provider, PayCommand("t", code, 100))
    assert await factory.count("SELECT count(*) FROM transfers") == 1
    async with pool.acquire() as conn:
        for statement in (
            "UPDATE transfers SET amount_minor = 1",
            "DELETE FROM transfers",
            "TRUNCATE transfers CASCADE",
        ):
            with pytest.raises(asyncpg.RestrictViolationError):
                await conn.execute(statement)


async def test_payment_codes_are_forever(pool: asyncpg.Pool) -> None:
    """A payer cannot be deleted nor its code changed, so a code is never reused."""
    from tolem.db.accounts import create_account

    async with pool.acquire() as conn:
        _, code = await create_account(conn, email="a@b.kg", name="A", currency="KGS")
        with pytest.raises(asyncpg.RestrictViolationError):
            await conn.execute("DELETE FROM payers WHERE payment_code = $1", code)
        with pytest.raises(asyncpg.RestrictViolationError):
            await conn.execute("UPDATE payers SET payment_code = '001' WHERE payment_code = $1", code)
        with pytest.raises(asyncpg.UniqueViolationError):
            await conn.execute(
                "INSERT INTO payers (account_id, payment_code, name, origin) "
                "SELECT account_id, payment_code, 'B', 'imported' FROM payers WHERE payment_code = $1",
                code,
            )


@pytest.mark.parametrize(
    ("statement", "error"),
    [
        (
            "UPDATE ledger_accounts SET balance_minor = -1 WHERE kind = 'customer'",
            asyncpg.CheckViolationError,
        ),
        (
            "INSERT INTO ledger_accounts (kind, currency, balance_minor) VALUES ('clearing', 'KGS', 5)",
            asyncpg.CheckViolationError,
        ),
        (
            "INSERT INTO ledger_accounts (kind, currency, balance_minor) VALUES ('customer', 'kgs', 0)",
            asyncpg.CheckViolationError,
        ),
        ("UPDATE accounts SET status = 'gone'", asyncpg.CheckViolationError),
        ("UPDATE accounts SET email = 'no-at-sign'", asyncpg.CheckViolationError),
    ],
)
async def test_constraints_hold(pool: asyncpg.Pool, statement: str, error: type[Exception]) -> None:
    """Negative balances, bad currencies, unknown statuses and bad emails are refused by the schema."""
    from tolem.db.accounts import create_account

    async with pool.acquire() as conn:
        await create_account(conn, email="a@b.kg", name="A", currency="KGS")
        with pytest.raises(error):
            await conn.execute(statement)


async def test_every_table_and_column_is_commented(pool: asyncpg.Pool) -> None:
    """Schema documentation lives in the schema: no table or column lacks a comment."""
    async with pool.acquire() as conn:
        missing = await conn.fetch(
            """SELECT c.relname, a.attname
                 FROM pg_class c
                 JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = 'public'
                 JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
                WHERE c.relkind = 'r'
                  AND a.attname NOT IN ('id', 'created_at')
                  AND c.relname <> 'schema_migrations'
                  AND col_description(c.oid, a.attnum) IS NULL""",
        )
        tables = await conn.fetch(
            """SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                WHERE n.nspname = 'public' AND c.relkind = 'r' AND obj_description(c.oid) IS NULL""",
        )
    assert [tuple(r) for r in missing] == []
    assert [r["relname"] for r in tables] == []


async def test_currency_keys_arrive_on_a_database_that_already_mixed(
    empty_database: str, tmp_path: Path
) -> None:
    """0010 applies over KGS credited into a UZS account before it: old rows are audited, new ones refused."""
    from tolem.db.audit import audit

    before, through = tmp_path / "before", tmp_path / "through"
    before.mkdir()
    through.mkdir()
    for migration in load_migrations():
        if migration.version < "0010":
            (before / migration.name).write_text(migration.sql, encoding="utf-8")
        if migration.version <= "0010":
            (through / migration.name).write_text(migration.sql, encoding="utf-8")
    conn = await asyncpg.connect(empty_database)
    try:
        await migrate(conn, before)
        # What a deployment with TOLEM_CURRENCY=KGS did to accounts a UZS deployment had created.
        await conn.execute(
            """WITH l AS (INSERT INTO ledger_accounts (kind, currency, balance_minor)
                          VALUES ('customer', 'UZS', 0) RETURNING id),
                    a AS (INSERT INTO accounts (email, name, ledger_account_id)
                          SELECT 'a@b.uz', 'A', id FROM l RETURNING id)
               INSERT INTO payers (account_id, payment_code, name, origin)
               SELECT id, 'OLD-1', 'A', 'imported' FROM a""",
        )
        await conn.execute(
            """WITH l AS (INSERT INTO ledger_accounts (kind, currency)
                          VALUES ('clearing', 'KGS') RETURNING id)
               INSERT INTO providers (name, protocol, currency, allow_ips, clearing_ledger_account_id)
               SELECT 'kiosk', 'osmp', 'KGS', '{10.0.0.0/8}', id FROM l""",
        )
        provider_id = await conn.fetchval("SELECT id FROM providers")
        accepted = await conn.fetchval(
            "SELECT outcome FROM tolem_accept($1, 't-1', 'OLD-1', 500, NULL, NULL, true)", provider_id
        )
        assert accepted == "ok"
        assert await migrate(conn, through) == ["0010_currency_integrity.sql"]
        keys = await conn.fetch(
            "SELECT conname, convalidated FROM pg_constraint "
            "WHERE conname LIKE 'fk\\_\\_%\\_\\_currency\\_\\_%' ORDER BY conname"
        )
        assert [tuple(k) for k in keys] == [
            ("fk__providers__clearing__currency__ledger_accounts", True),
            ("fk__transfers__credit__currency__ledger_accounts", False),
            ("fk__transfers__debit__currency__ledger_accounts", True),
        ]
        found = {(v.check, v.subject) for v in await audit(conn)}
        assert {("ledger_not_balanced", "KGS"), ("ledger_not_balanced", "UZS")} <= found
        assert ("transfer_currency_mismatch", "1") in found
        refused = await conn.fetchval(
            "SELECT outcome FROM tolem_accept($1, 't-2', 'OLD-1', 500, NULL, NULL, true)", provider_id
        )
        assert refused == "currency_refused"
        with pytest.raises(asyncpg.ForeignKeyViolationError):
            await conn.execute(
                "INSERT INTO transfers (debit_ledger_account_id, credit_ledger_account_id, amount_minor, "
                "currency, code, payment_id, reverses_transfer_id) SELECT credit_ledger_account_id, "
                "debit_ledger_account_id, amount_minor, currency, 'reversal', payment_id, id "
                "FROM transfers WHERE id = 1"
            )
    finally:
        await conn.close()
