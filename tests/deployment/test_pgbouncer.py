"""tolem behind PgBouncer in transaction pooling mode: refused without TOLEM_DATABASE_POOLER,
working with it, and bench/deployment.py's chaos runs through it at a reduced size."""

import asyncio
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import pytest
from aiohttp.test_utils import TestClient
from pydantic import SecretStr

from bench.deployment import PGBOUNCER_SCENARIOS, through_pgbouncer
from bench.pgbouncer import PgBouncer
from tests.conftest import Factory
from tests.deployment.conftest import need
from tolem.app import create_app
from tolem.db.pool import create_pool
from tolem.settings import Settings


def _through(bouncer: PgBouncer, database_url: str) -> str:
    return bouncer.dsn(urlsplit(database_url).path.lstrip("/"))


async def test_pgbouncer_refuses_the_default_session_settings(
    pgbouncer: PgBouncer, database_url: str
) -> None:
    """Without the setting tolem's pool cannot log in: PgBouncer refuses its timeout parameters."""
    with pytest.raises(asyncpg.ProtocolViolationError, match="unsupported startup parameter"):
        await create_pool(_through(pgbouncer, database_url), size=1, deadline=2.0)


async def test_pooled_sessions_get_the_timeouts_from_pgbouncer(
    pgbouncer: PgBouncer, database_url: str
) -> None:
    """With the setting the pool logs in, and its server sessions carry the timeouts that
    PgBouncer's connect_query set, in UTC under tolem's application name."""
    pool = await create_pool(_through(pgbouncer, database_url), size=2, deadline=2.0, pooler="pgbouncer")
    try:
        row = await pool.fetchrow(
            "SELECT current_setting('statement_timeout') AS statement,"
            " current_setting('lock_timeout') AS lock, current_setting('TimeZone') AS zone,"
            " current_setting('application_name') AS name"
        )
    finally:
        await pool.close()
    assert dict(row) == {"statement": "1600ms", "lock": "1600ms", "zone": "UTC", "name": "tolem"}


async def test_gateway_pays_once_through_pgbouncer(
    aiohttp_client: Any, pgbouncer: PgBouncer, database_url: str, factory: Factory
) -> None:
    """Concurrent pays and replays over many pooled statements: one credit per txn_id, every
    answer success, every call journalled (COPY through the pooler too), and the transactions
    went through PgBouncer."""
    await factory.provider("kiosk")
    account_id, code = await factory.account()
    settings = Settings(
        database_url=SecretStr(_through(pgbouncer, database_url)),
        database_pooler="pgbouncer",
        provider_cache_seconds=0,
        request_deadline=2.0,
    )
    client: TestClient[Any, Any] = await aiohttp_client(create_app(settings))

    async def pay(txn: int) -> str:
        params = {"command": "pay", "txn_id": str(txn), "account": code, "sum": "10.00"}
        params["txn_date"] = "20261125143000"
        async with client.get("/gw/kiosk", params=params) as response:
            return await response.text()

    answers = await asyncio.gather(*(pay(1000 + n % 25) for n in range(100)))
    # Closing writes the journal's last rows.
    await client.close()
    assert all("<result>0</result>" in answer for answer in answers)
    assert await factory.count("SELECT count(*) FROM request_journal") == 100
    assert await factory.balance(account_id) == 25 * 10_00
    assert await factory.count("SELECT count(*) FROM transfers WHERE code = 'topup'") == 25
    stats = pgbouncer.stats(urlsplit(database_url).path.lstrip("/"))
    assert stats["total_xact_count"] >= 100


@pytest.mark.slow
@pytest.mark.parametrize("scenario", PGBOUNCER_SCENARIOS)
async def test_chaos_through_pgbouncer(scenario: str) -> None:
    """Races, a server crash and a database outage with PgBouncer between tolem and PostgreSQL:
    each acknowledged pay credited once, only "retry" while down, a clean audit."""
    need("pgbouncer")
    (figures,) = await through_pgbouncer(0.1, [scenario], workers=1, protocol="osmp")
    expected = {"races": 40, "crash": 300, "outage": 150}[scenario]
    assert figures.acknowledged == figures.credits == expected, figures
    assert (figures.doubles, figures.lost, figures.wrong_answers, figures.audit_violations) == (0, 0, 0, 0)
    if scenario == "outage":
        assert any("'retry'" in note for note in figures.notes), figures.notes
    passed = next(note for note in figures.notes if note.startswith("PgBouncer passed on"))
    assert int(passed.split()[3]) >= expected, passed
