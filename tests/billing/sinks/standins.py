"""Stand-in receivers built from each billing's documented request and answer shapes.

Each keeps what it applied, so a test can count credits on the receiver's side, and can be told
to misbehave the way real ones do: answer a status, stall, or apply a call and lose the answer.
"""

import asyncio
import base64
import hashlib
import hmac
import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

SECRET = "whsec_" + base64.b64encode(b"tolem-test-signing-key-32-bytes!").decode()
BILL_LOGIN, BILL_PASSWORD = "tolem-api", "bill-pass-Zq81"
WHMCS_IDENTIFIER, WHMCS_SECRET = "ident-77", "whmcs-secret-Kx02"


def independent_signature(secret: str, msg_id: str, timestamp: str, body: bytes) -> str:
    """Standard Webhooks v1 signature computed from the spec with hmac, not the package."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    digest = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


@dataclass
class WebhookReceiver:
    """Verifies each delivery with the package's verifier and with hmac, dedupes by webhook-id."""

    secret: str = SECRET
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    stall: float = 0.0
    applied: dict[str, dict[str, Any]] = field(default_factory=dict)
    deliveries: int = 0
    rejected: int = 0

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/hook", self.handle)
        return app

    async def handle(self, request: web.Request) -> web.Response:
        self.deliveries += 1
        body = await request.read()
        headers = dict(request.headers)
        try:
            document = Webhook(self.secret).verify(body, headers)
        except WebhookVerificationError:
            self.rejected += 1
            return web.Response(status=401)
        expected = independent_signature(
            self.secret, request.headers["webhook-id"], request.headers["webhook-timestamp"], body
        )
        if expected not in request.headers["webhook-signature"].split(" "):
            self.rejected += 1
            return web.Response(status=401)
        if self.stall:
            await asyncio.sleep(self.stall)
        if self.status < 300:
            # A repeat of an id already applied is acknowledged and not applied again.
            self.applied.setdefault(request.headers["webhook-id"], document)
        return web.Response(status=self.status, headers=self.headers)


def _v(value: object) -> dict[str, str]:
    return {"$": str(value)}


def _bill_error(kind: str, message: str, obj: str = "") -> web.Response:
    error = {"$type": kind, "$object": obj, "msg": _v(message)}
    return web.json_response({"doc": {"$lang": "en", "error": error}})


@dataclass
class BillPayment:
    client: str
    profile: str | None
    amount: str
    currency: str
    paymethod: str
    status: str = "1"  # new; 4 is credited
    externalid: str | None = None


