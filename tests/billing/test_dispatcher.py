"""The dispatcher over a real outbox: leases, order per account, exactly once, backoff, dead letters."""

import asyncio
import time
from datetime import UTC, datetime

import asyncpg
import pytest

from tests.billing.conftest import StandIn, events, until
from tests.conftest import Factory
from tolem.billing.dispatcher import Dispatcher, InBackground
from tolem.billing.sink import Delivered, Event, Manual, Outcome, Progress, Refused, Retry
from tolem.core.model import PayCommand, Provider
from tolem.core.service import PaymentService
from tolem.db import outbox
from tolem.ops import metrics
from tolem.settings import Settings


async def credits(service: PaymentService, provider: Provider, codes: list[str], per_code: int) -> None:
    """`per_code` credits into each code, spread over the codes in turn."""
    for n in range(per_code):
        for i, code in enumerate(codes):
            await service.pay(provider, PayCommand(f"{i}-{n}", code, 1_00 + n))


async def run_until(
    dispatcher: Dispatcher, done: "asyncio.Future[None] | None" = None, *, seconds: float
) -> None:
    """Runs the dispatcher until everything pending is settled or `seconds` pass."""
    stop = asyncio.Event()
    task = asyncio.create_task(dispatcher.run(stop))
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline:
            await asyncio.sleep(0.05)
            if done is not None and done.done():
                break
    finally:
        stop.set()
        await asyncio.wait_for(task, 5)


