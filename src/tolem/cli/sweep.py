"""`tolem sweep`: voids Payme reservations that outlived their 12-hour limit."""

import argparse
import asyncio
import contextlib
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Final

import asyncpg
import structlog

from tolem.cli.common import Commands, Parser, connected
from tolem.core import errors
from tolem.core.model import WireProtocol
from tolem.core.service import PaymentService
from tolem.db import providers as provider_db
from tolem.db.pool import create_pool
from tolem.db.store import PgStore
from tolem.protocols.payme.sweep import DEFAULT_BATCH, sweep_provider
from tolem.settings import Settings

_DEFAULT_INTERVAL: Final = 60.0

_log = structlog.get_logger("tolem.payme.sweep")


def _positive(kind: type[int] | type[float]) -> Callable[[str], float]:
    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from exc
        if value <= 0:
            raise argparse.ArgumentTypeError("must be positive")
        return value

    return parse


def _utc_now() -> datetime:
    return datetime.now(UTC)


async def sweep_once(
    pool: asyncpg.Pool,
    *,
    now: Callable[[], datetime] = _utc_now,
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


async def cmd_sweep(args: argparse.Namespace, settings: Settings) -> int:
    """Sweeps once, or every --interval seconds until stopped."""
    async with connected(settings):
        pass  # refuses to run while migrations are pending
    with contextlib.suppress(KeyboardInterrupt):
        batch = {} if args.batch is None else {"batch": int(args.batch)}
        return await run(settings, once=args.once, interval=args.interval, **batch)
    return 0


def register(commands: Commands, common: Parser) -> None:
    """`tolem sweep [--once] [--interval S] [--batch N]`."""
    parser = commands.add_parser(
        "sweep",
        parents=[common],
        help="void Payme reservations past their 12-hour limit (a long-running service, or --once from cron)",
        description=(
            "Voids Payme reservations nobody performed or cancelled within 12 hours, so that "
            "CheckTransaction and GetStatement show them cancelled (state -1, reason 4). Any number "
            "of sweepers may run at once; each reservation is voided once."
        ),
    )
    parser.add_argument("--once", action="store_true", help="one pass, then exit (for cron)")
    parser.add_argument(
        "--interval",
        type=_positive(float),
        default=_DEFAULT_INTERVAL,
        help=f"seconds between passes (default {_DEFAULT_INTERVAL:g})",
    )
    parser.add_argument(
        "--batch",
        type=_positive(int),
        help=f"rows voided per short transaction (default {DEFAULT_BATCH})",
    )
    parser.set_defaults(run=cmd_sweep)
