"""Every event POSTed as JSON to one URL, signed the Standard Webhooks way.

The receiver verifies `webhook-signature` (HMAC-SHA256 of "{id}.{timestamp}.{body}" under the
shared `whsec_` secret) and dedupes by `webhook-id`, which is the event id and so the same on
every attempt. docs/billing.md shows the payload and a receiver.
"""

import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Final

import orjson
from standardwebhooks.webhooks import Webhook

from tolem.billing.sink import Delivered, Event, Outcome, Progress, Refused, Retry
from tolem.billing.sinks._http import TRANSPORT_ERRORS, Client, retry_after, unreachable
from tolem.core.money import format_amount

_GONE: Final = 410
_TOO_MANY: Final = 429


def payload(event: Event) -> dict[str, Any]:
    """The JSON body of one event: `type`, `id`, `timestamp` and the event's fields under `data`."""
    return {
        "type": event.type,
        "id": str(event.id),
        "timestamp": event.created_at.isoformat(),
        "data": {
            "account_id": event.account_id,
            "account_ref": event.account_ref,
            "payer_ref": event.payer_ref,
            "payment_code": event.payment_code,
            "provider": event.provider,
            "provider_txn": event.provider_txn,
            "payment_id": event.payment_id,
            "amount_minor": event.amount_minor,
            "amount": format_amount(event.amount_minor),
            "currency": event.currency,
            "occurred_at": event.occurred_at.isoformat(),
        },
    }


class WebhookSink:
    """Signs and POSTs each event; 2xx is delivered, 410 refused, anything else retried."""

    name = "webhook"

    def __init__(
        self, url: str, secret: str, *, timeout: float, clock: Callable[[], float] = time.time
    ) -> None:
        self._url = url
        self._signer = Webhook(secret)
        self._clock = clock
        self._client = Client(timeout)

    def headers(self, event: Event, body: bytes) -> dict[str, str]:
        """The three Standard Webhooks headers for this body, timestamped now."""
        now = int(self._clock())
        signature = self._signer.sign(str(event.id), datetime.fromtimestamp(now, UTC), body.decode())
        return {
            "content-type": "application/json",
            "webhook-id": str(event.id),
            "webhook-timestamp": str(now),
            "webhook-signature": signature,
        }

    async def deliver(self, event: Event, progress: Progress) -> Outcome:
        body = orjson.dumps(payload(event))
        try:
            # A redirect is answered, not followed: following would turn the POST into a GET.
            async with self._client.session().post(
                self._url, data=body, headers=self.headers(event, body), allow_redirects=False
            ) as response:
                status = response.status
                wait = retry_after(response.headers.get("Retry-After"))
        except TRANSPORT_ERRORS as exc:
            return unreachable("webhook", exc)
        if 200 <= status < 300:
            return Delivered(f"HTTP {status}")
        if status == _GONE:
            return Refused("webhook endpoint answered 410 Gone: it takes no more events")
        if status == _TOO_MANY:
            return Retry("webhook answered 429 Too Many Requests", after=wait)
        return Retry(f"webhook answered HTTP {status}", after=wait)

    async def close(self) -> None:
        await self._client.close()
