"""Reading Payme's JSON-RPC requests: the envelope, each parameter, and Payme's timestamps.

Validation is written out by hand rather than through pydantic models because each field's
failure has its own Payme code: a missing field is -32600, an unacceptable amount -31001, an
unacceptable account -31050. Checks run in that order, so the answer to a request with several
faults does not depend on dictionary order.
"""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final, TypeVar

import orjson

from tolem.protocols.payme import codes

RequestId = int | str | None
T = TypeVar("T")

EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_MS: Final = timedelta(milliseconds=1)
# Payme's transaction id is 24 characters; our column holds up to 64.
MAX_ID_LENGTH: Final = 64
# Request ids are echoed back: bounded so that an echo cannot be used to inflate answers.
MAX_REQUEST_ID_LENGTH: Final = 128
# 9999-12-31T23:59:59.999Z: the last millisecond both Python and PostgreSQL can hold.
MAX_TIMESTAMP_MS: Final = 253_402_300_799_999
# Far above any real payment (10 trillion in major units), far below bigint: an amount the
# database could not hold must be refused as an amount, not fail as a system error.
MAX_AMOUNT_MINOR: Final = 10**15
# A code is at most 32 characters; typed with spaces it stays well under this. Anything longer is
# refused before it reaches the logs or the database.
MAX_CODE_INPUT: Final = 64
# Cancel reasons are stored in an integer column.
MAX_REASON: Final = 2**31 - 1


@dataclass(frozen=True, slots=True)
class Call:
    """A well-formed JSON-RPC request: method name and named params."""

    method: str
    params: dict[str, Any]


def decode(body: bytes) -> Any:
    """The JSON document, or -32700. orjson refuses invalid UTF-8, NaN and trailing garbage."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise codes.parse_error() from exc


def request_id(document: Any) -> RequestId:
    """The request's `id`, to echo in the answer; -32600 (answered with id null) if unusable."""
    if not isinstance(document, dict):
        raise codes.invalid_request("request")
    value = document.get("id")
    if value is None or (isinstance(value, int) and not isinstance(value, bool)):
        return value
    if isinstance(value, str) and len(value) <= MAX_REQUEST_ID_LENGTH:
        return value
    raise codes.invalid_request("id")


@dataclass(frozen=True, slots=True)
class Glimpse:
    """What a refused call asked, read without acting on it: the id to echo, and the method,
    transaction id and payment code it named (each None when absent or unusable)."""

    request_id: RequestId
    method: str | None
    txn: str | None
    code: str | None


def glimpse(body: bytes) -> Glimpse:
    """The parts of a body a refusal may echo or journal; never raises, whatever the body."""
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError:
        return Glimpse(None, None, None, None)
    if not isinstance(document, dict):
        return Glimpse(None, None, None, None)
    params = document.get("params")
    if not isinstance(params, dict):
        params = {}
    method = document.get("method")
    return Glimpse(
        request_id=_or_none(request_id, document),
        method=method if isinstance(method, str) else None,
        txn=_or_none(transaction_id, params),
        code=_or_none(account_code, params),
    )


def _or_none(read: Callable[[dict[str, Any]], T], document: dict[str, Any]) -> T | None:
    try:
        return read(document)
    except codes.PaymeError:
        return None


def call(document: dict[str, Any]) -> Call:
    """Method and params of a request whose id was already read."""
    method = document.get("method")
    if not isinstance(method, str) or not method:
        raise codes.invalid_request("method")
    params = document.get("params")
    if not isinstance(params, dict):
        raise codes.invalid_request("params")
    return Call(method=method, params=params)


def require(params: dict[str, Any], *names: str) -> None:
    """-32600 naming the first of `names` that is absent."""
    for name in names:
        if name not in params:
            raise codes.invalid_request(name)


def _is_int(value: Any) -> bool:
    # bool is an int in Python but `true` is not a number in JSON.
    return isinstance(value, int) and not isinstance(value, bool)


def transaction_id(params: dict[str, Any]) -> str:
    """Payme's transaction `id`: a string of 1 to 64 characters."""
    require(params, "id")
    value = params["id"]
    if not isinstance(value, str) or not 0 < len(value) <= MAX_ID_LENGTH or not value.isprintable():
        raise codes.invalid_request("id")
    return value


def timestamp(params: dict[str, Any], name: str) -> int:
    """A Payme Timestamp (integer milliseconds since the epoch, UTC)."""
    require(params, name)
    value = params[name]
    if not _is_int(value) or not 0 <= value <= MAX_TIMESTAMP_MS:
        raise codes.invalid_request(name)
    return int(value)


def amount(params: dict[str, Any]) -> int:
    """A positive integer amount in minor units; anything else is -31001 (never a float)."""
    require(params, "amount")
    value = params["amount"]
    if not _is_int(value) or not 0 < value <= MAX_AMOUNT_MINOR:
        raise codes.wrong_amount()
    return int(value)


def account_code(params: dict[str, Any]) -> str:
    """The payment code from `account.code`, as typed; the core checks its format.

    Only a string is accepted: a number would have lost the leading zeros of our codes and
    could then name another (imported, all-digit) code.
    """
    require(params, "account")
    account = params["account"]
    if not isinstance(account, dict):
        raise codes.bad_account()
    code = account.get(codes.ACCOUNT_FIELD)
    if not isinstance(code, str) or not code.strip() or len(code) > MAX_CODE_INPUT:
        raise codes.bad_account()
    return code


def reason(params: dict[str, Any]) -> int:
    """CancelTransaction's `reason`: an integer code (Payme defines 1-5 and 10)."""
    require(params, "reason")
    value = params["reason"]
    if not _is_int(value) or not 0 <= value <= MAX_REASON:
        raise codes.invalid_request("reason")
    return int(value)


def from_ms(value: int) -> datetime:
    """A Payme Timestamp as an aware UTC datetime, exactly (no float on the way)."""
    return EPOCH + value * _MS


def to_ms(moment: datetime | None) -> int:
    """An aware datetime as a Payme Timestamp; 0 stands for "not happened" as Payme expects."""
    if moment is None:
        return 0
    return (moment - EPOCH) // _MS
