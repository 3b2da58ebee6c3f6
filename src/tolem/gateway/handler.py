"""The /gw/{provider} handler: each aggregator call dispatched to its protocol's adapter."""

import asyncio
import time
from datetime import UTC, datetime
from typing import Final

import structlog
from aiohttp import web

from tolem.core.errors import TemporarilyUnavailable
from tolem.core.model import Provider
from tolem.gateway.journal import entry_for
from tolem.gateway.journal_writer import JournalWriter
from tolem.gateway.provider_cache import ProviderCache
from tolem.log import LOG_LINE, REQUEST_ID, LogLine
from tolem.ops import metrics
from tolem.protocols.auth import client_ip
from tolem.protocols.base import GatewayContext
from tolem.protocols.registry import ADAPTERS

# Set up by tolem.app's lifecycle before the first call.
PROVIDERS: Final = web.AppKey("providers", ProviderCache)
CONTEXT: Final = web.AppKey("context", GatewayContext)
JOURNAL: Final = web.AppKey("journal", JournalWriter)

_log = structlog.get_logger("tolem.gateway")


def _record_call(
    request: web.Request,
    provider: Provider,
    *,
    line: LogLine,
    response: web.StreamResponse,
    received_at: datetime,
    started: float,
) -> None:
    """Hands the finished call to the journal writer (memory only: no round trip)."""
    try:
        address = client_ip(request, request.app[CONTEXT].settings.trusted_proxies)
        entry = entry_for(
            provider=provider.name,
            method=request.method,
            remote_addr=None if address is None else str(address),
            received_at=received_at,
            duration_s=time.perf_counter() - started,
            line=line,
            response=response,
            request_id=request.get(REQUEST_ID),
        )
    except Exception:  # noqa: BLE001 - the answer (maybe for a committed credit) must still go out
        metrics.JOURNAL_DROPPED.inc()
        _log.exception("journal_entry_failed", provider=provider.name)
        return
    request.app[JOURNAL].record(entry)


async def gateway(request: web.Request) -> web.StreamResponse:
    """Every aggregator call: find the provider, hand the request to its protocol's adapter.

    The whole call, reading the body included, runs under the request deadline; past it, or
    on anything unexpected, the adapter's "retry later" answer goes out. The core commits
    before it returns, so such an answer is never given for a credit we have confirmed.
    """
    name = request.match_info["provider"]
    try:
        provider = await request.app[PROVIDERS].get(name)
    except TemporarilyUnavailable:
        # Without configuration we cannot even tell which protocol to answer in.
        return web.Response(status=503, text="temporarily unavailable\n")
    adapter = ADAPTERS.get(provider.protocol) if provider is not None else None
    if provider is None or adapter is None or not provider.enabled:
        raise web.HTTPNotFound(text="unknown provider\n")
    line = request[LOG_LINE]
    line["provider"] = provider.name
    context = request.app[CONTEXT]
    received_at = datetime.now(UTC)
    started = time.perf_counter()
    try:
        async with asyncio.timeout(context.settings.request_deadline):
            response = await adapter.handle(request, provider, context, line)
    except web.HTTPException as exc:
        _record_call(request, provider, line=line, response=exc, received_at=received_at, started=started)
        raise
    except TimeoutError:
        line.update({"error": "deadline", "result": line.get("result", "temporary")})
        response = adapter.temporary_error(request, provider)
    except Exception as exc:  # noqa: BLE001 - last resort: the aggregator must retry, not fail
        _log.exception("gateway_unexpected_error", provider=provider.name)
        line.update({"error": type(exc).__name__})
        response = adapter.temporary_error(request, provider)
    metrics.observe_gateway(
        provider.name,
        str(line.get("command", "unknown")),
        str(line.get("result", "")),
        time.perf_counter() - started,
    )
    _record_call(request, provider, line=line, response=response, received_at=received_at, started=started)
    return response
