"""The webhook sink against a Standard Webhooks receiver over real HTTP."""

import asyncio
import base64
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import orjson
import pytest
from aiohttp.test_utils import TestServer
from structlog.testing import capture_logs

from tests.billing.sinks.conftest import Saved, make_event
from tests.billing.sinks.standins import SECRET, WebhookReceiver, independent_signature
from tolem.billing.sink import Delivered, Refused, Retry
from tolem.billing.sinks.webhook import WebhookSink, payload

Serve = Callable[..., Awaitable[TestServer]]


@pytest.fixture
async def receiver(aiohttp_server: Serve) -> tuple[WebhookReceiver, TestServer]:
    """A verifying receiver listening on a real local socket."""
    stand_in = WebhookReceiver()
    return stand_in, await aiohttp_server(stand_in.app())


@pytest.fixture
async def sink(receiver: tuple[WebhookReceiver, TestServer]) -> AsyncIterator[WebhookSink]:
    """The sink pointed at the receiver, with a short timeout."""
    _, server = receiver
    webhook = WebhookSink(str(server.make_url("/hook")), SECRET, timeout=0.5)
    yield webhook
    await webhook.close()


async def test_delivery_is_signed_and_carries_every_field(
    receiver: tuple[WebhookReceiver, TestServer], sink: WebhookSink, saved: Saved
) -> None:
    """A 2xx answer is Delivered; the package's verifier and an hmac of the spec both accept it."""
    stand_in, _ = receiver
    event = make_event()
    assert await sink.deliver(event, saved.progress()) == Delivered("HTTP 200")
    body = stand_in.applied[str(event.id)]
    assert body == {
        "type": "payment.credited",
        "id": str(event.id),
        "timestamp": "2026-12-01T20:30:05.120000+00:00",
        "data": {
            "account_id": 42,
            "account_ref": "1977",
            "payer_ref": "310",
            "payment_code": "001234567897",
            "provider": "elsom",
            "provider_txn": "T-9001",
            "payment_id": 5001,
            "amount_minor": 15050,
            "amount": "150.50",
            "currency": "KGS",
            "occurred_at": "2026-12-01T20:30:05+00:00",
        },
    }
    assert stand_in.rejected == 0


def test_signature_matches_an_independent_hmac() -> None:
    """The signing header equals HMAC-SHA256 of "{id}.{timestamp}.{body}" under the decoded secret."""
    sink = WebhookSink("http://127.0.0.1:9/hook", SECRET, timeout=1, clock=lambda: 1_764_621_005.9)
    event = make_event()
    body = orjson.dumps(payload(event))
    headers = sink.headers(event, body)
    assert headers["webhook-id"] == str(event.id)
    assert headers["webhook-timestamp"] == "1764621005"
    assert headers["webhook-signature"] == independent_signature(SECRET, str(event.id), "1764621005", body)


async def test_a_receiver_with_another_secret_refuses_and_we_retry(
    aiohttp_server: Serve, saved: Saved
) -> None:
    """A signature under a different secret fails verification; the 401 is a Retry, not a delivery."""
    other = "whsec_" + base64.b64encode(b"some-other-receiver-secret-key!!").decode()
    stand_in = WebhookReceiver(secret=other)
    server = await aiohttp_server(stand_in.app())
    sink = WebhookSink(str(server.make_url("/hook")), SECRET, timeout=1)
    try:
        outcome = await sink.deliver(make_event(), saved.progress())
    finally:
        await sink.close()
    assert outcome == Retry("webhook answered HTTP 401")
    assert stand_in.rejected == 1
    assert stand_in.applied == {}


async def test_every_event_type_is_carried(
    receiver: tuple[WebhookReceiver, TestServer], sink: WebhookSink, saved: Saved
) -> None:
    """Credits, reversals and voids all reach the receiver, each under its own type."""
    stand_in, _ = receiver
    for kind in ("payment.credited", "payment.reversed", "payment.voided"):
        assert isinstance(await sink.deliver(make_event(kind), saved.progress()), Delivered)
    assert sorted(body["type"] for body in stand_in.applied.values()) == [
        "payment.credited",
        "payment.reversed",
        "payment.voided",
    ]


async def test_a_repeated_event_is_applied_once_by_a_deduping_receiver(
    receiver: tuple[WebhookReceiver, TestServer], sink: WebhookSink, saved: Saved
) -> None:
    """Every attempt of one event carries the same webhook-id, so the receiver applies it once."""
    stand_in, _ = receiver
    event = make_event()
    for _ in range(3):
        assert isinstance(await sink.deliver(event, saved.progress()), Delivered)
    assert stand_in.deliveries == 3
    assert list(stand_in.applied) == [str(event.id)]


