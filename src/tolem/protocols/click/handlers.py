"""The Click adapter: Prepare reserves, Complete credits (or voids) exactly once.

Order of work for every request, so that a refused caller leaves no trace but a log line (and
its journal row): readable form, IP allow-list, service id, signature (all before any lookup);
then the action, the fields, and only then the core. Both steps arrive at the same URL and
differ by `action`. A refusal echoes the ids the form carried.
"""

from typing import Final
from zoneinfo import ZoneInfo

import structlog
from aiohttp import web

from tolem.core import errors
from tolem.core.model import PayCommand, PaymentResult, PaymentState, Provider, WireProtocol
from tolem.core.money import AmountError, parse_amount
from tolem.core.payment_codes import MAX_CODE_LENGTH, mask, normalize
from tolem.core.service import PaymentService
from tolem.log import LogLine
from tolem.protocols.auth import address_refusal
from tolem.protocols.base import GatewayContext, ProtocolAdapter
from tolem.protocols.click import auth, wire
from tolem.protocols.click.codes import (
    ACCOUNT_BLOCKED_NOTE,
    CURRENCY_REFUSED_NOTE,
    WRONG_SERVICE_NOTE,
    ClickError,
)
from tolem.protocols.click.wire import Action, ClickRequest, WireError

_log = structlog.get_logger("tolem.click")

# perform() voids, instead of crediting, a reservation stamped before this instant, and leaves a
# credited payment alone: under one row lock, "void unless already credited". Every stored
# Click time is before it (wire bounds sign_time to years below 3000).
# How soon Click may try again after our "retry" answer.
_RETRY_AFTER_SECONDS: Final = "1"


def temporary_answer() -> web.Response:
    """What we answer when we do not know whether money moved, or could not try.

    Click publishes no retry code: each of its codes, -7 included, is a final answer that makes
    it settle the payment with the payer. A Complete answered -7 while our credit did commit
    would have Click refund a payer we credited. So the answer is no Click answer at all: HTTP
    503 with a body that is not JSON, which no client can read as a code, success included. To
    Click it is the same as a timeout, after which it repeats the request; the repeat then meets
    the stored outcome (a credited payment answers -4, never a second credit).
    """
    return web.Response(
        status=503,
        text="temporarily unavailable, retry later\n",
        headers={"Retry-After": _RETRY_AFTER_SECONDS},
    )


class ClickAdapter(ProtocolAdapter):
    """Click SHOP API (Prepare / Complete) over the core's reserve / perform."""

    protocol = WireProtocol.CLICK

    def temporary_error(self, request: web.Request, provider: Provider) -> web.StreamResponse:
        return temporary_answer()

    async def handle(
        self,
        request: web.Request,
        provider: Provider,
        context: GatewayContext,
        log_line: LogLine,
    ) -> web.StreamResponse:
        log_line["command"] = "unknown"
        address_refused = address_refusal(request, provider, context.settings.trusted_proxies)
        # The form is read even from a refused address, only so that the refusal can echo the
        # ids Click needs to match it; nothing in it goes further than the answer.
        try:
            params = await wire.read_params(request)
        except (WireError, web.HTTPRequestEntityTooLarge) as exc:
            if address_refused is not None:
                return _refused(log_line, None, ClickError.SIGN_CHECK_FAILED, address_refused)
            if isinstance(exc, WireError):
                return _refused(log_line, None, exc.code, exc.reason)
            raise
        _note_asked(log_line, params)
        if address_refused is not None:
            return _refused(log_line, params, ClickError.SIGN_CHECK_FAILED, address_refused)
        try:
            if provider.secret is None or provider.service_id is None:
                _log.warning("click_provider_without_secret", provider=provider.name)
                return _refused(log_line, params, ClickError.SIGN_CHECK_FAILED, "provider not configured")
            if "service_id" not in params:
                return _refused(log_line, params, ClickError.BAD_REQUEST, "missing service_id")
            if not auth.service_matches(provider, params["service_id"]):
                # Not -1: the request may be genuinely signed, only for another service. Click's
                # -8 is its code for a request it got wrong; the note says which field.
                return _refused(
                    log_line, params, ClickError.BAD_REQUEST, "wrong service id", note=WRONG_SERVICE_NOTE
                )
            wire.require_signed(params)
            if not auth.signature_matches(provider, params):
                return _refused(log_line, params, ClickError.SIGN_CHECK_FAILED, "bad signature")
            zone = ZoneInfo(provider.timezone or context.settings.timezone)
            click = wire.parse_request(params, zone)
        except WireError as exc:
            return _refused(log_line, params, exc.code, exc.reason)

        log_line.update({"click_paydoc_id": click.click_paydoc_id, "click_error": click.status})
        try:
            if click.action is Action.PREPARE:
                return await _prepare(context.service, provider, click, log_line)
            return await _complete(context.service, provider, click, log_line)
        except errors.TemporarilyUnavailable as exc:
            log_line.update({"result": "temporary", "error": str(exc)})
            return temporary_answer()