class TestDelivery:
    async def test_a_credit_reaches_the_receiver_within_a_second(
        self, pool: asyncpg.Pool, factory: Factory, service: PaymentService, standin: StandIn
    ) -> None:
        """With the dispatcher idle, a pay committed now is applied at the receiver in under a second."""
        provider = await factory.provider()
        _, code = await factory.account()
        stop = asyncio.Event()
        task = asyncio.create_task(Dispatcher(pool, standin, give_up_hours=24).run(stop))
        await asyncio.sleep(0.3)
        paid_at = time.monotonic()
        await service.pay(provider, PayCommand("1", code, 10_00))
        await until(lambda: bool(standin.applied), 3)
        took = time.monotonic() - paid_at
        stop.set()
        await asyncio.wait_for(task, 5)
        assert len(standin.applied) == 1
        assert took < 1.0
        [event] = await events(pool)
        assert (event["state"], event["attempts"], event["sink"]) == ("delivered", 1, "standin")
        assert event["delivered_at"] is not None and event["lease_until"] is None

    async def test_an_accounts_events_arrive_in_order_while_accounts_proceed_side_by_side(
        self, pool: asyncpg.Pool, factory: Factory, service: PaymentService
    ) -> None:
        """A credit failing once holds back its account's reversal; other accounts are not held."""
        provider = await factory.provider()
        slow_id, slow = await factory.account()
        fast_id, fast = await factory.account()
        await service.pay(provider, PayCommand("s1", slow, 5_00))
        await service.cancel(provider, external_id="s1")
        await service.pay(provider, PayCommand("f1", fast, 5_00))
        await service.pay(provider, PayCommand("f2", fast, 6_00))

        def answer(event: Event, call: int) -> Outcome:
            if event.account_id == slow_id and event.type == "payment.credited" and call == 1:
                return Retry("receiver busy", after=0.2)
            return Delivered()

        sink = StandIn(answer=answer)
        dispatcher = Dispatcher(pool, sink, give_up_hours=24, poll_seconds=0.05)
        assert await dispatcher.round() == 2  # the oldest event of each account, nothing more
        async with pool.acquire() as conn:
            claimed = await outbox.claim(conn, limit=10, lease_seconds=30, sink="other")
        # The slow account's reversal waits behind its credit's backoff.
        assert [(c.event.account_id, c.event.payment_id) for c in claimed] == [
            (fast_id, claimed[0].event.payment_id)
        ]
        await outbox.settle(pool, claimed[0], Delivered(), give_up_seconds=3600)
        await run_until(dispatcher, seconds=2)
        assert [t for a, t in sink.order if a == slow_id] == ["payment.credited", "payment.reversed"]
        assert all(e["state"] == "delivered" for e in await events(pool))

    async def test_two_dispatchers_deliver_each_event_exactly_once(
        self, pool: asyncpg.Pool, factory: Factory, service: PaymentService
    ) -> None:
        """Two dispatchers racing over 120 events of 12 accounts: each event is sent and applied once."""
        provider = await factory.provider()
        codes = [(await factory.account())[1] for _ in range(12)]
        await credits(service, provider, codes, 10)
        sink = StandIn()
        sink.delay = 0.005
        first = Dispatcher(pool, sink, give_up_hours=24, batch=7, poll_seconds=0.02)
        second = Dispatcher(pool, sink, give_up_hours=24, batch=5, poll_seconds=0.02)
        stop = asyncio.Event()
        tasks = [asyncio.create_task(d.run(stop)) for d in (first, second)]
        await until(lambda: len(sink.applied) >= 120, 20, 0.05)
        stop.set()
        await asyncio.gather(*tasks)
        assert len(sink.applied) == 120
        assert set(sink.calls.values()) == {1}
        rows = await events(pool)
        assert {(r["state"], r["attempts"]) for r in rows} == {("delivered", 1)}

    async def test_a_killed_dispatchers_lease_runs_out_and_the_event_is_taken_over(
        self, pool: asyncpg.Pool, factory: Factory, service: PaymentService
    ) -> None:
        """A claim never settled is claimable again once its lease passes; the old claim cannot settle it."""
        provider = await factory.provider()
        _, code = await factory.account()
        await service.pay(provider, PayCommand("1", code, 1_00))
        [dead] = await outbox.claim(pool, limit=10, lease_seconds=0.5, sink="standin")
        assert await outbox.claim(pool, limit=10, lease_seconds=0.5, sink="standin") == []
        await asyncio.sleep(0.6)
        [taken] = await outbox.claim(pool, limit=10, lease_seconds=30, sink="standin")
        assert (taken.event.id, taken.attempt) == (dead.event.id, 2)
        assert await outbox.settle(pool, dead, Delivered(), give_up_seconds=3600) is None
        assert await outbox.settle(pool, taken, Delivered(), give_up_seconds=3600) == "delivered"

    async def test_a_taken_over_attempt_cannot_overwrite_the_saved_reference(
        self, pool: asyncpg.Pool, factory: Factory, service: PaymentService
    ) -> None:
        """A taken-over attempt is refused when it saves a receiver reference; the new one keeps its own."""
        provider = await factory.provider()
        _, code = await factory.account()
        await service.pay(provider, PayCommand("1", code, 1_00))
        [old] = await outbox.claim(pool, limit=10, lease_seconds=0.5, sink="standin")
        await asyncio.sleep(0.6)
        [new] = await outbox.claim(pool, limit=10, lease_seconds=30, sink="standin")
        await outbox.save_ref(pool, new.position, new.attempt, "new-payment")
        with pytest.raises(outbox.LeaseLost):
            await outbox.save_ref(pool, old.position, old.attempt, "old-payment")
        ref = await pool.fetchval("SELECT remote_ref FROM outbox_events WHERE position = $1", new.position)
        assert ref == "new-payment"

    async def test_what_a_sink_saved_is_given_back_on_the_next_attempt(
        self, pool: asyncpg.Pool, factory: Factory, service: PaymentService
    ) -> None:
        """Progress.save commits at once: the next attempt, by any dispatcher, resumes from it."""
        provider = await factory.provider()
        _, code = await factory.account()
        await service.pay(provider, PayCommand("1", code, 1_00))
        seen: list[str | None] = []

        class Resuming(StandIn):
            async def deliver(self, event: Event, progress: Progress) -> Outcome:
                seen.append(progress.remote_ref)
                if progress.remote_ref is None:
                    await progress.save("remote-77")
                    return Retry("timed out after payment.add", after=0)
                return Delivered(detail="found remote-77")

        dispatcher = Dispatcher(pool, Resuming(), give_up_hours=24)
        await dispatcher.round()
        async with pool.acquire() as conn:
            await conn.execute("UPDATE outbox_events SET next_attempt_at = now()")
        await dispatcher.round()
        assert seen == [None, "remote-77"]
        [event] = await events(pool)
        assert (event["state"], event["remote_ref"], event["attempts"]) == ("delivered", "remote-77", 2)


