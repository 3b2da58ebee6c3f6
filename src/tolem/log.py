"""Logging: structlog to stdout, JSON off a terminal, one canonical line per request."""

import logging
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, Final

import orjson
import structlog
from aiohttp import web

LOG_LINE: Final = web.RequestKey("log_line", dict)
REQUEST_ID: Final = web.RequestKey("request_id", str)
_log = structlog.get_logger("tolem.http")
_REQUEST_ID_HEADER: Final = "X-Request-Id"
_MAX_REQUEST_ID: Final = 64


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
    # Libraries log through the standard library; keep them quiet and on stderr.
    logging.basicConfig(level=max(numeric, logging.WARNING), stream=sys.stderr)


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def canonical_log_line(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Emits exactly one line per request with whatever the handlers put into request[LOG_LINE].

    Handlers add provider, command, masked code, result, replayed...; nothing secret goes in.
    """
    started = time.perf_counter()
    given = request.headers.get(_REQUEST_ID_HEADER, "")
    request_id = given if 0 < len(given) <= _MAX_REQUEST_ID and given.isprintable() else uuid.uuid4().hex
    line: dict[str, Any] = {}
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
        _log.info(
            "request",
            request_id=request_id,
            method=request.method,
            path=request.path,
            status=status,
            duration_ms=round((time.perf_counter() - started) * 1000, 2),
            **line,
        )