def _note_asked(log_line: LogLine, params: dict[str, str]) -> None:
    """Step, transaction id and masked code for the log line and the journal, from the raw
    form: a refused request is recorded with what it asked, though nothing of it is acted on."""
    log_line["command"] = wire.command_name(params.get("action"))
    click_trans_id = wire.readable_id(params.get("click_trans_id"))
    if click_trans_id is not None:
        log_line["txn"] = str(click_trans_id)
    if "merchant_trans_id" in params:
        code = normalize(params["merchant_trans_id"])
        log_line["code"] = mask(code) if len(code) <= MAX_CODE_LENGTH else "(too long)"


def _refused(
    log_line: LogLine,
    params: dict[str, str] | None,
    code: ClickError,
    reason: str,
    *,
    note: str | None = None,
) -> web.Response:
    log_line.update({"result": str(int(code)), "refusal": reason})
    return wire.refusal(code, params, note=note)


def _done(
    log_line: LogLine,
    click: ClickRequest,
    code: ClickError,
    *,
    result: PaymentResult | None = None,
    note: str | None = None,
) -> web.Response:
    payment_id = None if result is None else result.payment.id
    if result is not None:
        log_line["replayed"] = result.replayed
    log_line.update({"result": str(int(code)), "payment_id": payment_id})
    return wire.answer(click, code, payment_id=payment_id, note=note)


def _amount(click: ClickRequest) -> int | None:
    try:
        return parse_amount(click.amount_raw)
    except AmountError:
        return None


async def _prepare(
    service: PaymentService,
    provider: Provider,
    click: ClickRequest,
    log_line: LogLine,
) -> web.Response:
    """Reserves the payment; a repeat answers from the stored state."""
    amount = _amount(click)
    if amount is None:
        return _done(log_line, click, ClickError.INCORRECT_AMOUNT)
    if click.status > 0:
        return _done(log_line, click, ClickError.BAD_REQUEST)
    if click.status < 0:
        # Click reports the payment already failed on its side: there is nothing to reserve.
        return _done(log_line, click, ClickError.TRANSACTION_CANCELLED)
    command = PayCommand(
        external_id=click.external_id,
        payment_code=click.merchant_trans_id,
        amount_minor=amount,
        provider_time=click.sign_time,
        provider_time_raw=click.sign_time_raw,
    )
    try:
        result = await service.reserve(provider, command)
    except (errors.MalformedCode, errors.UnknownCode):
        return _done(log_line, click, ClickError.USER_NOT_FOUND)
    except errors.AccountBlocked:
        return _done(log_line, click, ClickError.USER_NOT_FOUND, note=ACCOUNT_BLOCKED_NOTE)
    except (errors.AmountTooSmall, errors.AmountTooLarge):
        return _done(log_line, click, ClickError.INCORRECT_AMOUNT)
    except errors.ProviderDisabled:
        return _done(log_line, click, ClickError.TRANSACTION_CANCELLED)
    except errors.CurrencyRefused:
        return _done(log_line, click, ClickError.TRANSACTION_CANCELLED, note=CURRENCY_REFUSED_NOTE)
    except errors.IdempotencyConflict as exc:
        # The same click_trans_id came before with other data: refuse, move nothing.
        first = exc.payment
        if first is not None and first.amount_minor != amount:
            return _done(log_line, click, ClickError.INCORRECT_AMOUNT)
        return _done(log_line, click, ClickError.BAD_REQUEST)
    state = result.payment.state
    if state is PaymentState.RESERVED:
        return _done(log_line, click, ClickError.SUCCESS, result=result)
    if state is PaymentState.CREDITED:
        return _done(log_line, click, ClickError.ALREADY_PAID, result=result)
    return _done(log_line, click, ClickError.TRANSACTION_CANCELLED, result=result)


