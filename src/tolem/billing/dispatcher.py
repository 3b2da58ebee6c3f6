"""The dispatcher: takes outbox events under a lease and hands each to the billing's sink.

Each round claims a batch (one event per account at most, so an account's events arrive in
order), delivers them side by side up to a bound, and settles each attempt in its own short
statement. Nothing is held open while a receiver answers. Any number of dispatchers may run
over the same database: the claim's SKIP LOCKED and the lease keep them apart, and a sink that
deduplicates by event id makes an event taken over after a lost lease harmless.

It wakes by polling every POLL_SECONDS (and at once again after a full batch) rather than by
LISTEN/NOTIFY: a NOTIFY in the pay transaction would take PostgreSQL's notification queue lock
at every commit, queueing concurrent pays behind one another, to save at most a quarter of a
second of delivery delay.
"""

import asyncio
import contextlib
import importlib
import threading
import time
from collections.abc import Callable
from typing import Any, Final

import asyncpg
import structlog

from tolem.billing.sink import Delivered, Outcome, Progress, Retry, Sink
from tolem.core.payment_codes import mask
from tolem.db import outbox
from tolem.db.pool import create_pool
from tolem.ops import metrics
from tolem.settings import Settings

DEFAULT_BATCH: Final = 50
DEFAULT_CONCURRENCY: Final = 8
# Longer than any sink's own timeouts: a lease that runs out while the receiver is still
# answering lets a second dispatcher send the same event (deduplicated by its id, but wasted).
DEFAULT_LEASE_SECONDS: Final = 120.0
POLL_SECONDS: Final = 0.25
# After a failed round (database away) the next one waits this long.
ERROR_PAUSE_SECONDS: Final = 2.0

_log = structlog.get_logger("tolem.billing.dispatcher")


class NoSink(Exception):
    """No billing receiver is configured (or none is built into this installation)."""


def open_sink(settings: Settings) -> Sink:
    """The configured billing sink; raises NoSink when there is none."""
    try:
        sinks = importlib.import_module("tolem.billing.sinks")
    except ImportError as exc:
        raise NoSink("this installation has no billing sinks (tolem.billing.sinks)") from exc
    sink: Sink | None = sinks.from_settings(settings)
    if sink is None:
        raise NoSink("no billing receiver is configured (docs/billing.md)")
    return sink


def _outcome_name(outcome: Outcome) -> str:
    return type(outcome).__name__.lower()


def _reason(outcome: Outcome) -> str | None:
    if isinstance(outcome, Delivered):
        return outcome.detail or None
    return outcome.reason


