"""/healthz and /readyz: what a load balancer asks before sending an instance calls."""

import asyncio
from collections.abc import Callable

import asyncpg
from aiohttp import web
from aiohttp.typedefs import Handler

from tolem.db import migrate
from tolem.db.pool import NO_WRITABLE_HOST
from tolem.settings import Settings


async def healthz(_request: web.Request) -> web.Response:
    """The process is up."""
    return web.json_response({"status": "ok"})


def readyz(settings: Settings, pool: Callable[[], asyncpg.Pool]) -> Handler:
    """The /readyz handler over the application's pool (created in its lifecycle, hence `pool()`)."""

    async def view(_request: web.Request) -> web.Response:
        """The database answers and the schema is current."""
        try:
            async with asyncio.timeout(settings.request_deadline):
                async with pool().acquire() as conn:
                    todo = await migrate.pending(conn)
        except (
            asyncpg.PostgresError,
            asyncpg.InterfaceError,
            OSError,
            TimeoutError,
            NO_WRITABLE_HOST,
            migrate.MigrationError,
        ) as exc:
            return web.json_response({"status": "unavailable", "error": type(exc).__name__}, status=503)
        if todo:
            return web.json_response(
                {"status": "migrations pending", "pending": [m.label for m in todo]},
                status=503,
            )
        return web.json_response({"status": "ready"})

    return view