@dataclass
class Billmanager:
    """BILLmanager's /billmgr with authinfo, payment.add, payment.setpaid and the payment list."""

    payments: dict[str, BillPayment] = field(default_factory=dict)
    calls: list[str] = field(default_factory=list)
    # func -> how many of its next calls are applied and then answered with HTTP 500.
    lose_answer: dict[str, int] = field(default_factory=dict)
    # func -> how many of its next calls fail with HTTP 500 before doing anything.
    fail: dict[str, int] = field(default_factory=dict)
    html: bool = False
    _ids: Iterator[int] = field(default_factory=lambda: itertools.count(101))

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/billmgr", self.handle)
        return app

    async def handle(self, request: web.Request) -> web.Response:
        form = dict(await request.post())
        func = str(form.get("func", ""))
        self.calls.append(func)
        if self.html:
            return web.Response(text="<html>login</html>", content_type="text/html")
        if self.fail.get(func, 0) > 0:
            self.fail[func] -= 1
            return web.Response(status=500)
        if form.get("out") != "json":
            return web.Response(text="<doc/>", content_type="text/xml")
        if form.get("authinfo") != f"{BILL_LOGIN}:{BILL_PASSWORD}":
            return _bill_error("auth", "Invalid username or password", "badpassword")
        answer = self.payment_add(form) if func == "payment.add" else None
        answer = answer or (self.setpaid(form) if func == "payment.setpaid" else None)
        answer = answer or (self.listing(form) if func == "payment" else None)
        if answer is None:
            return _bill_error("missed", "Function not found", func)
        if self.lose_answer.get(func, 0) > 0:
            self.lose_answer[func] -= 1
            return web.Response(status=500)
        return answer

    def payment_add(self, form: dict[str, Any]) -> web.Response:
        if form.get("sok") != "ok" or not form.get("su"):
            return _bill_error("missed", "Required parameter missing", "su")
        if form.get("paymethod") != "7" or form.get("payment_currency") != "126":
            return _bill_error("value", "Payment method is not available", "paymethod")
        pid = str(next(self._ids))
        self.payments[pid] = BillPayment(
            client=str(form["su"]),
            profile=form.get("profile"),
            amount=str(form["amount"]),
            currency=str(form["payment_currency"]),
            paymethod=str(form["paymethod"]),
        )
        doc = {
            "id": [_v(pid), {"$step": "payment.add.pay", "$": pid}],
            "payment_id": _v(pid),
            "ok": {"$type": "url", "$": f"/mancgi/sbpayment?elid={pid}"},
        }
        return web.json_response({"doc": doc})

    def setpaid(self, form: dict[str, Any]) -> web.Response:
        payment = self.payments.get(str(form.get("elid")))
        if payment is None:
            return _bill_error("missed", "Payment not found", "elid")
        if payment.status == "4":
            return _bill_error("value", "The payment has already been credited", "status")
        payment.status, payment.externalid = "4", str(form.get("externalid"))
        return web.json_response({"doc": {"ok": _v("ok")}})

    def listing(self, form: dict[str, Any]) -> web.Response:
        wanted = str(form.get("id", ""))
        rows = [{"id": _v(pid), "status": _v(p.status)} for pid, p in self.payments.items() if pid == wanted]
        return web.json_response({"doc": {"elem": rows}})

    def credited(self) -> list[BillPayment]:
        return [p for p in self.payments.values() if p.status == "4"]


@dataclass
class Whmcs:
    """WHMCS's includes/api.php: AddTransaction (unique transid per gateway) and GetTransactions."""

    transactions: list[dict[str, str]] = field(default_factory=list)
    calls: list[str] = field(default_factory=list)
    lose_answer: int = 0

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/includes/api.php", self.handle)
        return app

    async def handle(self, request: web.Request) -> web.Response:
        form = {k: str(v) for k, v in (await request.post()).items()}
        action = form.get("action", "")
        self.calls.append(action)
        if form.get("identifier") != WHMCS_IDENTIFIER or form.get("secret") != WHMCS_SECRET:
            return web.json_response({"result": "error", "message": "Authentication Failed"}, status=403)
        if form.get("responsetype") != "json":
            return web.Response(text="result=error;message=xml only;", content_type="text/plain")
        if action == "AddTransaction":
            return self.add(form)
        if action == "GetTransactions":
            rows = [t for t in self.transactions if t["transid"] == form.get("transid")]
            listed = {"transaction": rows}
            return web.json_response(
                {
                    "result": "success",
                    "totalresults": len(rows),
                    "numreturned": len(rows),
                    "transactions": listed,
                }
            )
        return web.json_response({"result": "error", "message": "Command Not Found"})

    def add(self, form: dict[str, str]) -> web.Response:
        if not form.get("paymentmethod"):
            return web.json_response({"result": "error", "message": "Payment Method is required"})
        same = [
            t
            for t in self.transactions
            if t["transid"] == form.get("transid") and t["gateway"] == form["paymentmethod"]
        ]
        if form.get("transid") and same:
            return web.json_response({"result": "error", "message": "Transaction ID must be Unique"})
        self.transactions.append(
            {
                "id": str(len(self.transactions) + 1),
                "userid": form.get("userid", ""),
                "gateway": form["paymentmethod"],
                "date": form.get("date", ""),
                "description": form.get("description", ""),
                "amountin": form.get("amountin", "0.00"),
                "transid": form.get("transid", ""),
                "credit": form.get("credit", ""),
            }
        )
        if self.lose_answer > 0:
            self.lose_answer -= 1
            return web.Response(status=500)
        return web.Response(body=orjson.dumps({"result": "success"}), content_type="application/json")
