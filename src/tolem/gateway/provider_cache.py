"""The providers' configuration as the gateway reads it: from memory, reloaded when stale."""

import asyncio
import time

import asyncpg

from tolem.core.errors import TemporarilyUnavailable
from tolem.core.model import Provider
from tolem.db import providers as provider_db
from tolem.db.pool import NO_WRITABLE_HOST
from tolem.log import Outage


class ProviderCache:
    """Provider configuration, reloaded when older than the configured staleness.

    Reading it per request would cost a round trip on every call; a change (disable, limits)
    takes effect within `ttl` seconds. The database re-checks enabled and limits on every pay.
    """

    def __init__(self, pool: asyncpg.Pool, ttl: float, outage: Outage) -> None:
        self._pool = pool
        self._outage = outage
        self._ttl = ttl
        self._loaded_at = float("-inf")
        self._providers: dict[str, Provider] | None = None
        self._lock = asyncio.Lock()

    async def get(self, name: str) -> Provider | None:
        """The provider, or None; raises TemporarilyUnavailable only with nothing cached."""
        if time.monotonic() - self._loaded_at >= self._ttl:
            await self._reload()
        assert self._providers is not None
        return self._providers.get(name)

    async def _reload(self) -> None:
        async with self._lock:
            if time.monotonic() - self._loaded_at < self._ttl:
                return
            try:
                self._providers = await provider_db.load_all(self._pool)
                self._loaded_at = time.monotonic()
            except (
                asyncpg.PostgresError,
                asyncpg.InterfaceError,
                OSError,
                TimeoutError,
                NO_WRITABLE_HOST,
            ) as exc:
                self._outage.failed("providers", exc)
                if self._providers is None:
                    raise TemporarilyUnavailable("provider configuration unavailable") from exc
                # Serving a slightly stale configuration beats refusing every aggregator.
                return
            self._outage.recovered()
