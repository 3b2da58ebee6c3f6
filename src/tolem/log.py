"""Logging: structlog to stdout, JSON off a terminal, one canonical line per request."""

import contextlib
import itertools
import logging
import os
import sys
import time
from collections.abc import Awaitable, Callable
from typing import IO, Any, Final, TypedDict

import orjson
import structlog
from aiohttp import web

from tolem.settings import Settings


class LogLine(TypedDict, total=False):
    """What handlers add to their request's canonical line. Nothing secret goes in: codes are
    masked, and neither credentials nor signatures have a field."""

    # Gateway calls, every protocol.
    provider: str
    command: str
    txn: str
    code: str | None
    amount: int | None
    result: str
    replayed: bool
    refusal: str
    error: str
    payment_id: int | None
    # Payme.
    reason: int | None
    count: int
    # Click.
    click_paydoc_id: int | None
    click_error: int | None
    merchant_prepare_id: int | None
    prepared_txn: str
    # The admin API and the operator console.
    admin: str
    ops: str
    operator: str
    login: str


class _RequestFields(TypedDict):
    request_id: str
    method: str
    path: str
    status: int
    duration_ms: float


class CanonicalLine(_RequestFields, LogLine):
    """The line as written: the request's own fields, then whatever its handlers added."""


LOG_LINE: Final = web.RequestKey[LogLine]("log_line")
REQUEST_ID: Final = web.RequestKey("request_id", str)
_log = structlog.get_logger("tolem.http")
_REQUEST_ID_HEADER: Final = "X-Request-Id"
_MAX_REQUEST_ID: Final = 64
# Request ids only need to be unique, not unpredictable: a random per-process half and a
# counter cost a fraction of a uuid4 (which reads the kernel's random source on every call).
_ID_PREFIX: Final = os.urandom(8).hex()
_ID_COUNTER: Final = itertools.count(1)


def configure_logging(
    *,
    json: bool | None = None,
    level: str = "info",
    to_stderr: bool = False,
) -> None:
    """Sets up structlog once per process; `json=None` means JSON unless the output is a
    terminal. Commands whose stdout is their result (CLI) log to stderr instead."""
    stream = sys.stderr if to_stderr else sys.stdout
    if json is None:
        json = not stream.isatty()
    numeric = logging.getLevelNamesMapping()[level.upper()]
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    if json:
        structlog.configure(
            processors=[
                *shared,
                structlog.processors.dict_tracebacks,
                structlog.processors.JSONRenderer(serializer=orjson.dumps),
            ],
            wrapper_class=structlog.make_filtering_bound_logger(numeric),
            logger_factory=structlog.BytesLoggerFactory(file=stream.buffer),
            cache_logger_on_first_use=True,
        )
    else:
        structlog.configure(
            processors=[*shared, structlog.dev.ConsoleRenderer()],
            wrapper_class=structlog.make_filtering_bound_logger(numeric),
            logger_factory=structlog.PrintLoggerFactory(file=stream),
            cache_logger_on_first_use=True,
        )
    _route_standard_logging(shared, stream, json=json, level=max(numeric, logging.WARNING))


def configure_logging_for(settings: Settings, *, to_stderr: bool = False) -> None:
    """configure_logging as TOLEM_LOG_FORMAT and TOLEM_LOG_LEVEL say; no format: JSON unless a
    terminal reads the output."""
    configure_logging(
        json=None if settings.log_format is None else settings.log_format == "json",
        level=settings.log_level,
        to_stderr=to_stderr,
    )


def _route_standard_logging(shared: list[Any], stream: IO[str], *, json: bool, level: int) -> None:
    """Libraries (asyncpg, aiohttp) log through the standard library: their records become
    structlog events on the same stream, one line each, tracebacks folded into the event."""
    renderer: Any = (
        structlog.processors.JSONRenderer(serializer=lambda obj, **_: orjson.dumps(obj).decode())
        if json
        else structlog.dev.ConsoleRenderer()
    )
    handler = logging.StreamHandler(stream)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[*shared, structlog.stdlib.add_logger_name],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                *([structlog.processors.dict_tracebacks] if json else []),
                renderer,
            ],
        )
    )
    handler.addFilter(_fold_pool_reconnects)
    global _stdlib_handler  # noqa: PLW0603 - one logging configuration per process
    root = logging.getLogger()
    if _stdlib_handler is not None:
        root.removeHandler(_stdlib_handler)
    _stdlib_handler = handler
    root.addHandler(handler)
    root.setLevel(level)


_stdlib_handler: logging.Handler | None = None


def _fold_pool_reconnects(record: logging.LogRecord) -> bool:
    """asyncpg's pool logs a warning with a traceback on every failed reconnect while the
    database is down; that is one more report of the same outage."""
    outage = _pool_outage
    if outage is not None and record.name == "asyncpg.pool" and record.exc_info and record.exc_info[1]:
        outage.failed("pool", record.exc_info[1])
        return False
    return True


_pool_outage: "Outage | None" = None


def report_pool_outages(outage: "Outage | None") -> None:
    """Folds asyncpg's reconnect warnings into `outage` (the serving application's), or stops."""
    global _pool_outage  # noqa: PLW0603 - asyncpg logs through one process-wide logger
    _pool_outage = outage


class Outage:
    """Reports a database outage once per interval, however many calls fail meanwhile.

    During an outage every journal write, provider reload and pool reconnect fails, many times
    a second; one `database_unavailable` line per interval (with how many failures it stands
    for) says the same, and `database_available` says when it ended.
    """

    def __init__(self, interval: float) -> None:
        self._interval = interval
        self._next_report = float("-inf")
        self._failures = 0
        self._down = False
        self._log = structlog.get_logger("tolem.database")

    def failed(self, source: str, error: BaseException) -> None:
        """One failure of `source` (journal, providers, pool, …) to reach the database."""
        self._failures += 1
        self._down = True
        now = time.monotonic()
        if now >= self._next_report:
            self._log.warning(
                "database_unavailable", source=source, error=type(error).__name__, failures=self._failures
            )
            self._failures = 0
            self._next_report = now + self._interval

    def recovered(self) -> None:
        """The database answered again."""
        if self._down:
            self._down = False
            self._failures = 0
            self._next_report = float("-inf")
            self._log.info("database_available")


# Long enough that an outage of minutes is a handful of lines, short enough to show it lasts.
OUTAGE_REPORT_SECONDS: Final = 10.0


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def canonical_log_line(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Emits exactly one line per request with whatever the handlers put into request[LOG_LINE].

    Handlers add provider, command, masked code, result, replayed...; nothing secret goes in.
    """
    started = time.perf_counter()
    given = request.headers.get(_REQUEST_ID_HEADER, "")
    if 0 < len(given) <= _MAX_REQUEST_ID and given.isprintable():
        request_id = given
    else:
        request_id = f"{_ID_PREFIX}{next(_ID_COUNTER):016x}"
    line: LogLine = {}
    request[LOG_LINE] = line
    request[REQUEST_ID] = request_id
    status = 500
    try:
        response = await handler(request)
        status = response.status
        response.headers[_REQUEST_ID_HEADER] = request_id
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    finally:
        fields: CanonicalLine = {
            "request_id": request_id,
            "method": request.method,
            "path": request.path,
            "status": status,
            "duration_ms": round((time.perf_counter() - started) * 1000, 2),
            **line,
        }
        # The answer, perhaps for a committed credit, matters more than its line: a log stream
        # that broke or closed (ValueError) must not turn it into a 500.
        with contextlib.suppress(OSError, ValueError):
            _log.info("request", **fields)
