"""The serving pool's own inet codec: the same values in and out as asyncpg's built-in one."""

import ipaddress
from datetime import UTC, datetime

import asyncpg

from tolem.db import codecs
from tolem.db import journal as journal_db
from tolem.db.journal import JournalEntry
from tolem.db.pool import create_pool

ADDRESSES = ["127.0.0.1", "203.0.113.7", "::1", "2001:db8::42", "10.1.2.3/8", "2001:db8::1/64"]


async def test_inet_codec_matches_the_default_both_ways(database_url: str) -> None:
    """Text and ipaddress values encode to what the server reads from asyncpg's encoder, and
    stored values decode to the same objects asyncpg's decoder gives."""
    codecs._inet_wire.cache_clear()  # to see below that the pool's connections used it
    plain = await asyncpg.connect(database_url)
    pool = await create_pool(database_url, size=1, deadline=2.0)
    try:
        async with pool.acquire() as conn:
            for text in ADDRESSES:
                for value in (text, ipaddress.ip_interface(text)):
                    ours = await conn.fetchrow("SELECT $1::inet::text AS t, $1::inet AS v", value)
                    theirs = await plain.fetchrow("SELECT $1::inet::text AS t, $1::inet AS v", value)
                    assert (ours["t"], ours["v"]) == (theirs["t"], theirs["v"]), text
                    assert type(ours["v"]) is type(theirs["v"]), text
            assert codecs._inet_wire.cache_info().currsize >= len(ADDRESSES)
            # NULL never reaches a codec, and a bad address is refused before the server sees it.
            assert await conn.fetchval("SELECT $1::inet", None) is None
            refused = None
            try:
                await conn.fetchval("SELECT $1::inet", "not an address")
            except (ValueError, asyncpg.DataError) as exc:
                refused = exc
            assert refused is not None
    finally:
        await pool.close()
        await plain.close()


async def test_journal_copy_stores_the_address_through_the_codec(database_url: str) -> None:
    """A journal batch written on a pooled connection stores the caller's address intact."""
    pool = await create_pool(database_url, size=1, deadline=2.0)
    try:
        async with pool.acquire() as conn:
            entries = [
                JournalEntry(
                    received_at=datetime.now(UTC),
                    provider="kiosk",
                    remote_addr=address,
                    method="GET",
                    command="check",
                    txn=str(n),
                    code_masked=None,
                    result="0",
                    http_status=200,
                    response_body="<response/>",
                    duration_us=10,
                    request_id=None,
                    details={},
                )
                for n, address in enumerate(["203.0.113.7", "2001:db8::42", None])
            ]
            await journal_db.insert_many(conn, entries)
            stored = await conn.fetch("SELECT host(remote_addr) AS h FROM request_journal ORDER BY txn")
        assert [row["h"] for row in stored] == ["203.0.113.7", "2001:db8::42", None]
    finally:
        await pool.close()
