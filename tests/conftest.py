"""Test database plumbing: a real PostgreSQL, a migrated template, a fresh database per test.

With TOLEM_TEST_DATABASE_URL set (a superuser DSN to any database of a server) the tests use
that server; otherwise they start a throwaway cluster from the local PostgreSQL binaries, tuned
for speed (no fsync), and remove it afterwards. Every test that asks for `database_url` gets its
own database cloned from the migrated template, and the ledger invariants are checked on it
after the test: no test can leave money unbalanced unnoticed.
"""

import asyncio
import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any, Final

import asyncpg
import pytest
from pydantic import SecretStr

from tolem.core.model import Provider, WireProtocol
from tolem.core.payment_codes import generate_code
from tolem.core.service import PaymentService
from tolem.db import accounts as account_db
from tolem.db import providers as provider_db
from tolem.db.audit import Violation, audit
from tolem.db.embedded import ensure_cluster, stop_cluster
from tolem.db.migrate import migrate
from tolem.db.store import PgStore
from tolem.protocols.passwords import hash_password
from tolem.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
_FAST_OPTIONS = (
    "-c",
    "fsync=off",
    "-c",
    "synchronous_commit=off",
    "-c",
    "full_page_writes=off",
    "-c",
    "max_connections=300",
)


def _with_database(dsn: str, database: str) -> str:
    base, _, _ = dsn.rpartition("/")
    return f"{base}/{database}"


@pytest.fixture(scope="session")
def server_dsn() -> Iterator[str]:
    """DSN of a superuser session on the test server (its `postgres` database)."""
    given = os.environ.get("TOLEM_TEST_DATABASE_URL")
    if given:
        yield given
        return
    base = Path(tempfile.mkdtemp(prefix="tolem-test-pg-"))
    os.chmod(base, 0o755)  # noqa: S103 - the postgres user must reach its data directory
    cluster = ensure_cluster(base, options=_FAST_OPTIONS, create_database=False)
    try:
        yield cluster.dsn("postgres")
    finally:
        stop_cluster(cluster.data_dir, mode="immediate")
        shutil.rmtree(base, ignore_errors=True)


