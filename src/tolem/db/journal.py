"""The request journal in SQL: batch insert, search, and archive-by-date."""

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

import asyncpg
import orjson

from tolem.core.payment_codes import mask

# What a batch writes, in this order. The batch goes as one binary COPY: it costs less than an
# INSERT over unnest() of thirteen arrays, both in this process and in the database.
_WRITTEN: Final = (
    "received_at",
    "provider",
    "remote_addr",
    "method",
    "command",
    "txn",
    "code_masked",
    "result",
    "http_status",
    "response_body",
    "duration_us",
    "request_id",
    "details",
)

_COLUMNS: Final = (
    "id, received_at, provider, host(remote_addr) AS remote_addr, method, command, txn, code_masked, "
    "result, http_status, response_body, duration_us, request_id, details"
)


@dataclass(frozen=True, slots=True)
class JournalEntry:
    """One gateway call and our answer, already stripped of anything secret."""

    received_at: datetime
    provider: str
    remote_addr: str | None
    method: str
    command: str
    txn: str | None
    code_masked: str | None
    result: str | None
    http_status: int
    response_body: str | None
    duration_us: int
    request_id: str | None
    details: dict[str, Any]


@dataclass(frozen=True, slots=True)
class JournalRow(JournalEntry):
    """A stored journal row: the entry and the id the database gave it."""

    id: int


@dataclass(frozen=True, slots=True)
class JournalFilter:
    """What `tolem journal` and GET /admin/journal narrow by; every field optional.

    `code` is a full (normalized) payment code. Only its masked form is stored, so rows are
    matched on that, minus the rows whose transaction became a payment to another code: what
    is left are this code's calls and calls that paid nothing (checks, refusals) for codes that
    merely end the same way.
    """

    provider: str | None = None
    txn: str | None = None
    code: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    before_id: int | None = None


def _json_text(details: dict[str, Any]) -> str:
    # orjson is a fifteenth of json.dumps' cost per row; it refuses only integers beyond 64 bits,
    # which the standard encoder still writes.
    try:
        return orjson.dumps(details).decode()
    except TypeError:
        return json.dumps(details, ensure_ascii=False)


async def insert_many(conn: asyncpg.Connection | asyncpg.Pool, entries: Sequence[JournalEntry]) -> None:
    """Writes a batch of entries in one statement."""
    if not entries:
        return
    await conn.copy_records_to_table(
        "request_journal",
        columns=_WRITTEN,
        records=[
            (
                e.received_at,
                e.provider,
                e.remote_addr,
                e.method,
                e.command,
                e.txn,
                e.code_masked,
                e.result,
                e.http_status,
                e.response_body,
                e.duration_us,
                e.request_id,
                _json_text(e.details),
            )
            for e in entries
        ],
    )


def _row(record: Any) -> JournalRow:
    values = dict(record.items())
    details = values["details"]
    values["details"] = json.loads(details) if isinstance(details, str) else details
    return JournalRow(**values)


async def search(
    conn: asyncpg.Connection | asyncpg.Pool,
    where: JournalFilter,
    *,
    limit: int,
) -> list[JournalRow]:
    """Matching rows, newest first; page on with before_id = the last row's id."""
    rows = await conn.fetch(
        f"""SELECT {_COLUMNS} FROM request_journal j
             WHERE ($1::text IS NULL OR provider = $1)
               AND ($2::text IS NULL OR txn = $2)
               AND ($3::text IS NULL OR (
                     code_masked = $8
                     AND NOT EXISTS (
                         SELECT 1 FROM payments p
                           JOIN providers pr ON pr.id = p.provider_id
                           JOIN payers py ON py.id = p.payer_id
                          WHERE pr.name = j.provider AND p.external_id = j.txn
                            AND py.payment_code <> $3)))
               AND ($4::timestamptz IS NULL OR received_at >= $4)
               AND ($5::timestamptz IS NULL OR received_at < $5)
               AND ($6::bigint IS NULL OR id < $6)
             ORDER BY id DESC LIMIT $7""",
        where.provider,
        where.txn,
        where.code,
        where.since,
        where.until,
        where.before_id,
        limit,
        None if where.code is None else mask(where.code),
    )
    return [_row(r) for r in rows]


class ArchiveMismatch(RuntimeError):
    """The rows deleted were not exactly the rows written out; nothing was deleted."""


async def archive(
    conn: asyncpg.Connection,
    before: datetime,
    write: Callable[[JournalRow], None],
    sync: Callable[[], None],
    *,
    chunk: int = 1000,
) -> int:
    """Hands every row received before `before` to `write`, oldest first, then deletes them.

    One repeatable-read transaction: the delete sees exactly the snapshot that was written, so
    a row committed meanwhile stays; if the counts differ nothing is deleted. `sync` runs after
    the last row is written and before the delete commits: it must make the copy durable.
    """
    async with conn.transaction(isolation="repeatable_read"):
        await conn.execute("SET LOCAL tolem.journal_archive = 'on'")
        written = 0
        last_id = 0
        async for record in conn.cursor(
            f"SELECT {_COLUMNS} FROM request_journal WHERE received_at < $1 ORDER BY id",
            before,
            prefetch=chunk,
        ):
            row = _row(record)
            write(row)
            written += 1
            last_id = row.id
        if written == 0:
            return 0
        sync()
        deleted = await conn.execute(
            "DELETE FROM request_journal WHERE received_at < $1 AND id <= $2",
            before,
            last_id,
        )
        if deleted != f"DELETE {written}":
            raise ArchiveMismatch(f"wrote {written} rows but the delete reported {deleted!r}")
    return written
