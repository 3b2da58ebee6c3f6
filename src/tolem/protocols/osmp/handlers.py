"""The OSMP adapter: check looks up, pay credits exactly once, status reports, cancel reverses.

Order of work for every request, so that a refused caller leaves no trace but a log line and
its journal row: IP allow-list and Basic credentials (HTTP 403; the parameters are read only to
record what the call asked); then the parameters, the command, and only then the core. Every
answer after that is HTTP 200 with the XML body, and every one of them echoes `osmp_txn_id`.
"""

from dataclasses import dataclass
from typing import ClassVar, Final
from zoneinfo import ZoneInfo

import structlog
from aiohttp import web

from tolem.core import errors
from tolem.core.model import PayCommand, Payment, PaymentState, Provider, WireProtocol
from tolem.core.payment_codes import MAX_CODE_LENGTH, mask, mask_name, normalize
from tolem.core.service import PaymentService
from tolem.log import LogLine
from tolem.protocols.auth import refusal
from tolem.protocols.base import GatewayContext, ProtocolAdapter
from tolem.protocols.osmp import codes, wire
from tolem.protocols.osmp.codes import Result
from tolem.protocols.osmp.wire import Command, OsmpRequest, WireError

_log = structlog.get_logger("tolem.osmp")

# What `<state>` says of a stored payment. OSMP payments are credited at once, so a reservation
# only exists if another protocol's provider shares the table; it is reported, not guessed at.
STATES: Final = {
    PaymentState.CREDITED: "paid",
    PaymentState.REVERSED: "cancelled",
    PaymentState.VOIDED: "cancelled",
    PaymentState.RESERVED: "pending",
}


@dataclass(frozen=True, slots=True)
class Echo:
    """The txn_id to echo, once read, so that the gateway's last-resort answer carries it."""

    txn_id: str | None


ECHO: Final = web.RequestKey("osmp_echo", Echo)


def _forbidden() -> web.Response:
    # Not an OSMP answer on purpose: a caller we do not know gets nothing it could act on, and
    # a misconfigured genuine aggregator sees "no answer" and retries until the list is fixed.
    return web.Response(status=403, text="forbidden\n")


class OsmpAdapter(ProtocolAdapter):
    """check / pay / status / cancel over the core's check / pay / status / cancel."""

    protocol: ClassVar[WireProtocol] = WireProtocol.OSMP

    def temporary_error(self, request: web.Request, provider: Provider) -> web.StreamResponse:
        """Result 1, echoing txn_id if it was read before things went wrong."""
        known = request.get(ECHO)
        return wire.answer(None if known is None else known.txn_id, Result.TEMPORARY)

    async def handle(
        self,
        request: web.Request,
        provider: Provider,
        context: GatewayContext,
        log_line: LogLine,
    ) -> web.StreamResponse:
        log_line["command"] = "unparsed"
        refused = await refusal(request, provider, context.settings.trusted_proxies)
        if refused is not None:
            await _note_refused(request, log_line)
            log_line.update({"result": "forbidden", "refusal": refused})
            return _forbidden()
        txn_id: str | None = None
        try:
            params = await wire.read_params(request)
            txn_id = wire.txn_id_of(params)
            request[ECHO] = Echo(txn_id)
            log_line["command"] = wire.command_name(params.get("command"))
            if txn_id is not None:
                log_line["txn"] = txn_id
            zone = ZoneInfo(provider.timezone or context.settings.timezone)
            osmp = wire.parse_request(params, zone)
            wire.require_currency(params, provider.currency)
        except WireError as exc:
            log_line["refusal"] = exc.comment
            return _answered(log_line, wire.answer(txn_id, exc.result, exc.comment), exc.result)

        if osmp.account is not None:
            code = normalize(osmp.account)
            log_line["code"] = mask(code) if len(code) <= MAX_CODE_LENGTH else "(too long)"
        if osmp.sum_minor is not None:
            log_line["amount"] = osmp.sum_minor
        call = _Call(context.service, provider, osmp, log_line)
        try:
            match osmp.command:
                case Command.CHECK:
                    return await call.check()
                case Command.PAY:
                    return await call.pay()
                case Command.STATUS:
                    return await call.status()
                case Command.CANCEL:
                    return await call.cancel()
        except errors.DomainError as exc:
            mapped = codes.from_domain(exc)
            if mapped is None:
                # A refusal this table does not know is not known to be final: retry.
                _log.warning("osmp_unmapped_refusal", refusal=exc.code)
                log_line["error"] = exc.code
                return _answered(log_line, wire.answer(osmp.txn_id, Result.TEMPORARY), Result.TEMPORARY)
            result, comment = mapped
            log_line["refusal"] = exc.code
            return _answered(log_line, wire.answer(osmp.txn_id, result, comment), result)
        except errors.TemporarilyUnavailable as exc:
            log_line["error"] = str(exc)
            return _answered(log_line, wire.answer(osmp.txn_id, Result.TEMPORARY), Result.TEMPORARY)


