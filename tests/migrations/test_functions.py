"""sql/functions: applied after the migrations, again only when changed, the one definition in force."""

import re
import shutil
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from pydantic import SecretStr

from tolem.app import create_app
from tolem.db.audit import audit
from tolem.db.migrate import FunctionsFile, load_functions, load_migrations, migrate, migrations_dir, pending
from tolem.settings import Settings

ClientMaker = Any
_FUNCTION_RE = re.compile(r"^CREATE OR REPLACE FUNCTION (tolem_\w+)\(", re.MULTILINE)
_TRIGGER_RE = re.compile(r"^CREATE OR REPLACE TRIGGER (tr__\w+)\s", re.MULTILINE)

# Everything the database runs, as one comparable value: function definitions and comments,
# triggers, and what schema_functions recorded.
_DEFINITIONS = """
SELECT 'function ' || p.proname || '(' || pg_get_function_identity_arguments(p.oid) || ') '
       || md5(pg_get_functiondef(p.oid)) || ' ' || coalesce(obj_description(p.oid, 'pg_proc'), '-')
  FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
 WHERE n.nspname = 'public' AND p.proname LIKE 'tolem\\_%'
UNION ALL
SELECT 'trigger ' || pg_get_triggerdef(oid) || ' ' || tgenabled::text FROM pg_trigger WHERE NOT tgisinternal
UNION ALL
SELECT 'recorded ' || name || ' ' || sha256 || ' ' || applied_at FROM schema_functions
"""


async def _definitions(conn: asyncpg.Connection) -> list[str]:
    return sorted(r[0] for r in await conn.fetch(_DEFINITIONS))


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


@pytest.fixture
async def conn(empty_database: str) -> AsyncIterator[asyncpg.Connection]:
    """A connection to the empty database."""
    connection = await asyncpg.connect(empty_database)
    try:
        yield connection
    finally:
        await connection.close()


def _sql_copy(tmp_path: Path) -> Path:
    """A copy of sql/ (migrations and functions); returns its migrations directory."""
    copy = tmp_path / "sql"
    shutil.copytree(migrations_dir().parent, copy)
    return copy / "migrations"


async def test_applying_twice_changes_nothing(conn: asyncpg.Connection) -> None:
    """A second migrate applies nothing, and running every file again by hand leaves the same definitions."""
    await migrate(conn)
    before = await _definitions(conn)
    assert await migrate(conn) == []
    assert await _definitions(conn) == before
    for file in load_functions():
        await conn.execute(file.sql)
    assert await _definitions(conn) == before
    assert await pending(conn) == []


async def test_changed_file_is_pending_and_applied_again(conn: asyncpg.Connection, tmp_path: Path) -> None:
    """An edited functions file is pending (alone) until migrate applies it, and then it is in force."""
    migrations = _sql_copy(tmp_path)
    await migrate(conn, migrations)
    recorded = await conn.fetchval("SELECT sha256 FROM schema_functions WHERE name = 'payments.sql'")
    payments = migrations.parent / "functions" / "payments.sql"
    payments.write_text(
        payments.read_text(encoding="utf-8")
        + "\nCOMMENT ON FUNCTION tolem_void(integer, text, bigint, integer) IS 'edited';\n",
        encoding="utf-8",
    )
    todo = await pending(conn, migrations)
    assert [(type(t), t.label) for t in todo] == [(FunctionsFile, "functions/payments.sql")]
    assert await migrate(conn, migrations) == ["functions/payments.sql"]
    comment = await conn.fetchval(
        "SELECT obj_description('tolem_void(integer, text, bigint, integer)'::regprocedure, 'pg_proc')"
    )
    assert comment == "edited"
    assert await conn.fetchval("SELECT sha256 FROM schema_functions WHERE name = 'payments.sql'") not in (
        recorded,
        None,
    )
    assert await pending(conn, migrations) == []
    assert await migrate(conn, migrations) == []


