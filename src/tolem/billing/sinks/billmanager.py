"""Credits become BILLmanager payments: payment.add creates one, payment.setpaid credits it.

BILLmanager cannot find a payment by our event id, so the payment id that payment.add answers is
saved (Progress.save) before setpaid is asked, and a later attempt resumes from the saved id
instead of adding a second payment. Only setpaid moves money in BILLmanager, and it is only ever
asked for the saved payment: an add whose answer was lost leaves an unpaid "new" payment behind,
never a second credit.

Answers with `out=json` wrap every value as {"$": "..."}; success is a doc without "error",
failure `{"doc": {"error": {"$type": ..., "$object": ..., "msg": {"$": ...}}}}`.
"""

from typing import Any, Final

import orjson

from tolem.billing.sink import Delivered, Event, Manual, Outcome, Progress, Retry
from tolem.billing.sinks._http import TRANSPORT_ERRORS, Client, short, unreachable
from tolem.core.money import format_amount

# Status 4 of BILLmanager's payment list is "credited" (the function `payment`).
_CREDITED: Final = "4"
_HTTP_OK: Final = 200


class Answer:
    """One BILLmanager `doc` (the answer's only top-level key)."""

    def __init__(self, doc: dict[str, Any]) -> None:
        self.doc = doc

    @property
    def error(self) -> dict[str, Any] | None:
        error = self.doc.get("error")
        return error if isinstance(error, dict) else None

    def error_text(self, *secrets: str) -> str:
        error = self.error or {}
        kind = str(error.get("$type", "unknown"))
        return f"{kind}: {short(_text(error.get('msg')), *secrets)}".rstrip(": ")


class BillmanagerSink:
    """Credits the bound client's balance through the BILLmanager API as an admin (authinfo)."""

    name = "billmanager"

    def __init__(
        self, url: str, login: str, password: str, *, paymethod: str, currency_id: str, timeout: float
    ) -> None:
        self._endpoint = url.rstrip("/") + "/billmgr"
        self._authinfo = f"{login}:{password}"
        self._password = password
        self._paymethod = paymethod
        self._currency_id = currency_id
        self._client = Client(timeout)

    async def deliver(self, event: Event, progress: Progress) -> Outcome:
        if event.type == "payment.reversed":
            return Manual("reversal: take the amount back from the BILLmanager client by hand")
        if event.type == "payment.voided":
            return Manual("void: the reservation was never credited to BILLmanager; nothing to undo")
        if not event.account_ref:
            return Manual("account not bound to a BILLmanager client")
        payment_id = progress.remote_ref
        if payment_id is None:
            added = await self._call(self._add_params(event))
            if isinstance(added, Retry):
                return added
            if added.error is not None:
                return Retry(f"payment.add refused: {added.error_text(self._password)}")
            payment_id = _payment_id(added.doc)
            if payment_id is None:
                return Retry("payment.add answered without a payment id")
            # Committed before setpaid: a crash from here on resumes with this payment.
            await progress.save(payment_id)
        paid = await self._call(
            {"func": "payment.setpaid", "elid": payment_id, "externalid": str(event.id), "sok": "ok"}
        )
        if isinstance(paid, Retry):
            return paid
        if paid.error is None and "ok" in paid.doc:
            return Delivered(f"BILLmanager payment {payment_id} credited")
        # setpaid on a payment credited by an earlier attempt is refused; its status says so.
        if await self._is_credited(payment_id):
            return Delivered(f"BILLmanager payment {payment_id} was already credited")
        if paid.error is not None:
            return Retry(f"payment.setpaid {payment_id} refused: {paid.error_text(self._password)}")
        return Retry(f"payment.setpaid {payment_id} gave an answer without ok or error")

    async def close(self) -> None:
        await self._client.close()

    def _add_params(self, event: Event) -> dict[str, str]:
        params = {
            "func": "payment.add",
            "su": event.account_ref or "",
            "amount": format_amount(event.amount_minor),
            "payment_currency": self._currency_id,
            "paymethod": self._paymethod,
            "sok": "ok",
        }
        if event.payer_ref:
            params["profile"] = event.payer_ref
        return params

    async def _is_credited(self, payment_id: str) -> bool:
        listed = await self._call({"func": "payment", "filter": "on", "id": payment_id})
        if isinstance(listed, Retry) or listed.error is not None:
            return False
        elems = listed.doc.get("elem")
        rows = elems if isinstance(elems, list) else [elems]
        return any(
            isinstance(row, dict)
            and _text(row.get("id")) == payment_id
            and _text(row.get("status")) == _CREDITED
            for row in rows
        )

    async def _call(self, params: dict[str, str]) -> Answer | Retry:
        # POSTed, so that authinfo stays out of URLs and the receiver's access logs.
        form = {**params, "authinfo": self._authinfo, "out": "json"}
        try:
            async with self._client.session().post(
                self._endpoint, data=form, allow_redirects=False
            ) as response:
                status = response.status
                raw = await response.read()
        except TRANSPORT_ERRORS as exc:
            return unreachable("BILLmanager", exc)
        func = params["func"]
        if status != _HTTP_OK:
            return Retry(f"BILLmanager {func} answered HTTP {status}")
        try:
            document = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return Retry(f"BILLmanager {func} answered something other than JSON (is out=json served?)")
        doc = document.get("doc") if isinstance(document, dict) else None
        if not isinstance(doc, dict):
            return Retry(f"BILLmanager {func} answered JSON without a doc")
        error = doc.get("error")
        if isinstance(error, dict) and str(error.get("$type", "")) in {"auth", "access"}:
            kind = error.get("$type")
            return Retry(f"BILLmanager refused our credentials ({kind}): check TOLEM_BILLING_LOGIN")
        return Answer(doc)


def _text(value: Any) -> str:
    """The text of an `out=json` value ({"$": "..."}), or of the first of several."""
    if isinstance(value, list):
        value = value[0] if value else None
    if isinstance(value, dict):
        value = value.get("$")
    return "" if value is None else str(value)


def _payment_id(doc: dict[str, Any]) -> str | None:
    # payment.add answers the new id as payment_id, and as id (one value or one per step).
    for key in ("payment_id", "id"):
        text = _text(doc.get(key))
        if text.isdigit():
            return text
    return None