class TestFailures:
    async def test_retry_backs_off_with_jitter_and_honours_retry_after(
        self, pool: asyncpg.Pool, factory: Factory, service: PaymentService
    ) -> None:
        """A Retry puts the event back with a next attempt within the backoff window, or after Retry-After."""
        provider = await factory.provider()
        _, code = await factory.account()
        await service.pay(provider, PayCommand("1", code, 1_00))
        await service.pay(provider, PayCommand("2", (await factory.account())[1], 1_00))
        first, second = await outbox.claim(pool, limit=10, lease_seconds=30, sink="s")
        before = datetime.now(UTC)
        assert await outbox.settle(pool, first, Retry("503"), give_up_seconds=3600) == "pending"
        assert await outbox.settle(pool, second, Retry("429", after=30), give_up_seconds=3600) == "pending"
        one, two = await events(pool)
        assert 0 <= (one["next_attempt_at"] - before).total_seconds() <= 1.5
        assert 29 <= (two["next_attempt_at"] - before).total_seconds() <= 31
        assert (one["last_error"], one["lease_until"], one["attempts"]) == ("503", None, 1)
        windows = [max(outbox.backoff(n) for _ in range(200)) for n in (1, 4, 20)]
        assert windows[0] <= 1 and 4 < windows[1] <= 8 and 300 < windows[2] <= outbox.BACKOFF_CAP_SECONDS

    async def test_an_event_failing_past_the_give_up_window_is_dead(
        self, pool: asyncpg.Pool, factory: Factory, service: PaymentService
    ) -> None:
        """With a one-second window, a receiver that keeps failing dead-letters the event with its reason."""
        provider = await factory.provider()
        _, code = await factory.account()
        await service.pay(provider, PayCommand("1", code, 1_00))
        sink = StandIn(answer=lambda _e, _c: Retry("receiver down"))
        # Full jitter may place the first failure after the window anywhere up to a few seconds
        # in: run until the event is dead (or long past when it must be), not for a fixed time.
        dead: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        async def watch() -> None:
            while True:
                if (await events(pool))[0]["state"] == "dead":
                    dead.set_result(None)
                    return
                await asyncio.sleep(0.05)

        watcher = asyncio.create_task(watch())
        try:
            dispatcher = Dispatcher(pool, sink, give_up_hours=1 / 3600, poll_seconds=0.05)
            await run_until(dispatcher, dead, seconds=20)
        finally:
            watcher.cancel()
        [event] = await events(pool)
        assert (event["state"], event["last_error"], event["next_attempt_at"]) == (
            "dead",
            "receiver down",
            None,
        )
        assert event["attempts"] >= 2
        assert sink.applied == {}

    async def test_refused_is_dead_at_once_manual_is_kept_and_a_raising_sink_is_a_retry(
        self, pool: asyncpg.Pool, factory: Factory, service: PaymentService
    ) -> None:
        """Refused dead-letters, Manual parks for an operator, a raise is a Retry and the round goes on."""
        provider = await factory.provider()
        ids = {}
        for kind in ("refused", "manual", "raises", "fine"):
            account_id, code = await factory.account()
            ids[account_id] = kind
            await service.pay(provider, PayCommand(kind, code, 1_00))

        def answer(event: Event, _call: int) -> Outcome:
            kind = ids[event.account_id]
            if kind == "raises":
                raise ConnectionResetError("sink bug")
            return {"refused": Refused("410 Gone"), "manual": Manual("no voids here")}.get(kind, Delivered())

        failures = metrics.DELIVERY_FAILURES.labels("standin")._value.get()
        await Dispatcher(pool, StandIn(answer=answer), give_up_hours=24).round()
        by_kind = {ids[e["account_id"]]: e for e in await events(pool)}
        assert (by_kind["refused"]["state"], by_kind["refused"]["last_error"]) == ("dead", "410 Gone")
        assert (by_kind["manual"]["state"], by_kind["manual"]["last_error"]) == ("manual", "no voids here")
        assert (by_kind["raises"]["state"], by_kind["raises"]["last_error"]) == (
            "pending",
            "sink raised ConnectionResetError",
        )
        assert by_kind["fine"]["state"] == "delivered"
        assert metrics.DELIVERY_FAILURES.labels("standin")._value.get() == failures + 1


