"""Voids Payme reservations older than 12 hours that nobody performs or cancels any more.

PerformTransaction and a repeated CreateTransaction already apply the 12-hour rule to the
transaction they touch; the sweep makes CheckTransaction and GetStatement show the others as
cancelled by timeout (state -1, reason 4) too. Each batch is one short transaction of at most
`batch` rows taken with SKIP LOCKED, so any number of sweepers (one per host, or cron runs that
overlap) may run at once: they share the work and each row is voided once.

    python -m tolem.protocols.payme.sweep            # every 60 s until stopped
    python -m tolem.protocols.payme.sweep --once     # one pass, e.g. from cron
"""

import argparse
import asyncio
import sys
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Final

import asyncpg
import structlog

from tolem.core import errors
from tolem.core.model import Protocol, Provider
from tolem.core.service import PaymentService
from tolem.database import resolve_database
from tolem.db import migrate
from tolem.db import providers as provider_db
from tolem.db.pool import connect_options, create_pool
from tolem.db.store import PgStore
from tolem.log import configure_logging
from tolem.protocols.payme.adapter import TRANSACTION_TIMEOUT, utc_now
from tolem.protocols.payme.codes import REASON_TIMEOUT
from tolem.settings import Settings

# A batch locks this many rows for a few milliseconds; small enough never to hold up a perform.
DEFAULT_BATCH: Final = 500
# A pass stops after this many full batches even if more are stale (the next pass goes on), so
# one pass is bounded in time however large a backlog is.
MAX_BATCHES_PER_PASS: Final = 200
DEFAULT_INTERVAL: Final = 60.0

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
        if provider.protocol is not Protocol.PAYME:
            continue
        voided[provider.name] = await sweep_provider(service, provider, now(), batch=batch)
    return voided


async def run(settings: Settings, *, once: bool, interval: float, batch: int) -> int:
    """Sweeps once, or every `interval` seconds until cancelled; a failed pass is retried later."""
    assert settings.database_url is not None
    dsn = settings.database_url.get_secret_value()
    conn = await asyncpg.connect(dsn, **connect_options(settings.database_pooler))
    try:
        pending = await migrate.pending(conn)
    finally:
        await conn.close()
    if pending:
        print("tolem: error: migrations pending; run `tolem migrate` first", file=sys.stderr)
        return 1
    pool = await create_pool(
        dsn, size=2, deadline=settings.request_deadline, pooler=settings.database_pooler
    )
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


def _positive(kind: type[int] | type[float]) -> Callable[[str], float]:
    def parse(text: str) -> float:
        value = kind(text)
        if value <= 0:
            raise argparse.ArgumentTypeError("must be positive")
        return value

    return parse


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `python -m tolem.protocols.payme.sweep`."""
    parser = argparse.ArgumentParser(prog="python -m tolem.protocols.payme.sweep", description=__doc__)
    parser.add_argument("--once", action="store_true", help="one pass, then exit")
    parser.add_argument("--interval", type=_positive(float), default=DEFAULT_INTERVAL, help="seconds")
    parser.add_argument("--batch", type=_positive(int), default=DEFAULT_BATCH, help="rows per batch")
    args = parser.parse_args(argv)
    settings = Settings()
    configure_logging(
        json=None if settings.log_format is None else settings.log_format == "json",
        level=settings.log_level,
    )
    settings = resolve_database(settings)
    try:
        return asyncio.run(run(settings, once=args.once, interval=args.interval, batch=int(args.batch)))
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    raise SystemExit(main())
