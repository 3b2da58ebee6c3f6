"""Recording gateway calls in the request journal without slowing the answer down.

The gateway hands each finished call to `JournalWriter.record`, which only appends to an
in-memory buffer; a background task writes the buffer in batches (one COPY per batch). So a
pay costs no extra database round trip, and a journal outage cannot fail or delay a payment.

The price: rows still buffered when the process dies (at most `interval` seconds' worth, or
whatever a database outage held back) are lost. The journal is evidence of the conversation,
not the money: payments and the ledger are written in the pay transaction itself and stay the
source of truth; the canonical log line of each call is the second copy.
"""

import asyncio
import contextlib
import json
import re
from datetime import datetime
from typing import Any, Final

import asyncpg
import structlog
from aiohttp import web

from tolem import metrics
from tolem.core.payment_codes import mask
from tolem.db import journal as journal_db
from tolem.db.journal import JournalEntry
from tolem.log import OUTAGE_REPORT_SECONDS, LogLine, Outage

_log = structlog.get_logger("tolem.journal")

# A row the schema refuses must not hold back the rows batched with it. The batch is a binary
# COPY: a value that cannot be encoded is refused here, before the database sees it, as a
# ValueError or TypeError.
_BAD_ROW_ERRORS: Final = (asyncpg.IntegrityConstraintViolationError, asyncpg.DataError, ValueError, TypeError)

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


class JournalWriter:
    """Buffers entries and writes them in batches from one background task.

    `record` never blocks and never raises. When the database refuses writes the buffer keeps
    up to `capacity` entries and then drops the newest, counting them in
    tolem_journal_dropped_total, so memory stays bounded during an outage.
    """

    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        interval: float = 0.2,
        batch: int = 500,
        capacity: int = 20_000,
        retry_delay: float = 1.0,
        outage: Outage | None = None,
    ) -> None:
        self._pool = pool
        self._outage = outage or Outage(OUTAGE_REPORT_SECONDS)
        self._interval = interval
        self._batch = batch
        self._capacity = capacity
        self._retry_delay = retry_delay
        self._buffer: list[JournalEntry] = []
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def record(self, entry: JournalEntry) -> None:
        """Queues an entry for the next batch."""
        if len(self._buffer) >= self._capacity:
            metrics.JOURNAL_DROPPED.inc()
            return
        self._buffer.append(entry)
        # The buffered gauge is refreshed by the writer each round, not here: a gauge that is
        # at most a round (or a retry delay) behind is as good to a scrape, and cheaper per call.
        self._wake.set()

    def start(self) -> None:
        """Starts the background writer."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="tolem-journal-writer")

    async def close(self, grace: float = 5.0) -> None:
        """Stops the writer and writes what is still buffered (within `grace` seconds).

        The task is asked to stop rather than cancelled: cancelling it inside a COPY would
        leave its connection mid-statement.
        """
        try:
            async with asyncio.timeout(grace):
                if self._task is not None:
                    self._stopping.set()
                    self._wake.set()
                    await self._task
                await self.flush()
        except Exception as exc:  # noqa: BLE001 - shutdown goes on; the loss is logged and counted
            metrics.JOURNAL_DROPPED.inc(len(self._buffer))
            _log.warning("journal_lost_on_shutdown", rows=len(self._buffer), error=type(exc).__name__)
        finally:
            if self._task is not None and not self._task.done():
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._task
            self._task = None

    async def flush(self, limit: int | None = None) -> None:
        """Writes at most `limit` entries, or without one until the buffer is empty (entries
        recorded meanwhile included); raises if the database refuses.

        Entries that a refused write held back stay buffered for the next flush.
        """
        async with self._lock:
            left = limit
            while self._buffer and (left is None or left > 0):
                chunk = self._buffer[: self._batch if left is None else min(self._batch, left)]
                if left is not None:
                    left -= len(chunk)
                async with self._pool.acquire() as conn:
                    try:
                        await journal_db.insert_many(conn, chunk)
                        written = len(chunk)
                    except _BAD_ROW_ERRORS:
                        written = await self._one_by_one(conn, chunk)
                del self._buffer[: len(chunk)]
                metrics.JOURNAL_WRITTEN.inc(written)
                metrics.JOURNAL_BUFFERED.set(len(self._buffer))
                self._outage.recovered()

    @staticmethod
    async def _one_by_one(conn: asyncpg.Connection, chunk: list[JournalEntry]) -> int:
        written = 0
        for entry in chunk:
            try:
                await journal_db.insert_many(conn, [entry])
                written += 1
            except _BAD_ROW_ERRORS as exc:
                metrics.JOURNAL_DROPPED.inc()
                _log.error(
                    "journal_row_refused",
                    provider=entry.provider,
                    command=entry.command,
                    error=type(exc).__name__,
                )
        return written

    async def _pause(self, seconds: float) -> None:
        """Sleeps, but wakes at once when close() asks the writer to stop."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._stopping.wait()

    async def _run(self) -> None:
        while not self._stopping.is_set():
            await self._wake.wait()
            self._wake.clear()
            # Let a batch gather: under load one COPY carries many calls.
            await self._pause(self._interval)
            metrics.JOURNAL_BUFFERED.set(len(self._buffer))
            try:
                # Only what had gathered: calls recorded during this write wait for the next
                # round. Draining until empty kept the writer in a loop of ten-row INSERTs under
                # load, a commit every few milliseconds that each check ended up paying for.
                await self.flush(len(self._buffer))
            except Exception as exc:  # noqa: BLE001 - the writer must outlive any one failure
                metrics.JOURNAL_WRITE_FAILURES.inc()
                # The rows stay buffered (JOURNAL_BUFFERED says how many) and go out on recovery.
                self._outage.failed("journal", exc)
                self._wake.set()
                await self._pause(self._retry_delay)