class Dispatcher:
    """Delivers the outbox through one sink until stopped."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        sink: Sink,
        *,
        give_up_hours: float,
        batch: int = DEFAULT_BATCH,
        concurrency: int = DEFAULT_CONCURRENCY,
        lease_seconds: float = DEFAULT_LEASE_SECONDS,
        poll_seconds: float = POLL_SECONDS,
    ) -> None:
        self._pool = pool
        self._sink = sink
        self._give_up_seconds = give_up_hours * 3600
        self._batch = batch
        self._lease_seconds = lease_seconds
        self._poll_seconds = poll_seconds
        self._slots = asyncio.Semaphore(concurrency)

    async def round(self) -> int:
        """One claim and the delivery of everything claimed; how many events were claimed."""
        claimed = await outbox.claim(
            self._pool, limit=self._batch, lease_seconds=self._lease_seconds, sink=self._sink.name
        )
        if claimed:
            # The lease runs from the claim, so waiting for a slot spends it too.
            deadline = asyncio.get_running_loop().time() + self._lease_seconds * 0.8
            await asyncio.gather(*(self._deliver(c, deadline) for c in claimed))
        return len(claimed)

    async def run(self, stop: asyncio.Event) -> None:
        """Rounds until `stop` is set; a failed round is logged and tried again later."""
        while not stop.is_set():
            pause = self._poll_seconds
            try:
                if await self.round() >= self._batch:
                    pause = 0  # more are due: go on at once
            except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError) as exc:
                _log.warning("outbox_claim_failed", error=type(exc).__name__)
                pause = ERROR_PAUSE_SECONDS
            if pause:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), pause)

    async def _attempt(self, claimed: outbox.Claimed, deadline: float) -> tuple[Outcome, bool]:
        """The sink's answer; a raise or an overrun counts as Retry (and as a sink failure)."""

        async def save(ref: str) -> None:
            await outbox.save_ref(self._pool, claimed.position, claimed.attempt, ref)

        progress = Progress(remote_ref=claimed.remote_ref, save=save)
        try:
            # Settled well inside the lease, so no other dispatcher takes it over meanwhile.
            async with asyncio.timeout_at(deadline):
                return await self._sink.deliver(claimed.event, progress), False
        except TimeoutError:
            return Retry("the sink did not answer within the lease"), True
        except Exception as exc:  # noqa: BLE001 - a faulty sink must not stop the other deliveries
            _log.exception("sink_raised", event_id=str(claimed.event.id), sink=self._sink.name)
            return Retry(f"sink raised {type(exc).__name__}"), True

    async def _deliver(self, claimed: outbox.Claimed, deadline: float) -> None:
        async with self._slots:
            started = time.perf_counter()
            outcome, failed = await self._attempt(claimed, deadline)
            duration = time.perf_counter() - started
            sink = self._sink.name
            metrics.DELIVERY_ATTEMPTS.labels(sink, _outcome_name(outcome)).inc()
            if failed:
                metrics.DELIVERY_FAILURES.labels(sink).inc()
            try:
                state: str | None = await outbox.settle(
                    self._pool, claimed, outcome, give_up_seconds=self._give_up_seconds
                )
            except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError) as exc:
                # The lease runs out and the event is delivered again (the receiver dedupes).
                state = f"unsettled ({type(exc).__name__})"
            event = claimed.event
            # The canonical line of one delivery attempt.
            _log.info(
                "delivery",
                event_id=str(event.id),
                type=event.type,
                code=mask(event.payment_code),
                payment_id=event.payment_id,
                sink=sink,
                outcome=_outcome_name(outcome),
                reason=_reason(outcome),
                attempt=claimed.attempt,
                state=state or "lease lost",
                duration_ms=round(duration * 1000, 1),
            )


async def run(settings: Settings, stop: asyncio.Event, *, sink: Sink | None = None, **options: Any) -> None:
    """Opens a pool and the sink, and dispatches until `stop` is set."""
    assert settings.database_url is not None
    sink = sink or open_sink(settings)
    pool = await create_pool(
        settings.database_url.get_secret_value(),
        size=4,
        deadline=settings.request_deadline,
        pooler=settings.database_pooler,
    )
    _log.info("dispatcher_started", sink=sink.name)
    try:
        await Dispatcher(pool, sink, give_up_hours=settings.deliver_give_up_hours, **options).run(stop)
    finally:
        await sink.close()
        await pool.close()
        _log.info("dispatcher_stopped", sink=sink.name)


class InBackground:
    """The dispatcher on a thread of its own loop: how `tolem serve` runs it beside the workers."""

    def __init__(self, settings: Settings, *, sink_factory: Callable[[Settings], Sink] = open_sink) -> None:
        self._settings = settings
        self._sink_factory = sink_factory
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._main, name="tolem-dispatcher", daemon=True)

    def start(self) -> None:
        """Starts the thread; returns once its loop runs."""
        self._thread.start()
        self._ready.wait()

    def _main(self) -> None:
        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            self._ready.set()
            try:
                await run(self._settings, self._stop, sink=self._sink_factory(self._settings))
            except NoSink as exc:
                _log.error("dispatcher_not_started", reason=str(exc))
            except Exception:  # noqa: BLE001 - serving goes on; events wait in the outbox
                _log.exception("dispatcher_crashed")

        asyncio.run(main())
        self._ready.set()

    def stop(self, timeout: float = 10.0) -> None:
        """Asks the dispatcher to finish its round and waits for it."""
        if self._loop is not None and self._stop is not None and not self._loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop ended meanwhile
                self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout)