async def _complete(
    service: PaymentService,
    provider: Provider,
    click: ClickRequest,
    log_line: LogLine,
) -> web.Response:
    """Credits the prepared payment once, or voids it when Click reports a failure.

    The payment is found by our merchant_prepare_id alone. Click's test tool sends a new
    click_trans_id on every step, so a Complete's click_trans_id need not be the Prepare's;
    the payment keeps the Prepare's as its external id, and the answer echoes the request's.
    What ties the two steps together is the signature over merchant_prepare_id, and the amount
    and code below, which must be the prepared ones.
    """
    amount = _amount(click)
    if amount is None:
        return _done(log_line, click, ClickError.INCORRECT_AMOUNT)
    if click.status > 0:
        return _done(log_line, click, ClickError.BAD_REQUEST)
    payment_id = click.merchant_prepare_id
    log_line["merchant_prepare_id"] = payment_id
    try:
        payment = await service.status(provider, payment_id=payment_id)
    except errors.PaymentNotFound:
        return _done(log_line, click, ClickError.TRANSACTION_NOT_FOUND)
    log_line["prepared_txn"] = payment.external_id
    if payment.amount_minor != amount:
        return _done(log_line, click, ClickError.INCORRECT_AMOUNT)
    if payment.payment_code != normalize(click.merchant_trans_id):
        # Click's -5 is "no such user / order (check merchant_trans_id)": the transaction
        # exists, but not for the payer this request names.
        return _done(log_line, click, ClickError.USER_NOT_FOUND)
    try:
        if click.status < 0:
            # Not service.cancel: that would reverse a payment a concurrent Complete credited.
            await service.void(provider, payment_id=payment_id, reason=click.status)
            return _done(log_line, click, ClickError.TRANSACTION_CANCELLED)
        result = await service.perform(provider, payment_id=payment_id)
    except errors.PaymentNotFound:
        return _done(log_line, click, ClickError.TRANSACTION_NOT_FOUND)
    except errors.CurrencyRefused:
        # A reservation written across currencies before the database refused them.
        return _done(log_line, click, ClickError.TRANSACTION_CANCELLED, note=CURRENCY_REFUSED_NOTE)
    except errors.WrongState as refused:
        if refused.payment is not None and refused.payment.state is PaymentState.CREDITED:
            # A concurrent Complete confirmed it first; the failure report changes nothing.
            already = PaymentResult(payment=refused.payment, replayed=True)
            return _done(log_line, click, ClickError.ALREADY_PAID, result=already)
        # Voided now or earlier (or reversed by an operator): nothing stands confirmed.
        return _done(log_line, click, ClickError.TRANSACTION_CANCELLED)
    if result.replayed:
        return _done(log_line, click, ClickError.ALREADY_PAID, result=result)
    return _done(log_line, click, ClickError.SUCCESS, result=result)
