"""`tolem deliver` and `tolem events`: the outbox towards the hoster's billing."""

import argparse
import asyncio
import contextlib
import math
import signal
from uuid import UUID
from zoneinfo import ZoneInfo

from tolem.cli.common import Commands, Parser, UsageError, connected, emit, local_time
from tolem.core.money import format_amount
from tolem.db import outbox as outbox_db
from tolem.settings import Settings


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from exc
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from exc
    # An infinite lease would never let a killed process's events be taken over.
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError("must be a number of seconds above 0")
    return value


async def cmd_deliver(args: argparse.Namespace, settings: Settings) -> int:
    """Runs the dispatcher until SIGTERM or SIGINT; the round in flight is finished first."""
    # Imported here: it brings the sinks and their HTTP client, which no other command needs.
    from tolem.billing import dispatcher  # noqa: PLC0415

    async with connected(settings):
        pass  # refuses to run while migrations are pending
    try:
        sink = dispatcher.open_sink(settings)
    except dispatcher.NoSink as exc:
        raise UsageError(f"{exc}; nothing to deliver to") from exc
    if args.metrics_port is not None:
        from prometheus_client import start_http_server  # noqa: PLC0415

        from tolem.ops.metrics import REGISTRY  # noqa: PLC0415

        start_http_server(args.metrics_port, addr="127.0.0.1", registry=REGISTRY)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    with contextlib.suppress(KeyboardInterrupt):
        await dispatcher.run(
            settings,
            stop,
            sink=sink,
            batch=args.batch,
            concurrency=args.concurrency,
            lease_seconds=args.lease_seconds,
        )
    return 0


def _events_text(found: list[outbox_db.Listed], zone: ZoneInfo) -> str:
    if not found:
        return "no events"
    lines = []
    for e in found:
        when = "-" if e.next_attempt_at is None else local_time(e.next_attempt_at, zone)
        lines.append(
            f"{e.id}  {local_time(e.created_at, zone)}  {e.type:<16}  {e.state:<9}  "
            f"{e.code_masked}  {format_amount(e.amount_minor)} {e.currency}  {e.provider} {e.provider_txn}  "
            f"attempts {e.attempts}  next {when}  {e.last_error or ''}".rstrip()
        )
    return "\n".join(lines)


async def cmd_events(args: argparse.Namespace, settings: Settings) -> int:
    """Lists outbox events, newest first."""
    async with connected(settings) as conn:
        found = await outbox_db.list_events(conn, state=args.state, limit=args.limit)
    data = [
        {
            "id": str(e.id),
            "type": e.type,
            "state": e.state,
            "payment_id": e.payment_id,
            "account_id": e.account_id,
            "code": e.code_masked,
            "provider": e.provider,
            "txn": e.provider_txn,
            "amount": format_amount(e.amount_minor),
            "amount_minor": e.amount_minor,
            "currency": e.currency,
            "attempts": e.attempts,
            "last_error": e.last_error,
            "next_attempt_at": e.next_attempt_at,
            "delivered_at": e.delivered_at,
            "sink": e.sink,
            "created_at": e.created_at,
        }
        for e in found
    ]
    emit(args, data, _events_text(found, ZoneInfo(settings.timezone)))
    return 0


async def cmd_events_retry(args: argparse.Namespace, settings: Settings) -> int:
    """Puts one event, or every dead one, back in line now."""
    if (args.event_id is None) == (not args.dead):
        raise UsageError("give an event ID or --dead, not both")
    async with connected(settings) as conn:
        if args.dead:
            count = await outbox_db.retry_dead(conn)
            emit(args, {"requeued": count}, f"requeued {count} dead event(s)")
            return 0
        try:
            event_id = UUID(args.event_id)
        except ValueError as exc:
            raise UsageError(f"not an event id: {args.event_id!r} (see `tolem events`)") from exc
        try:
            await outbox_db.retry(conn, event_id)
        except outbox_db.NotRetryable as exc:
            raise UsageError(str(exc)) from exc
    emit(args, {"requeued": 1, "id": str(event_id)}, f"requeued {event_id}")
    return 0


def register(commands: Commands, common: Parser) -> None:
    """`tolem deliver` and `tolem events [retry]`."""
    deliver = commands.add_parser(
        "deliver",
        parents=[common],
        help="deliver credits, reversals and voids to the billing (a long-running service)",
        description="Takes events from the outbox and delivers each to the configured billing "
        "(docs/billing.md) until SIGTERM; any number may run at once, each event is claimed by one.",
    )
    deliver.add_argument("--batch", type=_positive, default=50, help="events claimed per round (default 50)")
    deliver.add_argument(
        "--concurrency", type=_positive, default=8, help="deliveries in flight at once (default 8)"
    )
    deliver.add_argument(
        "--lease-seconds",
        type=_seconds,
        default=120.0,
        metavar="N",
        help="how long an attempt may take before another dispatcher may take the event over, "
        "as after this one was killed (default 120); keep it above TOLEM_BILLING_TIMEOUT",
    )
    deliver.add_argument(
        "--metrics-port",
        type=int,
        metavar="PORT",
        help="serve this process's delivery counters as Prometheus text on 127.0.0.1:PORT",
    )
    deliver.set_defaults(run=cmd_deliver)

    events = commands.add_parser(
        "events",
        parents=[common],
        help="outbox events towards the billing: list them, retry dead ones",
        description="Lists outbox events, newest first: type, state, masked code, amount, attempts, "
        "next attempt, last error (times in TOLEM_TIMEZONE).",
    )
    events.add_argument(
        "--state", choices=outbox_db.STATES, help="only events in this state (default: every state)"
    )
    events.add_argument("--limit", type=_positive, default=50, help="at most this many (default 50)")
    events.set_defaults(run=cmd_events)
    sub = events.add_subparsers(dest="events_command", parser_class=Parser)
    retry = sub.add_parser(
        "retry",
        parents=[common],
        help="put an event (or every dead one) back in line now; attempts are kept",
        description="Requeues a dead, manual or waiting event for an attempt now; its give-up window "
        "starts again. A delivered event is never resent.",
    )
    retry.add_argument("event_id", metavar="ID", nargs="?", help="the event's id (from `tolem events`)")
    retry.add_argument("--dead", action="store_true", help="every dead event instead of one")
    retry.set_defaults(run=cmd_events_retry)
