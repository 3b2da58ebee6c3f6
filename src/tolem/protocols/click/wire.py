"""Click's wire format: form-encoded requests in, JSON answers out.

Parsing is explicit rather than a pydantic model because each field's failure has its own Click
code (-3 for the action, -2 for the amount, -8 for the rest) and because the raw strings must
survive untouched for the signature check, which runs before anything here is interpreted.
"""

import enum
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final
from urllib.parse import parse_qsl
from zoneinfo import ZoneInfo

import orjson
from aiohttp import web

from tolem.protocols.click.codes import NOTES, ClickError

# What must be present before the signature can even be checked.
SIGNED: Final = (
    "click_trans_id",
    "service_id",
    "merchant_trans_id",
    "amount",
    "action",
    "sign_time",
    "sign_string",
)
PREPARE_ID: Final = "merchant_prepare_id"
# A real request has about a dozen fields; many more is not Click.
MAX_FIELDS: Final = 64
# The longest merchant_trans_id a refusal echoes: a payment code is at most 32 characters, and
# an unauthenticated caller must not be able to have its text mirrored at length.
MAX_ECHO: Final = 64
# Click declares its ids bigint: anything above is not an id it could have issued.
BIGINT_MAX: Final = 2**63 - 1
# Positive, no leading zeros (so the text and the number are one-to-one), at most 20 digits.
_ID_RE: Final = re.compile(r"[1-9][0-9]{0,19}")
# Click's status of the payment on its side: 0, or a negative error code (e.g. -5017).
_STATUS_RE: Final = re.compile(r"-?[0-9]{1,9}")
_SIGN_TIME_RE: Final = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}")
_SIGN_TIME_FORMAT: Final = "%Y-%m-%d %H:%M:%S"
# Click cannot have signed a request in another millennium; bounding the year also keeps every
# stored provider time far below the horizon handlers use to void reservations.
_SIGN_YEARS: Final = range(2000, 3000)
_FORM: Final = "application/x-www-form-urlencoded"
_MULTIPART: Final = "multipart/form-data"


class Action(enum.Enum):
    """Click's `action`: which of the two steps a request is."""

    PREPARE = "0"
    COMPLETE = "1"


def command_name(raw_action: str | None) -> str:
    """The log and metrics name of a request's step, from its raw action."""
    if raw_action == Action.PREPARE.value:
        return "prepare"
    if raw_action == Action.COMPLETE.value:
        return "complete"
    return "unknown"


