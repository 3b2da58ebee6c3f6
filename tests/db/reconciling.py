"""What the registry and discrepancy tests share: QIWI registries written out, imported as
`tolem reconcile` does, and payments stamped by the aggregator."""

import hashlib
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg

from tolem.core.model import PayCommand, Provider
from tolem.core.service import PaymentService
from tolem.db import registries as registry_db
from tolem.reconcile import formats

BISHKEK = "Asia/Bishkek"
DAY = date(2026, 11, 25)


def at(day: int, hour: int, minute: int = 0, second: int = 0, zone: str = BISHKEK) -> datetime:
    """A local time of November 2026 in `zone`."""
    return datetime(2026, 11, day, hour, minute, second, tzinfo=ZoneInfo(zone))


def registry(*rows: tuple[str, datetime, str, str], zone: str = BISHKEK) -> bytes:
    """A QIWI registry of (txn, local time, code, sum) rows with a correct Total line."""
    tz = ZoneInfo(zone)
    lines = [
        f"{txn}\t{when.astimezone(tz):%d.%m.%Y\t%H:%M:%S}\t{code}\t{amount}"
        for txn, when, code, amount in rows
    ]
    total = sum(int(a.replace(".", "")) for *_, a in rows)
    return ("\n".join([*lines, f"Total: {len(rows)} {total // 100}.{total % 100:02d}"]) + "\n").encode()


async def reconcile(
    pool: asyncpg.Pool,
    provider: Provider,
    data: bytes,
    *,
    day: date = DAY,
    zone: str = BISHKEK,
    supersede: bool = False,
) -> registry_db.Reconciliation:
    """Parses and imports a QIWI registry as `tolem reconcile` does."""
    parsed = formats.parse(
        data, formats.Format.QIWI, zone=ZoneInfo(zone), key=formats.txn_key(provider.protocol)
    )
    async with pool.acquire() as conn:
        return await registry_db.import_registry(
            conn,
            provider=provider,
            day=day,
            zone=zone,
            parsed=parsed,
            file_name="registry.txt",
            sha256=hashlib.sha256(data).hexdigest(),
            imported_by="alice",
            supersede=supersede,
        )


def kinds(done: registry_db.Reconciliation) -> set[tuple[str, str]]:
    """(kind, txn) of every difference."""
    return {(d.kind, d.txn) for d in done.differences}


async def pay(
    service: PaymentService, provider: Provider, txn: str, code: str, amount: int, when: datetime
) -> int:
    """Credits a payment stamped `when` by the aggregator; its id."""
    result = await service.pay(
        provider, PayCommand(txn, code, amount, provider_time=when, provider_time_raw="t")
    )
    return result.payment.id


async def rows(pool: asyncpg.Pool, sql: str, *args: Any) -> list[asyncpg.Record]:
    """The rows of a query."""
    async with pool.acquire() as conn:
        return list(await conn.fetch(sql, *args))