async def test_new_file_is_pending_and_applied(conn: asyncpg.Connection, tmp_path: Path) -> None:
    """A functions file added to a migrated database is applied by the next migrate, and only it."""
    migrations = _sql_copy(tmp_path)
    await migrate(conn, migrations)
    (migrations.parent / "functions" / "probe.sql").write_text(
        "CREATE OR REPLACE FUNCTION tolem_probe() RETURNS int LANGUAGE sql AS $$ SELECT 7 $$;",
        encoding="utf-8",
    )
    assert [t.label for t in await pending(conn, migrations)] == ["functions/probe.sql"]
    assert await migrate(conn, migrations) == ["functions/probe.sql"]
    assert await conn.fetchval("SELECT tolem_probe()") == 7


async def test_broken_file_applies_none_of_the_files(conn: asyncpg.Connection, tmp_path: Path) -> None:
    """The functions files apply in one transaction: one failing file leaves every file unapplied."""
    migrations = _sql_copy(tmp_path)
    (migrations.parent / "functions" / "zz_broken.sql").write_text("SELECT 1/0;", encoding="utf-8")
    with pytest.raises(asyncpg.DivisionByZeroError):
        await migrate(conn, migrations)
    assert await conn.fetchval("SELECT count(*) FROM schema_functions") == 0
    assert await conn.fetchval("SELECT to_regproc('tolem_post')") is None
    assert next(t.label for t in await pending(conn, migrations)) == "functions/console.sql"


async def test_fresh_database_runs_exactly_the_files(conn: asyncpg.Connection) -> None:
    """From scratch, the tolem_ functions and the triggers are those of sql/functions, one of each."""
    await migrate(conn)
    text = "\n".join(f.sql for f in load_functions())
    functions = await conn.fetch(
        """SELECT p.proname, count(*) AS overloads
             FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
            WHERE n.nspname = 'public' AND p.proname LIKE 'tolem\\_%'
            GROUP BY p.proname"""
    )
    overloads = {r["proname"]: r["overloads"] for r in functions}
    assert overloads == dict.fromkeys(_FUNCTION_RE.findall(text), 1)
    triggers = await conn.fetch("SELECT tgname FROM pg_trigger WHERE NOT tgisinternal")
    assert sorted(r["tgname"] for r in triggers) == sorted(_TRIGGER_RE.findall(text))


async def test_one_function_posts(conn: asyncpg.Connection) -> None:
    """Only tolem_post writes transfers or moves a stored balance; every money path calls it."""
    await migrate(conn)
    rows = await conn.fetch(
        r"""SELECT proname,
                   prosrc ~* 'insert\s+into\s+transfers' AS writes_transfers,
                   prosrc ~* 'update\s+ledger_accounts' AS moves_balances,
                   prosrc ~ 'tolem_post\(' AS posts
              FROM pg_proc WHERE proname LIKE 'tolem\_%'"""
    )
    posting = sorted(r["proname"] for r in rows if r["writes_transfers"] or r["moves_balances"])
    assert posting == ["tolem_post"]
    callers = sorted(r["proname"] for r in rows if r["posts"])
    assert callers == ["tolem_accept", "tolem_cancel", "tolem_perform"]


