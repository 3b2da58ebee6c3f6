"""Payme Merchant API at /gw/{provider}: JSON-RPC 2.0 over the core's two-phase operations.

CreateTransaction reserves (nothing credited), PerformTransaction credits exactly once,
CancelTransaction voids a reservation (state -1) or reverses a credit (state -2). Every repeat is
answered from the stored payment, so it equals the first answer. Every answer is HTTP 200.
"""

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, Final

import orjson
from aiohttp import web

from tolem.core import errors
from tolem.core.model import PayCommand, Payment, PaymentResult, PaymentState, Provider, WireProtocol
from tolem.core.payment_codes import mask, mask_name, normalize
from tolem.core.service import PaymentService
from tolem.log import LogLine
from tolem.protocols.auth import refusal
from tolem.protocols.base import GatewayContext, ProtocolAdapter
from tolem.protocols.payme import codes, wire

# Payme's documented limit: a created transaction not performed within 12 hours of its `time`
# is cancelled with reason 4.
TRANSACTION_TIMEOUT: Final = timedelta(hours=12)
DEFAULT_LOGIN: Final = "Paycom"

STATES: Final = {
    PaymentState.RESERVED: 1,
    PaymentState.CREDITED: 2,
    PaymentState.VOIDED: -1,
    PaymentState.REVERSED: -2,
}


@dataclass(frozen=True, slots=True)
class RpcId:
    """The JSON-RPC id of the request being answered."""

    value: wire.RequestId


# The request id, once read, so that the gateway's last-resort answer can still echo it.
RPC_ID: Final = web.RequestKey("payme_rpc_id", RpcId)

Result = dict[str, Any]


@dataclass(frozen=True, slots=True)
class _Call:
    provider: Provider
    service: PaymentService
    params: dict[str, Any]
    log_line: LogLine
    now: datetime


def utc_now() -> datetime:
    """The real clock (UTC)."""
    return datetime.now(UTC)


def _respond(request_id: wire.RequestId, key: str, value: object) -> web.Response:
    body = orjson.dumps({"jsonrpc": "2.0", "id": request_id, key: value})
    # Payme treats any status but 200 as a system error, so errors are 200 as well.
    return web.Response(body=body, content_type="application/json", charset="utf-8")


def _error(request_id: wire.RequestId, error: codes.PaymeError) -> web.Response:
    return _respond(request_id, "error", error.body())


def _transaction(payment: Payment) -> str:
    return str(payment.id)


def _check_transaction_view(payment: Payment) -> Result:
    return {
        "create_time": wire.to_ms(payment.created_at),
        "perform_time": wire.to_ms(payment.credited_at),
        "cancel_time": wire.to_ms(payment.cancelled_at),
        "transaction": _transaction(payment),
        "state": STATES[payment.state],
        "reason": payment.cancel_reason,
    }


def _statement_view(payment: Payment) -> Result:
    return {
        "id": payment.external_id,
        "time": wire.to_ms(payment.provider_time or payment.created_at),
        "amount": payment.amount_minor,
        "account": {codes.ACCOUNT_FIELD: payment.payment_code},
        **_check_transaction_view(payment),
        "receivers": None,
    }


