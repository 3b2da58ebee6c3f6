"""OSMP's wire format: parameters by GET query or url-encoded POST, XML answers out.

Parsing is explicit rather than a pydantic model because each parameter's failure has its own
OSMP code (4 for the account, 300 for the rest) and because the raw texts are kept: the answer
echoes `txn_id` exactly as it came, and `txn_date` is stored as sent.
"""

import enum
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final
from urllib.parse import parse_qsl
from xml.sax.saxutils import escape, quoteattr
from zoneinfo import ZoneInfo

from aiohttp import web

from tolem.core.money import AmountError, format_amount, parse_amount
from tolem.protocols.osmp.codes import COMMENTS, Result

# A real request has a handful of parameters (command, txn_id, txn_date, account, sum, and a few
# optional ones such as prv_id, trm_id, ccy); many more is not a kiosk.
MAX_FIELDS: Final = 64
# Pay24 sends txn_id with up to 28 digits (QIWI up to 20): more than bigint holds, so it is
# kept as text.
_TXN_ID_RE: Final = re.compile(r"[0-9]{1,28}")
# The account is whatever the payer typed; OSMP allows up to 200 characters.
MAX_ACCOUNT_LENGTH: Final = 200
_TXN_DATE_RE: Final = re.compile(r"[0-9]{14}")
# No kiosk accepted a payment in another millennium.
_TXN_YEARS: Final = range(2000, 3000)
_CCY_ALPHA_RE: Final = re.compile(r"[A-Za-z]{3}")
# ISO 4217 numeric codes of the currencies a deployment here may hold; others are refused.
_CCY_NUMERIC: Final = {"417": "KGS", "398": "KZT", "643": "RUB", "860": "UZS", "840": "USD"}
_FORM: Final = "application/x-www-form-urlencoded"
# What a missing Content-Type reads as; kiosks that POST without one still send a form.
_NO_TYPE: Final = "application/octet-stream"
CONTENT_TYPE: Final = "text/xml"
_XML_DECLARATION: Final = '<?xml version="1.0" encoding="UTF-8"?>\n'
# Characters XML 1.0 cannot carry at all, even escaped.
_NOT_XML_RE: Final = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


class Command(enum.Enum):
    """The commands we answer."""

    CHECK = "check"
    PAY = "pay"
    STATUS = "status"
    CANCEL = "cancel"


def _command(raw: str | None) -> Command | None:
    try:
        return Command(raw)
    except ValueError:
        return None


def command_name(raw: str | None) -> str:
    """The log and metrics name of a request's command; never the raw text (it labels metrics)."""
    command = _command(raw)
    return "unknown" if command is None else command.value


class WireError(Exception):
    """A request we cannot act on: answered with `result` and `comment`, nothing moved."""

    def __init__(self, result: Result, comment: str) -> None:
        super().__init__(comment)
        self.result = result
        self.comment = comment


@dataclass(frozen=True, slots=True)
class OsmpRequest:
    """A readable request, fields typed; `txn_id` is the text to echo, `external_id` the key."""

    command: Command
    txn_id: str | None
    account: str | None
    sum_minor: int | None
    txn_date: datetime | None
    txn_date_raw: str | None
    prv_txn: int | None

    @property
    def external_id(self) -> str | None:
        """txn_id as our idempotency key: its number, so `007` and `7` are one payment.

        The aggregator's id is an integer; a retry that formats it differently must still
        find the first attempt rather than credit again.
        """
        if self.txn_id is None:
            return None
        return str(int(self.txn_id))


def _pairs(text: str) -> list[tuple[str, str]]:
    """The fields of a url-encoded string, read by strict `parse_qsl`, minus empty fields.

    A stray `&` (`...&sum=1.00&`) is common in hand-built kiosk URLs and says nothing, so empty
    fields are dropped first; a field without `=` is refused, since its meaning is unknown, and
    so are percent-escapes that are not UTF-8.
    """
    fields = [part for part in text.rstrip().split("&") if part]
    if len(fields) > MAX_FIELDS:
        raise WireError(Result.OTHER, "too many parameters")
    if not fields:
        return []
    try:
        return parse_qsl("&".join(fields), keep_blank_values=True, strict_parsing=True, errors="strict")
    except ValueError:  # UnicodeDecodeError included
        raise WireError(Result.OTHER, "unreadable parameters (not url-encoded UTF-8)") from None


async def read_params(request: web.Request) -> dict[str, str]:
    """Every parameter, from the query string and (for POST) the url-encoded body.

    A parameter given twice, in one place or across both, refuses the request: which of the
    two values the aggregator meant is not ours to guess when money depends on it.
    """
    # The raw query, percent-escapes intact, so that invalid UTF-8 is refused, not replaced.
    pairs = _pairs(request.rel_url.raw_query_string)
    if request.method == "POST":
        if request.content_type not in (_FORM, _NO_TYPE):
            raise WireError(Result.OTHER, "POST body must be application/x-www-form-urlencoded")
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            raise WireError(Result.OTHER, "request too large") from None
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            raise WireError(Result.OTHER, "unreadable parameters (not url-encoded UTF-8)") from None
        pairs += _pairs(text)
    if len(pairs) > MAX_FIELDS:
        raise WireError(Result.OTHER, "too many parameters")
    params: dict[str, str] = {}
    for name, value in pairs:
        if name in params:
            raise WireError(Result.OTHER, f"parameter {name[:40]!r} given more than once")
        params[name] = value
    return params


