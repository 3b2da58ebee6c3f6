"""Voids Payme reservations older than 12 hours that nobody performs or cancels any more.

PerformTransaction and a repeated CreateTransaction already apply the 12-hour rule to the
transaction they touch; the sweep makes CheckTransaction and GetStatement show the others as
cancelled by timeout (state -1, reason 4) too. Each batch is one short transaction of at most
`batch` rows taken with SKIP LOCKED, so any number of sweepers (one per host, or cron runs that
overlap) may run at once: they share the work and each row is voided once. `tolem sweep` runs it.
"""

import asyncio
from collections.abc import Callable
from datetime import datetime
from typing import Final

import asyncpg
import structlog

from tolem.core import errors
from tolem.core.model import Provider, WireProtocol
from tolem.core.service import PaymentService
from tolem.db import providers as provider_db
from tolem.db.pool import create_pool
from tolem.db.store import PgStore
from tolem.protocols.payme.adapter import TRANSACTION_TIMEOUT, utc_now
from tolem.protocols.payme.codes import REASON_TIMEOUT
from tolem.settings import Settings

# A batch locks this many rows for a few milliseconds; small enough never to hold up a perform.
DEFAULT_BATCH: Final = 500
# A pass stops after this many full batches even if more are stale (the next pass goes on), so
# one pass is bounded in time however large a backlog is.
MAX_BATCHES_PER_PASS: Final = 200

_log = structlog.get_logger("tolem.payme.sweep")


async def sweep_provider(
    service: PaymentService,
    provider: Provider,
    now: datetime,
    *,
    batch: int = DEFAULT_BATCH,
    max_batches: int = MAX_BATCHES_PER_PASS,
) -> int:
    """Voids the provider's reservations whose Payme time is over 12 h before `now`; how many."""
    before = now - TRANSACTION_TIMEOUT
    total = 0
    for _ in range(max_batches):
        voided = await service.expire_reservations(
            provider, before=before, reason=REASON_TIMEOUT, limit=batch
        )
        total += voided
        if voided < batch:
            break
    return total


async def sweep_once(
    pool: asyncpg.Pool,
    *,
    now: Callable[[], datetime] = utc_now,
    batch: int = DEFAULT_BATCH,
) -> dict[str, int]:
    """One pass over every Payme provider (disabled ones too: their reservations expire as well)."""
    service = PaymentService(PgStore(pool))
    providers = await provider_db.load_all(pool)
    voided: dict[str, int] = {}
    for provider in providers.values():
        if provider.protocol is not WireProtocol.PAYME:
            continue
        voided[provider.name] = await sweep_provider(service, provider, now(), batch=batch)
    return voided


async def run(settings: Settings, *, once: bool, interval: float, batch: int = DEFAULT_BATCH) -> int:
    """Sweeps once, or every `interval` seconds until cancelled; a failed pass is retried later."""
    assert settings.database_url is not None
    dsn = settings.database_url.get_secret_value()
    pool = await create_pool(dsn, size=2, deadline=settings.request_deadline, pooler=settings.database_pooler)
    try:
        while True:
            try:
                voided = await sweep_once(pool, batch=batch)
                _log.info("payme_sweep", voided=voided)
            except (errors.TemporarilyUnavailable, asyncpg.PostgresError, OSError) as exc:
                _log.warning("payme_sweep_failed", error=type(exc).__name__)
                if once:
                    return 1
            if once:
                return 0
            await asyncio.sleep(interval)
    finally:
        await pool.close()