class PaymeAdapter(ProtocolAdapter):
    """The six Merchant API methods. `now` is Payme's clock for the 12-hour rule (tests set it)."""

    protocol: ClassVar[WireProtocol] = WireProtocol.PAYME

    def __init__(self, now: Callable[[], datetime] = utc_now) -> None:
        self.now = now
        self._methods: dict[str, Callable[[_Call], Awaitable[Result]]] = {
            "CheckPerformTransaction": self._check_perform,
            "CreateTransaction": self._create,
            "PerformTransaction": self._perform,
            "CancelTransaction": self._cancel,
            "CheckTransaction": self._check_transaction,
            "GetStatement": self._statement,
        }

    async def handle(
        self,
        request: web.Request,
        provider: Provider,
        context: GatewayContext,
        log_line: LogLine,
    ) -> web.StreamResponse:
        """Authenticates, reads the JSON-RPC call, runs it and answers, always with HTTP 200."""
        log_line["command"] = "unparsed"
        refused = await refusal(
            request, provider, context.settings.trusted_proxies, default_login=DEFAULT_LOGIN
        )
        if refused is not None:
            return await self._refuse(request, log_line, refused)
        if request.method != "POST":
            return self._fail(log_line, None, codes.not_post())
        request_id: wire.RequestId = None
        try:
            try:
                body = await request.read()
            except web.HTTPRequestEntityTooLarge:
                raise codes.invalid_request("request") from None
            document = wire.decode(body)
            request_id = wire.request_id(document)
            request[RPC_ID] = RpcId(request_id)
            rpc = wire.call(document)
            method = self._methods.get(rpc.method)
            if method is None:
                log_line["command"] = "unknown"  # never the raw name: it labels metrics
                raise codes.method_not_found(rpc.method)
            log_line["command"] = rpc.method
            result = await method(_Call(provider, context.service, rpc.params, log_line, self.now()))
        except codes.PaymeError as exc:
            return self._fail(log_line, request_id, exc)
        except errors.DomainError as exc:
            log_line["refusal"] = exc.code
            return self._fail(log_line, request_id, codes.from_domain(exc))
        except errors.TemporarilyUnavailable as exc:
            log_line["error"] = str(exc)
            return self._fail(log_line, request_id, codes.system_error())
        log_line["result"] = "ok"
        return _respond(request_id, "result", result)

    async def _refuse(self, request: web.Request, log_line: LogLine, reason: str) -> web.Response:
        """-32504, echoing the request's id so that Payme can match the answer to its call.

        The body (bounded by the gateway's size limit) is read for that id, and for the method,
        transaction id and masked code the journal records with the reason; no method runs,
        nothing reaches the store.
        """
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            body = b""
        seen = wire.glimpse(body)
        # Never the raw name: it labels metrics.
        log_line["command"] = seen.method if seen.method in self._methods else "unknown"
        if seen.txn is not None:
            log_line["txn"] = seen.txn
        if seen.code is not None:
            log_line["code"] = mask(normalize(seen.code))
        log_line["refusal"] = reason
        return self._fail(log_line, seen.request_id, codes.insufficient_privilege())

    def temporary_error(self, request: web.Request, provider: Provider) -> web.StreamResponse:
        """-32400, echoing the request id if it was read before things went wrong."""
        known = request.get(RPC_ID)
        return _error(None if known is None else known.value, codes.system_error())

    @staticmethod
    def _fail(
        log_line: LogLine,
        request_id: wire.RequestId,
        error: codes.PaymeError,
    ) -> web.Response:
        log_line["result"] = str(error.code)
        return _error(request_id, error)

    # --- methods ------------------------------------------------------------------------------

    async def _check_perform(self, call: _Call) -> Result:
        wire.require(call.params, "amount", "account")
        amount = wire.amount(call.params)
        code = wire.account_code(call.params)
        call.log_line.update({"code": mask(normalize(code)), "amount": amount})
        found = await call.service.check(call.provider, code, amount)
        # The masked name lets the payer see the code is theirs; never the balance.
        return {"allow": True, "additional": {"name": mask_name(found.payer_name)}}

    async def _create(self, call: _Call) -> Result:
        params = call.params
        wire.require(params, "id", "time", "amount", "account")
        external_id = wire.transaction_id(params)
        time_ms = wire.timestamp(params, "time")
        call.log_line["txn"] = external_id
        amount = wire.amount(params)
        code = wire.account_code(params)
        call.log_line.update({"code": mask(normalize(code)), "amount": amount})
        expire_before = call.now - TRANSACTION_TIMEOUT
        provider_time = wire.from_ms(time_ms)
        if provider_time < expire_before:
            # Too late to start: store nothing, so GetStatement never lists a failed Create.
            # A transaction we already hold goes through reserve, which voids it (reason 4).
            try:
                await call.service.status(call.provider, external_id=external_id)
            except errors.PaymentNotFound:
                raise codes.timed_out() from None
        command = PayCommand(
            external_id=external_id,
            payment_code=code,
            amount_minor=amount,
            provider_time=provider_time,
            provider_time_raw=str(time_ms),
        )
        outcome = await call.service.reserve(
            call.provider,
            command,
            expire_before=expire_before,
            expire_reason=codes.REASON_TIMEOUT,
        )
        payment = self._settled(call, outcome)
        if payment.state is not PaymentState.RESERVED:
            raise codes.cannot_perform(payment.state, payment.cancel_reason)
        return {
            "create_time": wire.to_ms(payment.created_at),
            "transaction": _transaction(payment),
            "state": STATES[payment.state],
        }

    async def _perform(self, call: _Call) -> Result:
        external_id = wire.transaction_id(call.params)
        call.log_line["txn"] = external_id
        outcome = await call.service.perform(
            call.provider,
            external_id=external_id,
            expire_before=call.now - TRANSACTION_TIMEOUT,
            expire_reason=codes.REASON_TIMEOUT,
        )
        payment = self._settled(call, outcome)
        return {
            "transaction": _transaction(payment),
            "perform_time": wire.to_ms(payment.credited_at),
            "state": STATES[payment.state],
        }

    async def _cancel(self, call: _Call) -> Result:
        wire.require(call.params, "id", "reason")
        external_id = wire.transaction_id(call.params)
        reason = wire.reason(call.params)
        call.log_line.update({"txn": external_id, "reason": reason})
        outcome = await call.service.cancel(call.provider, external_id=external_id, reason=reason)
        payment = self._settled(call, outcome)
        return {
            "transaction": _transaction(payment),
            "cancel_time": wire.to_ms(payment.cancelled_at),
            "state": STATES[payment.state],
        }

    async def _check_transaction(self, call: _Call) -> Result:
        external_id = wire.transaction_id(call.params)
        call.log_line["txn"] = external_id
        payment = await call.service.status(call.provider, external_id=external_id)
        call.log_line["code"] = mask(payment.payment_code)
        return _check_transaction_view(payment)

    async def _statement(self, call: _Call) -> Result:
        wire.require(call.params, "from", "to")
        since = wire.timestamp(call.params, "from")
        until = wire.timestamp(call.params, "to")
        payments = await call.service.statement(call.provider, wire.from_ms(since), wire.from_ms(until))
        call.log_line["count"] = len(payments)
        return {"transactions": [_statement_view(p) for p in payments]}

    @staticmethod
    def _settled(call: _Call, outcome: PaymentResult) -> Payment:
        payment = outcome.payment
        call.log_line.update({"code": mask(payment.payment_code), "replayed": outcome.replayed})
        return payment
