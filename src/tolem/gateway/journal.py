"""The journal row of one gateway call: the adapter's log line and our answer, masked.

Codes are masked and secrets replaced before anything is stored; the row is written later, in a
batch, by `tolem.gateway.journal_writer`.
"""

import contextlib
import json
import re
from datetime import datetime
from typing import Any, Final

from aiohttp import web

from tolem.core.payment_codes import mask
from tolem.db.journal import JournalEntry
from tolem.log import LogLine

# Large enough for a Payme statement page; anything longer is cut (the log says so in `details`).
MAX_BODY_CHARS: Final = 16 * 1024
_MAX_TEXT: Final = 64
_MAX_DETAIL_TEXT: Final = 200
_MASK_KEEP: Final = 4
# Keys whose value is a payment code, in any protocol's JSON or XML answer.
_CODE_KEYS: Final = frozenset({"account", "code", "merchant_trans_id", "payment_code"})
# Keys whose value must never be stored at all.
_SECRET_KEYS: Final = frozenset(
    {"authorization", "key", "password", "secret", "sign", "sign_string", "signature", "token"}
)
# Only elements named by those keys (in any case): every other element of an answer is left as
# it is, so the regex's callback runs for the few that need it, not for every element.
_XML_FIELD_RE: Final = re.compile(
    r"<(?P<tag>(?i:"
    + "|".join(sorted(map(re.escape, _CODE_KEYS | _SECRET_KEYS), key=len, reverse=True))
    + r"))>(?P<value>[^<]*)</(?P=tag)>"
)
# Safety net for codes an answer carries under a key we do not know: issued codes have this shape.
# The look-behind comes after the literal "00" so that the regex engine can skip ahead to each
# "00" instead of trying every position.
_ISSUED_CODE_RE: Final = re.compile(r"00(?<![0-9]00)[0-9]{10}(?![0-9])")
_UNMASKED_RE: Final = re.compile(r"[0-9A-Za-z]{5}")
# log_line keys that have their own column; the rest (non-secret by contract) go to `details`.
_COLUMN_KEYS: Final = frozenset({"provider", "command", "txn", "code", "result"})


def _clip(value: object, limit: int = _MAX_TEXT) -> str | None:
    if value is None:
        return None
    return str(value)[:limit]


def masked_code(value: object) -> str | None:
    """The code as stored: already masked by the adapter, or masked here if it was not."""
    if value is None:
        return None
    text = str(value)
    if _UNMASKED_RE.search(text):
        text = mask(text) or ""
    return text[:_MAX_TEXT]


def _scrub_json(value: Any, key: str | None = None) -> Any:
    lowered = None if key is None else key.lower()
    if lowered in _SECRET_KEYS:
        return "***"
    if isinstance(value, dict):
        return {k: _scrub_json(v, str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [_scrub_json(v, key) for v in value]
    # Only text: Payme's error objects carry their numeric error code under "code" too.
    if lowered in _CODE_KEYS and isinstance(value, str):
        return mask(value)
    return value


def _scrub_xml_field(match: re.Match[str]) -> str:
    tag, value = match.group("tag"), match.group("value")
    lowered = tag.lower()
    if lowered in _SECRET_KEYS:
        value = "***"
    elif lowered in _CODE_KEYS:
        value = mask(value) or ""
    return f"<{tag}>{value}</{tag}>"


_NOT_JSON: Final = object()


def scrub_body(body: str) -> str:
    """An answer body fit for storing: codes masked, secrets replaced, cut to MAX_BODY_CHARS."""
    # Only a body that can be JSON is parsed as JSON: a failed parse (every XML answer) costs
    # an exception per call.
    document: Any = _NOT_JSON
    if body.lstrip()[:1] in ("{", "["):
        with contextlib.suppress(ValueError):
            document = json.loads(body)
    if document is _NOT_JSON:
        text = _XML_FIELD_RE.sub(_scrub_xml_field, body)
    else:
        text = json.dumps(_scrub_json(document), ensure_ascii=False)
    text = _ISSUED_CODE_RE.sub(lambda m: mask(m.group(0)) or "", text)
    return text[:MAX_BODY_CHARS]


def _body_text(response: web.StreamResponse) -> str | None:
    if not isinstance(response, web.Response):
        return None
    if isinstance(response, web.HTTPException):
        return response.text
    body = response.body
    if isinstance(body, bytes | bytearray):
        return bytes(body).decode("utf-8", errors="replace")
    return None


def _details(line: LogLine) -> dict[str, Any]:
    details: dict[str, Any] = {}
    for key, value in line.items():
        if key in _COLUMN_KEYS:
            continue
        if isinstance(value, str):
            details[key] = value[:_MAX_DETAIL_TEXT]
        elif value is None or isinstance(value, bool | int | float):
            details[key] = value
        else:
            details[key] = str(value)[:_MAX_DETAIL_TEXT]
    return details


def entry_for(
    *,
    provider: str,
    method: str,
    remote_addr: str | None,
    received_at: datetime,
    duration_s: float,
    line: LogLine,
    response: web.StreamResponse,
    request_id: str | None,
) -> JournalEntry:
    """The journal row of one call, from the adapter's log line and our answer."""
    body = _body_text(response)
    return JournalEntry(
        received_at=received_at,
        provider=provider,
        remote_addr=remote_addr,
        method=method[:16],
        command=_clip(line.get("command")) or "unknown",
        txn=_clip(line.get("txn")),
        code_masked=masked_code(line.get("code")),
        result=_clip(line.get("result"), 32),
        http_status=response.status,
        response_body=None if body is None else scrub_body(body),
        duration_us=max(int(duration_s * 1_000_000), 0),
        request_id=_clip(request_id),
        details=_details(line),
    )