def txn_id_of(params: dict[str, str]) -> str | None:
    """txn_id when it is well formed (the text to echo), else None."""
    raw = params.get("txn_id")
    return raw if raw is not None and _TXN_ID_RE.fullmatch(raw) else None


def _txn_id(params: dict[str, str], *, required: bool) -> str | None:
    raw = params.get("txn_id")
    if raw is None:
        if required:
            raise WireError(Result.OTHER, "missing txn_id")
        return None
    if not _TXN_ID_RE.fullmatch(raw):
        raise WireError(Result.OTHER, "malformed txn_id (digits only, at most 28)")
    return raw


def _account(params: dict[str, str]) -> str:
    raw = params.get("account")
    if raw is None:
        raise WireError(Result.OTHER, "missing account")
    if len(raw) > MAX_ACCOUNT_LENGTH:
        raise WireError(Result.MALFORMED_ACCOUNT, COMMENTS[Result.MALFORMED_ACCOUNT])
    return raw


def _sum(params: dict[str, str], *, required: bool) -> int | None:
    raw = params.get("sum")
    if raw is None:
        if required:
            raise WireError(Result.OTHER, "missing sum")
        return None
    try:
        return parse_amount(raw, allow_zero=True)
    except AmountError:
        raise WireError(Result.OTHER, "malformed sum (dot, at most two decimals)") from None


def _txn_date(params: dict[str, str], zone: ZoneInfo) -> tuple[datetime, str]:
    raw = params.get("txn_date")
    if raw is None:
        raise WireError(Result.OTHER, "missing txn_date")
    if not _TXN_DATE_RE.fullmatch(raw):
        raise WireError(Result.OTHER, "malformed txn_date (YYYYMMDDHHMMSS)")
    try:
        local = datetime.strptime(raw, "%Y%m%d%H%M%S")
    except ValueError:
        raise WireError(Result.OTHER, "impossible txn_date") from None
    if local.year not in _TXN_YEARS:
        raise WireError(Result.OTHER, "txn_date out of range")
    # The aggregator's local time, without offset: the provider's zone or the deployment's.
    return local.replace(tzinfo=zone).astimezone(UTC), raw


def _prv_txn(params: dict[str, str]) -> int | None:
    raw = params.get("prv_txn")
    if raw is None:
        return None
    if not re.fullmatch(r"[1-9][0-9]{0,17}", raw):
        raise WireError(Result.OTHER, "malformed prv_txn")
    return int(raw)


def require_currency(params: dict[str, str], currency: str) -> None:
    """Refuses (7) a `ccy` that is not the provider's currency; classic kiosks send none."""
    raw = params.get("ccy")
    if raw is None:
        return
    given = raw.upper() if _CCY_ALPHA_RE.fullmatch(raw) else _CCY_NUMERIC.get(raw)
    if given != currency:
        raise WireError(Result.FORBIDDEN, "currency refused")


def parse_request(params: dict[str, str], zone: ZoneInfo) -> OsmpRequest:
    """The typed request. Raises WireError: 4 for an over-long account, 300 for the rest."""
    raw_command = params.get("command")
    if raw_command is None:
        raise WireError(Result.OTHER, "missing command")
    command = _command(raw_command)
    if command is None:
        raise WireError(Result.OTHER, "unknown command")
    if command is Command.CHECK:
        # A pre-check may come before the payer typed a sum, or without any txn_id at all.
        txn_id = _txn_id(params, required=False)
        return OsmpRequest(command, txn_id, _account(params), _sum(params, required=False), None, None, None)
    if command is Command.PAY:
        txn_id = _txn_id(params, required=True)
        account = _account(params)
        amount = _sum(params, required=True)
        txn_date, txn_date_raw = _txn_date(params, zone)
        return OsmpRequest(command, txn_id, account, amount, txn_date, txn_date_raw, None)
    txn_id = _txn_id(params, required=True)
    return OsmpRequest(command, txn_id, None, None, None, None, _prv_txn(params))


def _text(value: str) -> str:
    return escape(_NOT_XML_RE.sub("", value))


def _element(name: str, value: str) -> str:
    return f"<{name}>{_text(value)}</{name}>"


def answer(
    txn_id: str | None,
    result: Result,
    comment: str | None = None,
    *,
    prv_txn: int | None = None,
    sum_minor: int | None = None,
    state: str | None = None,
    fields: dict[str, str] | None = None,
) -> web.Response:
    """One OSMP answer, always HTTP 200; `osmp_txn_id` is always present (empty if unknown)."""
    parts = [_element("osmp_txn_id", txn_id or "")]
    if prv_txn is not None:
        parts.append(_element("prv_txn", str(prv_txn)))
    if sum_minor is not None:
        parts.append(_element("sum", format_amount(sum_minor)))
    if state is not None:
        parts.append(_element("state", state))
    parts.append(_element("result", str(int(result))))
    parts.append(_element("comment", COMMENTS[result] if comment is None else comment))
    if fields:
        inner = "".join(
            f"<field{n} name={quoteattr(name)}>{_text(value)}</field{n}>"
            for n, (name, value) in enumerate(fields.items(), start=1)
        )
        parts.append(f"<fields>{inner}</fields>")
    body = f"{_XML_DECLARATION}<response>{''.join(parts)}</response>\n"
    return web.Response(text=body, content_type=CONTENT_TYPE, charset="utf-8")