class WireError(Exception):
    """A request we cannot act on; answered with `code` and the ids it carried (refusal)."""

    def __init__(self, code: ClickError, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


@dataclass(frozen=True, slots=True)
class ClickRequest:
    """An authenticated Prepare or Complete, fields typed; raw texts kept where they matter."""

    action: Action
    click_trans_id: int
    merchant_trans_id: str
    amount_raw: str
    status: int
    sign_time: datetime
    sign_time_raw: str
    merchant_prepare_id: int | None
    click_paydoc_id: int | None

    @property
    def external_id(self) -> str:
        """Click's transaction id as our idempotency key."""
        return str(self.click_trans_id)


def parse_form(body: bytes) -> dict[str, str]:
    """Fields of a url-encoded body; a repeated or unreadable field refuses the whole body.

    A repeated field would leave open which of its values Click signed.
    """
    try:
        text = body.decode("utf-8").rstrip()
        pairs = parse_qsl(
            text,
            keep_blank_values=True,
            strict_parsing=bool(text),
            encoding="utf-8",
            errors="strict",
            max_num_fields=MAX_FIELDS,
        )
    except ValueError as exc:  # UnicodeDecodeError included
        raise WireError(ClickError.BAD_REQUEST, "unreadable form") from exc
    return _unique(pairs)


def _unique(pairs: list[tuple[str, str]]) -> dict[str, str]:
    fields: dict[str, str] = {}
    for name, value in pairs:
        if name in fields:
            raise WireError(ClickError.BAD_REQUEST, f"repeated field {name[:40]!r}")
        fields[name] = value
    return fields


async def read_params(request: web.Request) -> dict[str, str]:
    """The POSTed fields, url-encoded (what Click sends) or multipart."""
    if request.method != "POST":
        raise WireError(ClickError.BAD_REQUEST, "not a POST")
    if request.content_type == _MULTIPART:
        try:
            form = await request.post()
        except ValueError as exc:
            raise WireError(ClickError.BAD_REQUEST, "unreadable form") from exc
        pairs: list[tuple[str, str]] = []
        for name, value in form.items():
            if not isinstance(value, str) or len(pairs) >= MAX_FIELDS:
                raise WireError(ClickError.BAD_REQUEST, "unexpected form content")
            pairs.append((name, value))
        return _unique(pairs)
    # A missing content type is read as a form too: the signature decides, not the header.
    if request.content_type not in (_FORM, "application/octet-stream"):
        raise WireError(ClickError.BAD_REQUEST, "not a form")
    return parse_form(await request.read())


def require_signed(params: dict[str, str]) -> None:
    """Refuses (-8) a request lacking any field the signature covers."""
    missing = [name for name in SIGNED if name not in params]
    if params.get("action") == Action.COMPLETE.value and PREPARE_ID not in params:
        missing.append(PREPARE_ID)
    if missing:
        raise WireError(ClickError.BAD_REQUEST, f"missing {','.join(missing)}")


def _bigint(params: dict[str, str], name: str) -> int:
    text = params[name]
    if not _ID_RE.fullmatch(text) or int(text) > BIGINT_MAX:
        raise WireError(ClickError.BAD_REQUEST, f"malformed {name}")
    return int(text)


def _sign_time(text: str, zone: ZoneInfo) -> datetime:
    if not _SIGN_TIME_RE.fullmatch(text):
        raise WireError(ClickError.BAD_REQUEST, "malformed sign_time")
    try:
        local = datetime.strptime(text, _SIGN_TIME_FORMAT)
    except ValueError as exc:
        raise WireError(ClickError.BAD_REQUEST, "impossible sign_time") from exc
    if local.year not in _SIGN_YEARS:
        raise WireError(ClickError.BAD_REQUEST, "sign_time out of range")
    return local.replace(tzinfo=zone).astimezone(UTC)


def parse_request(params: dict[str, str], zone: ZoneInfo) -> ClickRequest:
    """The typed request; call only after the signature matched.

    Raises WireError: -3 for an action other than 0 / 1, -8 for a missing or malformed field.
    The amount is kept as text here: its refusal (-2) is answered with the ids echoed.
    """
    try:
        action = Action(params["action"])
    except ValueError as exc:
        raise WireError(ClickError.ACTION_NOT_FOUND, "unknown action") from exc
    click_trans_id = _bigint(params, "click_trans_id")
    if "error" not in params or not _STATUS_RE.fullmatch(params["error"]):
        raise WireError(ClickError.BAD_REQUEST, "missing or malformed error")
    prepare_id = _bigint(params, PREPARE_ID) if action is Action.COMPLETE else None
    paydoc_id = _bigint(params, "click_paydoc_id") if "click_paydoc_id" in params else None
    return ClickRequest(
        action=action,
        click_trans_id=click_trans_id,
        merchant_trans_id=params["merchant_trans_id"],
        amount_raw=params["amount"],
        status=int(params["error"]),
        sign_time=_sign_time(params["sign_time"], zone),
        sign_time_raw=params["sign_time"],
        merchant_prepare_id=prepare_id,
        click_paydoc_id=paydoc_id,
    )


def _json(payload: dict[str, object], status: int = 200) -> web.Response:
    return web.Response(
        body=orjson.dumps(payload),
        status=status,
        content_type="application/json",
        charset="utf-8",
    )


def readable_id(text: str | None) -> int | None:
    """The id in a raw field when it is one Click could have issued (else None), unauthenticated."""
    if text is None or not _ID_RE.fullmatch(text) or int(text) > BIGINT_MAX:
        return None
    return int(text)


def refusal(
    code: ClickError, params: dict[str, str] | None = None, *, note: str | None = None
) -> web.Response:
    """The answer to a request we refused before acting on it (not authenticated, unreadable).

    It echoes the ids the request carried, so that Click can tell which of its calls was
    refused: click_trans_id (and, on Complete, merchant_prepare_id) when it is an id Click
    could have issued, merchant_trans_id as sent when it is no longer than MAX_ECHO. Nothing
    is echoed from a form that could not be read.
    """
    payload: dict[str, object] = {}
    if params is not None:
        click_trans_id = readable_id(params.get("click_trans_id"))
        if click_trans_id is not None:
            payload["click_trans_id"] = click_trans_id
        merchant_trans_id = params.get("merchant_trans_id")
        if merchant_trans_id is not None and len(merchant_trans_id) <= MAX_ECHO:
            payload["merchant_trans_id"] = merchant_trans_id
        prepare_id = readable_id(params.get(PREPARE_ID))
        if params.get("action") == Action.COMPLETE.value and prepare_id is not None:
            payload[PREPARE_ID] = prepare_id
    payload |= {"error": int(code), "error_note": note or NOTES[code]}
    return _json(payload)


def answer(
    request: ClickRequest,
    code: ClickError,
    *,
    payment_id: int | None = None,
    note: str | None = None,
) -> web.Response:
    """The answer to an authenticated request, echoing its ids.

    Prepare answers carry our id as merchant_prepare_id, Complete answers as
    merchant_confirm_id; null when the request produced or named no payment of ours.
    """
    id_field = "merchant_prepare_id" if request.action is Action.PREPARE else "merchant_confirm_id"
    return _json(
        {
            "click_trans_id": request.click_trans_id,
            "merchant_trans_id": request.merchant_trans_id,
            id_field: payment_id,
            "error": int(code),
            "error_note": note or NOTES[code],
        }
    )
