"""Credits become WHMCS transactions applied to the client's credit balance (AddTransaction).

Our event id is the transaction id, and WHMCS refuses a second transaction with the same id and
payment method ("Transaction ID must be Unique"). That refusal alone proves nothing about the
amount or the client, so GetTransactions is asked, and only a transaction with our id, the
client and the same amount counts as delivered.
"""

from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Final
from zoneinfo import ZoneInfo

import orjson

from tolem.billing.sink import Delivered, Event, Manual, Outcome, Progress, Retry
from tolem.billing.sinks._http import TRANSPORT_ERRORS, Client, short, unreachable
from tolem.core.money import MINOR_PER_MAJOR, format_amount

DUPLICATE_TRANSID: Final = "Transaction ID must be Unique"
_HTTP_OK: Final = 200
_REFUSED_CALLER: Final = frozenset({401, 403})
# The settings' names for WHMCS's localisation formats, as strftime patterns.
DATE_FORMATS: Final = {
    "DD/MM/YYYY": "%d/%m/%Y",
    "DD.MM.YYYY": "%d.%m.%Y",
    "DD-MM-YYYY": "%d-%m-%Y",
    "MM/DD/YYYY": "%m/%d/%Y",
    "YYYY/MM/DD": "%Y/%m/%d",
    "YYYY-MM-DD": "%Y-%m-%d",
}


class WhmcsSink:
    """Adds one credit transaction per event through the WHMCS API (identifier and secret)."""

    name = "whmcs"

    def __init__(
        self,
        url: str,
        identifier: str,
        secret: str,
        *,
        paymentmethod: str,
        date_format: str,
        timezone: str,
        timeout: float,
    ) -> None:
        self._endpoint = url.rstrip("/") + "/includes/api.php"
        self._identifier = identifier
        self._secret = secret
        self._paymentmethod = paymentmethod
        self._date_format = DATE_FORMATS[date_format]
        self._zone = ZoneInfo(timezone)
        self._client = Client(timeout)

    async def deliver(self, event: Event, progress: Progress) -> Outcome:
        if event.type == "payment.reversed":
            return Manual("reversal: remove the credit from the WHMCS client by hand")
        if event.type == "payment.voided":
            return Manual("void: the reservation was never credited to WHMCS; nothing to undo")
        if not event.account_ref:
            return Manual("account not bound to a WHMCS client")
        added = await self._call(
            {
                "action": "AddTransaction",
                "userid": event.account_ref,
                "paymentmethod": self._paymentmethod,
                "transid": str(event.id),
                "amountin": format_amount(event.amount_minor),
                "credit": "true",
                "date": self._date(event.occurred_at),
                "description": f"Top-up via {event.provider}, txn {event.provider_txn}",
            }
        )
        if isinstance(added, Retry):
            return added
        if added.get("result") == "success":
            return Delivered("WHMCS transaction added")
        message = str(added.get("message", ""))
        if message.strip() != DUPLICATE_TRANSID:
            return Retry(f"WHMCS AddTransaction refused: {short(message, self._secret) or 'no message'}")
        return await self._confirm_existing(event)

    async def close(self) -> None:
        await self._client.close()

    async def _confirm_existing(self, event: Event) -> Outcome:
        found = await self._call({"action": "GetTransactions", "transid": str(event.id)})
        if isinstance(found, Retry):
            return found
        if found.get("result") != "success":
            message = short(str(found.get("message", "")), self._secret)
            return Retry(f"WHMCS GetTransactions refused: {message or 'no message'}")
        for row in _transactions(found):
            if str(row.get("transid")) != str(event.id):
                continue
            same_client = str(row.get("userid")) == event.account_ref
            if same_client and _minor(row.get("amountin")) == event.amount_minor:
                return Delivered("WHMCS already holds this transaction")
            return Retry("WHMCS holds our transaction id with another client or amount: check it by hand")
        return Retry("WHMCS calls our transaction id a duplicate but does not list it")

    def _date(self, occurred_at: datetime) -> str:
        # The day the customer paid, in the deployment's zone, not the day delivery succeeded.
        return occurred_at.astimezone(self._zone).strftime(self._date_format)

    async def _call(self, fields: dict[str, str]) -> dict[str, Any] | Retry:
        form = {**fields, "identifier": self._identifier, "secret": self._secret, "responsetype": "json"}
        action = fields["action"]
        try:
            async with self._client.session().post(
                self._endpoint, data=form, allow_redirects=False
            ) as response:
                status = response.status
                raw = await response.read()
        except TRANSPORT_ERRORS as exc:
            return unreachable("WHMCS", exc)
        try:
            answer = orjson.loads(raw)
        except orjson.JSONDecodeError:
            answer = None
        if isinstance(answer, dict) and status in _REFUSED_CALLER:
            # WHMCS answers bad credentials and unlisted addresses with 401/403 and a message.
            message = short(str(answer.get("message", "")), self._secret)
            return Retry(f"WHMCS {action} answered HTTP {status}: {message}: check TOLEM_BILLING_LOGIN")
        if status != _HTTP_OK:
            return Retry(f"WHMCS {action} answered HTTP {status}")
        if not isinstance(answer, dict) or answer.get("result") not in {"success", "error"}:
            return Retry(f"WHMCS {action} answered something other than its JSON result")
        return answer


def _transactions(answer: dict[str, Any]) -> list[dict[str, Any]]:
    # Listed as {"transactions": {"transaction": [...]}}; tolerate a bare list as well.
    listed = answer.get("transactions")
    if isinstance(listed, dict):
        listed = listed.get("transaction")
    return [row for row in listed if isinstance(row, dict)] if isinstance(listed, list) else []


def _minor(amount: Any) -> int | None:
    """WHMCS's decimal text ("150.00") in minor units, exactly; None when it is not a whole amount."""
    try:
        value = Decimal(str(amount)) * MINOR_PER_MAJOR
    except InvalidOperation:
        return None
    return int(value) if value == value.to_integral_value() else None
