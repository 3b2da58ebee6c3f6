"""The HTTP application: its lifecycle (pool, journal writer, gauges), routes and sub-applications."""

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Final

import asyncpg
from aiohttp import web

from tolem.core.service import PaymentService
from tolem.db.pool import create_pool
from tolem.db.store import PgStore
from tolem.gateway.handler import CONTEXT, JOURNAL, PROVIDERS, gateway
from tolem.gateway.journal_writer import JournalWriter
from tolem.gateway.provider_cache import ProviderCache
from tolem.log import OUTAGE_REPORT_SECONDS, Outage, canonical_log_line, report_pool_outages
from tolem.ops import health, metrics
from tolem.protocols.base import GatewayContext
from tolem.settings import Settings

SETTINGS: Final = web.AppKey("settings", Settings)
POOL: Final = web.AppKey("pool", asyncpg.Pool)
SERVICE: Final = web.AppKey("service", PaymentService)
OUTAGE: Final = web.AppKey("outage", Outage)
# Aggregators send a few hundred bytes; anything near this is not a payment request.
MAX_BODY_BYTES: Final = 64 * 1024

# Pooled connections beyond the gateway's lanes (TOLEM_POOL_SIZE), for everything else.
SIDE_CONNECTIONS: Final = 2


async def _database(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    owned = POOL not in app
    if owned:
        if settings.database_url is None:
            raise RuntimeError("create_app needs settings.database_url (resolve it first)")
        app[POOL] = await create_pool(
            settings.database_url.get_secret_value(),
            size=settings.pool_size + SIDE_CONNECTIONS,
            deadline=settings.request_deadline,
            pooler=settings.database_pooler,
        )
    pool = app[POOL]
    # pool_size connections carry the gateway's statements; the rest of the pool is room for
    # the journal writer, provider reloads, readiness and admin calls.
    store = PgStore(pool, lanes=settings.pool_size if owned else None)
    app[SERVICE] = PaymentService(store, currency=settings.currency, observer=metrics.PrometheusObserver())
    app[CONTEXT] = GatewayContext(service=app[SERVICE], settings=settings)
    app[OUTAGE] = Outage(OUTAGE_REPORT_SECONDS)
    report_pool_outages(app[OUTAGE])
    app[PROVIDERS] = ProviderCache(pool, settings.provider_cache_seconds, app[OUTAGE])
    yield
    report_pool_outages(None)
    await store.close()
    if owned:
        await pool.close()


async def _pool_gauges(app: web.Application) -> AsyncIterator[None]:
    task = asyncio.create_task(metrics.refresh_pool_gauges(app[POOL]), name="tolem-pool-gauges")
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def _journal(app: web.Application) -> AsyncIterator[None]:
    # After _database in cleanup_ctx, so the last rows are written before the pool closes.
    writer = JournalWriter(app[POOL], outage=app[OUTAGE])
    app[JOURNAL] = writer
    writer.start()
    yield
    await writer.close()


def create_app(settings: Settings, *, pool: asyncpg.Pool | None = None) -> web.Application:
    """The application; the pool is created in its lifecycle unless one is given (tests)."""
    # The canonical line is a middleware of the root application, so every request gets it:
    # the sub-applications' (admin, console) and the router's own 404s and 405s included.
    app = web.Application(client_max_size=MAX_BODY_BYTES, middlewares=[canonical_log_line])
    app[SETTINGS] = settings
    if pool is not None:
        app[POOL] = pool
    app.cleanup_ctx.append(_database)
    app.cleanup_ctx.append(_journal)
    app.cleanup_ctx.append(_pool_gauges)
    app.router.add_get("/healthz", health.healthz)
    app.router.add_get("/readyz", health.readyz(settings, lambda: app[POOL]))
    app.router.add_get("/metrics", metrics.metrics_view(lambda: app[POOL]))
    app.router.add_route("GET", "/gw/{provider}", gateway)
    app.router.add_route("POST", "/gw/{provider}", gateway)
    if settings.admin_token is not None:
        # Unset token: nothing is mounted, so /admin/... is an ordinary 404.
        from tolem.admin.api import build_admin_app  # noqa: PLC0415 - only when enabled
        from tolem.admin.routes import PREFIX  # noqa: PLC0415 - likewise

        app.add_subapp(PREFIX, build_admin_app(settings, lambda: app[POOL]))
    if settings.ops_console:
        from tolem.console.app import build_ops_app  # noqa: PLC0415 - templates load only when served

        app.add_subapp("/ops", build_ops_app(settings, lambda: app[POOL]))
    return app