async def test_large_amounts_are_exact(
    receiver: tuple[WebhookReceiver, TestServer], sink: WebhookSink, saved: Saved
) -> None:
    """An amount beyond a float's exact range arrives digit for digit, in minor and major units."""
    stand_in, _ = receiver
    event = make_event(amount_minor=123_456_789_012_345_679)
    await sink.deliver(event, saved.progress())
    data = stand_in.applied[str(event.id)]["data"]
    assert data["amount_minor"] == 123_456_789_012_345_679
    assert data["amount"] == "1234567890123456.79"


async def test_410_is_refused(
    receiver: tuple[WebhookReceiver, TestServer], sink: WebhookSink, saved: Saved
) -> None:
    """410 Gone means the endpoint was disabled: Refused, so the event is dead-lettered."""
    stand_in, _ = receiver
    stand_in.status = 410
    outcome = await sink.deliver(make_event(), saved.progress())
    assert isinstance(outcome, Refused)
    assert "410" in outcome.reason


@pytest.mark.parametrize(
    ("header", "after"),
    [("30", 30.0), (None, None), ("soon", None), ("999999", 3600.0)],
)
async def test_429_is_retried_after_what_the_receiver_asked(
    receiver: tuple[WebhookReceiver, TestServer],
    sink: WebhookSink,
    saved: Saved,
    header: str | None,
    after: float | None,
) -> None:
    """429 is a Retry carrying Retry-After seconds (bounded); without a readable header, no wait."""
    stand_in, _ = receiver
    stand_in.status = 429
    stand_in.headers = {"Retry-After": header} if header else {}
    outcome = await sink.deliver(make_event(), saved.progress())
    assert outcome == Retry("webhook answered 429 Too Many Requests", after=after)


async def test_429_with_an_http_date(
    receiver: tuple[WebhookReceiver, TestServer], sink: WebhookSink, saved: Saved
) -> None:
    """A Retry-After given as an HTTP date becomes the seconds until then."""
    stand_in, _ = receiver
    stand_in.status = 429
    stand_in.headers = {
        "Retry-After": format_datetime(datetime.now(UTC) + timedelta(seconds=120), usegmt=True)
    }
    outcome = await sink.deliver(make_event(), saved.progress())
    assert isinstance(outcome, Retry)
    assert outcome.after is not None
    assert 100 <= outcome.after <= 120


@pytest.mark.parametrize("status", [500, 503, 400, 404, 302])
async def test_other_answers_are_retried(
    receiver: tuple[WebhookReceiver, TestServer], sink: WebhookSink, saved: Saved, status: int
) -> None:
    """5xx, other 4xx and redirects are not deliveries: Retry, naming the status."""
    stand_in, _ = receiver
    stand_in.status = status
    stand_in.headers = {"Location": "/elsewhere"} if status == 302 else {}
    outcome = await sink.deliver(make_event(), saved.progress())
    assert outcome == Retry(f"webhook answered HTTP {status}")


async def test_a_stalled_receiver_times_out_into_retry(
    receiver: tuple[WebhookReceiver, TestServer], sink: WebhookSink, saved: Saved
) -> None:
    """A receiver slower than TOLEM_BILLING_TIMEOUT gives Retry: it may or may not have applied it."""
    stand_in, _ = receiver
    stand_in.stall = 2.0
    started = asyncio.get_running_loop().time()
    outcome = await sink.deliver(make_event(), saved.progress())
    assert outcome == Retry("webhook unreachable: timed out")
    assert asyncio.get_running_loop().time() - started < 1.5


async def test_connection_refused_is_retried(closed_port: int, saved: Saved) -> None:
    """Nothing listening is a Retry, never an exception out of deliver."""
    sink = WebhookSink(f"http://127.0.0.1:{closed_port}/hook", SECRET, timeout=1)
    try:
        outcome = await sink.deliver(make_event(), saved.progress())
    finally:
        await sink.close()
    assert isinstance(outcome, Retry)
    assert outcome.reason.startswith("webhook unreachable: ")


async def test_the_sink_logs_nothing_and_reasons_hold_no_secret(
    receiver: tuple[WebhookReceiver, TestServer], sink: WebhookSink, saved: Saved
) -> None:
    """Attempts write no log line (the dispatcher does), and no reason repeats the code or secret."""
    stand_in, _ = receiver
    outcomes = []
    with capture_logs() as logs:
        for status in (200, 410, 429, 500):
            stand_in.status = status
            outcomes.append(await sink.deliver(make_event(), saved.progress()))
    assert logs == []
    for outcome in outcomes:
        text = repr(outcome)
        assert "001234567897" not in text
        assert SECRET.removeprefix("whsec_") not in text