async def test_ledger_legs_are_keyed_to_their_kind(conn: asyncpg.Connection) -> None:
    """A provider's ledger account must be a clearing one, an account's a customer one, for life."""
    await migrate(conn)
    customer = await conn.fetchval(
        "INSERT INTO ledger_accounts (kind, currency, balance_minor) "
        "VALUES ('customer', 'KGS', 0) RETURNING id"
    )
    clearing = await conn.fetchval(
        "INSERT INTO ledger_accounts (kind, currency) VALUES ('clearing', 'KGS') RETURNING id"
    )
    with pytest.raises(asyncpg.ForeignKeyViolationError, match="fk__providers__clearing__kind"):
        await conn.execute(
            "INSERT INTO providers (name, protocol, currency, allow_ips, clearing_ledger_account_id) "
            "VALUES ('kiosk', 'osmp', 'KGS', '{10.0.0.0/8}', $1)",
            customer,
        )
    with pytest.raises(asyncpg.ForeignKeyViolationError, match="fk__accounts__ledger__kind"):
        await conn.execute(
            "INSERT INTO accounts (email, name, ledger_account_id) VALUES ('a@b.kg', 'A', $1)", clearing
        )
    await conn.execute(
        "INSERT INTO providers (name, protocol, currency, allow_ips, clearing_ledger_account_id) "
        "VALUES ('kiosk', 'osmp', 'KGS', '{10.0.0.0/8}', $1)",
        clearing,
    )
    with pytest.raises(asyncpg.ForeignKeyViolationError):
        await conn.execute(
            "UPDATE ledger_accounts SET kind = 'customer', balance_minor = 0 WHERE id = $1", clearing
        )


async def test_upgrade_of_a_database_with_money(conn: asyncpg.Connection, tmp_path: Path) -> None:
    """0015 and the files arrive on a database paid through the old functions: keys hold, money moves on."""
    before = tmp_path / "before" / "migrations"
    before.mkdir(parents=True)
    for migration in load_migrations():
        if migration.version < "0015":
            (before / migration.name).write_text(migration.sql, encoding="utf-8")
    await migrate(conn, before)
    await conn.execute(
        """WITH l AS (INSERT INTO ledger_accounts (kind, currency, balance_minor)
                      VALUES ('customer', 'KGS', 0) RETURNING id),
                a AS (INSERT INTO accounts (email, name, ledger_account_id)
                      SELECT 'a@b.kg', 'A', id FROM l RETURNING id)
           INSERT INTO payers (account_id, payment_code, name, origin)
           SELECT id, 'OLD-1', 'A', 'imported' FROM a"""
    )
    await conn.execute(
        """WITH l AS (INSERT INTO ledger_accounts (kind, currency) VALUES ('clearing', 'KGS') RETURNING id)
           INSERT INTO providers (name, protocol, currency, allow_ips, clearing_ledger_account_id)
           SELECT 'kiosk', 'osmp', 'KGS', '{10.0.0.0/8}', id FROM l"""
    )
    provider = await conn.fetchval("SELECT id FROM providers")
    pay = "SELECT outcome FROM tolem_accept($1, $2, 'OLD-1', 500, NULL, NULL, true)"
    assert await conn.fetchval(pay, provider, "t-1") == "ok"
    assert [t.label for t in await pending(conn)] == [
        "0015_functions_registry.sql",
        *(f.label for f in load_functions()),
    ]
    await migrate(conn)
    assert await conn.fetchval(pay, provider, "t-2") == "ok"
    assert await conn.fetchval("SELECT outcome FROM tolem_cancel($1, 't-1', NULL, 1)", provider) == "ok"
    assert await conn.fetchval("SELECT balance_minor FROM ledger_accounts WHERE kind = 'customer'") == 500
    assert await audit(conn) == []


async def test_readyz_waits_for_a_changed_file(
    aiohttp_client: ClientMaker, empty_database: str, conn: asyncpg.Connection
) -> None:
    """A functions file the database has not applied as it is makes readyz 503, naming the file."""
    await migrate(conn)
    await conn.execute("UPDATE schema_functions SET sha256 = repeat('0', 64) WHERE name = 'ledger.sql'")
    client = await aiohttp_client(create_app(Settings(database_url=SecretStr(empty_database))))
    ready = await client.get("/readyz")
    assert (ready.status, await ready.json()) == (
        503,
        {"status": "migrations pending", "pending": ["functions/ledger.sql"]},
    )
    await migrate(conn)
    ready = await client.get("/readyz")
    assert ready.status == 200