async def _admin(server: str, *statements: str) -> None:
    conn = await asyncpg.connect(server)
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def template_database(server_dsn: str) -> Iterator[str]:
    """Name of a database with every migration applied, cloned by each test."""
    name = f"tolem_template_{uuid.uuid4().hex[:12]}"

    async def build() -> None:
        await _admin(server_dsn, f'CREATE DATABASE "{name}"')
        conn = await asyncpg.connect(_with_database(server_dsn, name))
        try:
            await migrate(conn)
        finally:
            await conn.close()

    asyncio.run(build())
    yield name
    asyncio.run(_admin(server_dsn, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


async def ledger_violations(dsn: str) -> list[Violation]:
    """What `tolem audit` finds: empty when the ledger is sound."""
    conn = await asyncpg.connect(dsn)
    try:
        return await audit(conn)
    finally:
        await conn.close()


@pytest.fixture
async def database_url(server_dsn: str, template_database: str) -> AsyncIterator[str]:
    """A fresh migrated database for this test; its ledger must be sound when the test ends."""
    name = f"tolem_test_{uuid.uuid4().hex[:12]}"
    await _admin(server_dsn, f'CREATE DATABASE "{name}" TEMPLATE "{template_database}"')
    dsn = _with_database(server_dsn, name)
    try:
        yield dsn
        assert await ledger_violations(dsn) == []
    finally:
        await _admin(server_dsn, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    """A pool on the test database."""
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=20)
    try:
        yield pool
    finally:
        await pool.close()


@pytest.fixture
def settings(database_url: str) -> Settings:
    """Settings pointing at the test database, with no provider caching."""
    return Settings(
        database_url=SecretStr(database_url),
        provider_cache_seconds=0,
        request_deadline=2.0,
        pool_size=8,
    )


@pytest.fixture
def service(pool: asyncpg.Pool) -> PaymentService:
    """The core service on the test database."""
    return PaymentService(PgStore(pool))


# A provider's optional settings, all unset: no login, password, secret, limits or own zone.
UNSET_PROVIDER_FIELDS: Final[dict[str, Any]] = {
    "login": None,
    "password_hash": None,
    "secret": None,
    "service_id": None,
    "min_amount_minor": None,
    "max_amount_minor": None,
    "timezone": None,
}


def provider_value(protocol: WireProtocol, name: str, *, currency: str = "KGS", **fields: Any) -> Provider:
    """A Provider value for checks that never reach the database; `fields` override the rest."""
    values: dict[str, Any] = {
        "id": 1,
        "name": name,
        "protocol": protocol,
        "enabled": True,
        "allow_ips": (),
        "currency": currency,
        **UNSET_PROVIDER_FIELDS,
    }
    return Provider(**(values | fields))


class Factory:
    """Creates rows through the same code the CLI uses, with defaults."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool
        self._n = 0

    async def provider(self, name: str = "kiosk", protocol: str = "osmp", **kw: Any) -> Provider:
        """A provider; by default OSMP with an allow-list for loopback and no limits."""
        fields: dict[str, Any] = {
            "currency": "KGS",
            "allow_ips": ["127.0.0.0/8", "::1/128"],
            **UNSET_PROVIDER_FIELDS,
        }
        if "password" in kw:
            fields["password_hash"] = hash_password(kw.pop("password"))
        fields.update(kw)
        async with self.pool.acquire() as conn:
            return await provider_db.add(conn, name=name, protocol=protocol, **fields)

    async def account(self, name: str = "Asanov Asan Asanovich", **kw: Any) -> tuple[int, str]:
        """An account and its first payment code."""
        self._n += 1
        async with self.pool.acquire() as conn:
            return await account_db.create_account(
                conn,
                email=kw.pop("email", f"user{self._n}@example.kg"),
                name=name,
                currency="KGS",
                **kw,
            )

    async def foreign_account(self, currency: str, name: str = "Old Account") -> tuple[int, str]:
        """An account held in `currency`, as a deployment with another TOLEM_CURRENCY once wrote it.

        Written row by row, past the checks `account create` makes today.
        """
        code = generate_code()
        async with self.pool.acquire() as conn, conn.transaction():
            ledger_id = await conn.fetchval(
                "INSERT INTO ledger_accounts (kind, currency, balance_minor) VALUES ('customer', $1, 0) "
                "RETURNING id",
                currency,
            )
            account_id = await conn.fetchval(
                "INSERT INTO accounts (email, name, ledger_account_id) VALUES ('old@example.kg', $1, $2) "
                "RETURNING id",
                name,
                ledger_id,
            )
            await conn.execute(
                "INSERT INTO payers (account_id, payment_code, name, origin) VALUES ($1, $2, $3, 'issued')",
                account_id,
                code,
                name,
            )
        return int(account_id), code

    async def balance(self, account_id: int) -> int:
        """Stored balance of an account, minor units."""
        async with self.pool.acquire() as conn:
            value = await conn.fetchval(
                "SELECT l.balance_minor FROM accounts a JOIN ledger_accounts l "
                "ON l.id = a.ledger_account_id WHERE a.id = $1",
                account_id,
            )
        return int(value)

    async def count(self, sql: str, *args: Any) -> int:
        """A count(*) query's answer."""
        async with self.pool.acquire() as conn:
            return int(await conn.fetchval(sql, *args))

    async def block(self, account_id: int) -> None:
        """Blocks an account."""
        async with self.pool.acquire() as conn:
            await account_db.set_status(conn, account_id, "blocked")


@pytest.fixture
def factory(pool: asyncpg.Pool) -> Factory:
    """Row factory on the test database."""
    return Factory(pool)