async def _note_refused(request: web.Request, log_line: LogLine) -> None:
    """Command, txn_id and masked code of a refused call, for its journal row.

    The parameters (the body bounded by the gateway's size limit) are read for that record
    only: the caller still gets nothing but 403, and nothing reaches the core.
    """
    try:
        params = await wire.read_params(request)
    except WireError:
        return
    log_line["command"] = wire.command_name(params.get("command"))
    txn_id = wire.txn_id_of(params)
    if txn_id is not None:
        log_line["txn"] = txn_id
    if "account" in params:
        code = normalize(params["account"])
        log_line["code"] = mask(code) if len(code) <= MAX_CODE_LENGTH else "(too long)"


def _answered(log_line: LogLine, response: web.Response, result: Result) -> web.Response:
    log_line["result"] = str(int(result))
    return response


@dataclass(frozen=True, slots=True)
class _Call:
    service: PaymentService
    provider: Provider
    osmp: OsmpRequest
    log_line: LogLine

    def _payment_answer(self, payment: Payment, *, with_state: bool) -> web.Response:
        self.log_line.update({"payment_id": payment.id, "code": mask(payment.payment_code)})
        state = STATES[payment.state] if with_state else None
        response = wire.answer(
            self.osmp.txn_id,
            Result.OK,
            prv_txn=payment.id,
            sum_minor=payment.amount_minor,
            state=state,
        )
        return _answered(self.log_line, response, Result.OK)

    async def check(self) -> web.Response:
        """May this account be paid (with this sum)? Moves and stores nothing.

        A zero or missing sum is a pure lookup: the limits apply only to a real sum.
        """
        assert self.osmp.account is not None
        amount = self.osmp.sum_minor or None
        found = await self.service.check(self.provider, self.osmp.account, amount)
        # The masked name lets the payer see the code is theirs; never the balance.
        response = wire.answer(
            self.osmp.txn_id,
            Result.OK,
            fields={"name": mask_name(found.payer_name)},
        )
        return _answered(self.log_line, response, Result.OK)

    async def pay(self) -> web.Response:
        """Credits once per txn_id; a repeat answers what the first one answered."""
        osmp = self.osmp
        assert osmp.account is not None
        assert osmp.sum_minor is not None
        assert osmp.external_id is not None
        if osmp.sum_minor == 0:
            raise errors.AmountTooSmall("zero sum")
        command = PayCommand(
            external_id=osmp.external_id,
            payment_code=osmp.account,
            amount_minor=osmp.sum_minor,
            provider_time=osmp.txn_date,
            provider_time_raw=osmp.txn_date_raw,
        )
        outcome = await self.service.pay(self.provider, command)
        self.log_line["replayed"] = outcome.replayed
        # Whatever happened since (a cancel included), the repeat gets the first answer again.
        return self._payment_answer(outcome.payment, with_state=False)

    async def status(self) -> web.Response:
        """What became of a txn_id: paid or cancelled; 300 for one we never accepted."""
        payment = await self.service.status(
            self.provider,
            external_id=self.osmp.external_id,
            payment_id=self.osmp.prv_txn,
        )
        return self._payment_answer(payment, with_state=True)

    async def cancel(self) -> web.Response:
        """Reverses a paid payment once; a repeat answers the same."""
        outcome = await self.service.cancel(
            self.provider,
            external_id=self.osmp.external_id,
            payment_id=self.osmp.prv_txn,
        )
        self.log_line["replayed"] = outcome.replayed
        return self._payment_answer(outcome.payment, with_state=True)
