"""The login throttle in the database: one lock order, exact counts under real concurrent commits."""

import asyncio
from datetime import timedelta

import asyncpg

from tolem.db import operators as operator_db
from tolem.db.operators import ThrottlePolicy

POLICY = ThrottlePolicy(
    name_limit=5,
    address_limit=20,
    quiet=timedelta(hours=1),
    base=timedelta(seconds=30),
    cap=timedelta(minutes=15),
)


async def test_parallel_claims_get_exactly_the_limit(database_url: str) -> None:
    """Forty claims for one name from forty connections at once: exactly five may check a password."""
    conns = [await asyncpg.connect(database_url) for _ in range(40)]
    try:
        results = await asyncio.gather(
            *(operator_db.claim_login_attempt(c, "anna", f"10.0.0.{n}", POLICY) for n, c in enumerate(conns))
        )
    finally:
        await asyncio.gather(*(c.close() for c in conns))
    assert sum(r is None for r in results) == POLICY.name_limit
    conn = await asyncpg.connect(database_url)
    try:
        row = await conn.fetchrow(
            "SELECT failures, locked_until > now() AS locked "
            "FROM operator_login_throttles WHERE scope = 'operator'"
        )
    finally:
        await conn.close()
    assert row["failures"] == POLICY.name_limit and row["locked"]


async def test_names_and_addresses_in_both_orders_never_deadlock(database_url: str) -> None:
    """Claims crossing the same names and addresses in every combination all finish (no deadlock)."""
    conns = [await asyncpg.connect(database_url) for _ in range(24)]
    try:
        claims = [
            operator_db.claim_login_attempt(c, f"name{n % 3}", f"10.0.0.{n % 4}", POLICY)
            for n, c in enumerate(conns)
        ]
        results = await asyncio.wait_for(asyncio.gather(*claims), timeout=30)
    finally:
        await asyncio.gather(*(c.close() for c in conns))
    assert len(results) == 24
    assert sum(r is None for r in results) == 15  # three names, five tries each


async def test_lockout_is_capped(pool: asyncpg.Pool) -> None:
    """However many lockouts followed each other, one lasts at most fifteen minutes."""
    await pool.execute(
        "INSERT INTO operator_login_throttles (scope, key, failures, last_attempt_at) "
        "VALUES ('operator', 'anna', 400, now())"
    )
    assert await operator_db.claim_login_attempt(pool, "anna", "10.0.0.1", POLICY) is None
    lockout = await pool.fetchval(
        "SELECT locked_until - last_attempt_at FROM operator_login_throttles WHERE scope = 'operator'"
    )
    assert lockout == timedelta(minutes=15)


async def test_a_quiet_hour_forgets_the_count(pool: asyncpg.Pool) -> None:
    """Four old failures followed by an hour of quiet: the next failure counts as the first."""
    await pool.execute(
        "INSERT INTO operator_login_throttles (scope, key, failures, last_attempt_at) "
        "VALUES ('operator', 'anna', 4, now() - interval '61 minutes')"
    )
    assert await operator_db.claim_login_attempt(pool, "anna", "10.0.0.1", POLICY) is None
    assert await pool.fetchval("SELECT failures FROM operator_login_throttles WHERE scope = 'operator'") == 1
