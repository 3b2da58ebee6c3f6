"""A billing's Standard Webhooks receiver whose weather the billing chaos run sets.

It verifies every signature with the `standardwebhooks` package, dedupes by webhook-id and
applies each event once, as docs/billing.md's receiver does, and counts what it saw. Its weather
is "down" (not listening: connections refused) until `open`, then "unavailable" (503 with
Retry-After), "flapping" (some 500s without applying, some answers slower than the sender
waits, after applying) or "healthy".
"""

import asyncio
import random
from collections import Counter
from typing import Any, Final

from aiohttp import web
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from bench.harness import free_port

# While flapping, the share of deliveries answered 500 (not applied) and slowly (applied).
FLAP_ERRORS: Final = 0.3
FLAP_SLOW: Final = 0.2


class Receiver:
    """A billing's Standard Webhooks endpoint with weather: down, unavailable, flapping, healthy.

    Each dispatcher posts to its own path (/hook/SLOT), so the run knows whose delivery the
    receiver is answering when it kills one.
    """

    def __init__(self, secret: str, *, slow: float) -> None:
        self.port = free_port()
        self.slow = slow  # seconds a slow answer takes
        self.weather = "down"  # refusing connections until `open`
        self._verifier = Webhook(secret)
        self._runner: web.AppRunner | None = None
        self.applied: dict[str, dict[str, Any]] = {}
        self.seen: Counter[str] = Counter()
        self.deliveries = 0
        self.bad_signatures = 0
        self.repeats = 0  # deliveries of an id already applied
        self.answers: Counter[str] = Counter()
        self._answering: dict[int, tuple[int, web.Request]] = {}  # by id(request): slot, request
        self.stalling: asyncio.Queue[int] = asyncio.Queue()  # slots as their slow answers begin

    def url(self, slot: int) -> str:
        """Where dispatcher `slot` delivers."""
        return f"http://127.0.0.1:{self.port}/hook/{slot}"

    async def open(self) -> None:
        """Starts listening: from now on requests are answered as the weather says."""
        app = web.Application()
        app.router.add_post("/hook/{slot}", self.handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def close(self) -> None:
        """Stops listening."""
        if self._runner is not None:
            await self._runner.cleanup()

    def busy(self) -> list[int]:
        """Slots whose dispatcher is still connected, waiting for an answer."""
        answering = self._answering.values()
        return sorted({slot for slot, r in answering if r.transport and not r.transport.is_closing()})

    async def handle(self, request: web.Request) -> web.Response:
        """Counts the delivery and answers it."""
        self.deliveries += 1
        slot = int(request.match_info["slot"])
        self._answering[id(request)] = (slot, request)
        try:
            status = await self._answer(request, slot)
        finally:
            del self._answering[id(request)]
        self.answers[str(status)] += 1
        return web.Response(status=status, headers={"Retry-After": "1"} if status == 503 else None)

    async def _answer(self, request: web.Request, slot: int) -> int:
        body = await request.read()
        try:
            document = self._verifier.verify(body, dict(request.headers))
        except WebhookVerificationError:
            self.bad_signatures += 1
            return 401
        event_id = request.headers["webhook-id"]
        self.seen[event_id] += 1
        if self.weather == "unavailable":
            return 503
        roll = random.random() if self.weather == "flapping" else 1.0
        if roll < FLAP_ERRORS:
            return 500
        # A repeat of an applied id is acknowledged, not applied again.
        if event_id in self.applied:
            self.repeats += 1
        else:
            self.applied[event_id] = document
        if roll < FLAP_ERRORS + FLAP_SLOW:
            self.answers["slow"] += 1
            self.stalling.put_nowait(slot)
            await asyncio.sleep(self.slow)  # applied, but the answer comes after the sender gave up
        return 204