class TestOperators:
    async def test_retry_one_and_retry_dead_requeue_keeping_attempts(
        self, pool: asyncpg.Pool, factory: Factory, service: PaymentService
    ) -> None:
        """Dead and manual events go back in line now with their attempts; a delivered one is refused."""
        provider = await factory.provider()
        for n in range(3):
            await service.pay(provider, PayCommand(str(n), (await factory.account())[1], 1_00))
        a, b, c = await outbox.claim(pool, limit=10, lease_seconds=30, sink="s")
        await outbox.settle(pool, a, Refused("gone"), give_up_seconds=3600)
        await outbox.settle(pool, b, Manual("not carried"), give_up_seconds=3600)
        await outbox.settle(pool, c, Delivered(), give_up_seconds=3600)
        assert [e.state for e in await outbox.list_events(pool, state="dead")] == ["dead"]
        assert await outbox.retry_dead(pool) == 1
        await outbox.retry(pool, b.event.id)
        with pytest.raises(outbox.NotRetryable, match="was delivered"):
            await outbox.retry(pool, c.event.id)
        rows = {r["id"]: r for r in await events(pool)}
        for claimed in (a, b):
            row = rows[claimed.event.id]
            assert (row["state"], row["attempts"], row["lease_until"]) == ("pending", 1, None)
            assert row["next_attempt_at"] <= datetime.now(UTC)
        [again, other] = await outbox.claim(pool, limit=10, lease_seconds=30, sink="s")
        assert {again.attempt, other.attempt} == {2}

    async def test_listing_masks_codes(
        self, pool: asyncpg.Pool, factory: Factory, service: PaymentService
    ) -> None:
        """The list shows amount, currency and a masked code, never the whole code."""
        provider = await factory.provider()
        _, code = await factory.account()
        await service.pay(provider, PayCommand("1", code, 12_34))
        [listed] = await outbox.list_events(pool)
        assert code not in listed.code_masked and listed.code_masked.endswith(code[-4:])
        assert (listed.amount_minor, listed.currency, listed.state, listed.provider_txn) == (
            12_34,
            "KGS",
            "pending",
            "1",
        )


class TestShutdown:
    async def test_in_background_runs_beside_the_server_and_stops_cleanly(
        self, settings: Settings, factory: Factory, service: PaymentService, pool: asyncpg.Pool
    ) -> None:
        """The thread `tolem serve` starts delivers on its own loop, and on stop closes its sink."""
        provider = await factory.provider()
        _, code = await factory.account()
        sink = StandIn()
        background = InBackground(settings, sink_factory=lambda _s: sink)
        background.start()
        await service.pay(provider, PayCommand("1", code, 1_00))
        await until(lambda: bool(sink.applied), 5)
        await asyncio.to_thread(background.stop)
        assert len(sink.applied) == 1 and sink.closed
        assert [e["state"] for e in await events(pool)] == ["delivered"]
