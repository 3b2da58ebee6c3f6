"""What the three sinks share: one lazily opened HTTP session, and failures turned into Retry.

The session is opened on the first delivery because aiohttp binds it to the running event loop,
and the dispatcher builds its sink before that loop exists.
"""

import asyncio
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Final

import aiohttp

from tolem.billing.sink import Retry

# Reasons end up in the events list and the dispatcher's log line: short, and never an answer body.
_REASON_LIMIT: Final = 200
# However long a receiver asks us to wait, the dispatcher's own backoff takes over after this.
_MAX_RETRY_AFTER: Final = 3600.0


class Client:
    """An aiohttp session with one total timeout per request, opened on first use."""

    def __init__(self, timeout: float) -> None:
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None

    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self._timeout, raise_for_status=False)
        return self._session

    async def close(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()
        self._session = None


# What a request that got no usable answer can raise: the receiver may or may not have acted.
TRANSPORT_ERRORS: Final = (aiohttp.ClientError, asyncio.TimeoutError, OSError)


def unreachable(receiver: str, exc: BaseException) -> Retry:
    """A connection refused, reset or timed out: no answer, so nothing is known and we retry."""
    kind = "timed out" if isinstance(exc, asyncio.TimeoutError) else type(exc).__name__
    return Retry(f"{receiver} unreachable: {kind}")


def retry_after(header: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date); None when absent or unreadable."""
    if not header:
        return None
    text = header.strip()
    if text.isdigit():
        return min(float(text), _MAX_RETRY_AFTER)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    delta = (when - (now or datetime.now(UTC))).total_seconds()
    return min(max(delta, 0.0), _MAX_RETRY_AFTER)


def short(text: str, *secrets: str) -> str:
    """A receiver's message fit for a reason: one line, bounded, with our own secrets blanked out."""
    line = " ".join(text.split())
    for secret in secrets:
        if secret:
            line = line.replace(secret, "***")
    return line[:_REASON_LIMIT]
