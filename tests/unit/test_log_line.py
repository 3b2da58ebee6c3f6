"""The canonical line as JSON: one object per line, from structlog's configured chain."""

import io
from collections.abc import Awaitable, Callable, Iterator
from datetime import datetime
from typing import Any

import orjson
import pytest
import structlog
from aiohttp import web
from aiohttp.test_utils import TestClient

from tolem import log

ClientMaker = Callable[..., Awaitable[TestClient[Any, Any]]]
FIELDS = {
    "provider": "kiosk",
    "code": "0012****5678",
    "amount": 15000,
    "replayed": False,
}


class _Stream:
    """A non-terminal stdout whose bytes can be read back."""

    def __init__(self) -> None:
        self.buffer = io.BytesIO()

    def isatty(self) -> bool:
        """Not a terminal: JSON."""
        return False


@pytest.fixture
def stream(monkeypatch: pytest.MonkeyPatch) -> Iterator[_Stream]:
    """A stdout to configure logging on; structlog's configuration restored afterwards."""
    saved = structlog.get_config()
    yield _Stream()
    structlog.configure(**saved)


def _configure(monkeypatch: pytest.MonkeyPatch, out: _Stream, level: str = "info") -> None:
    # Inside the test itself: pytest's output capture replaces sys.stdout after fixtures ran.
    with monkeypatch.context() as patch:
        patch.setattr("sys.stdout", out)
        log.configure_logging(json=True, level=level)
    # A logger not yet bound to an earlier configuration, as in a freshly started server.
    monkeypatch.setattr(log, "_log", structlog.get_logger("tolem.http"))


def _lines(out: _Stream) -> list[dict[str, object]]:
    return [orjson.loads(line) for line in out.buffer.getvalue().splitlines()]


async def _client(aiohttp_client: ClientMaker) -> TestClient[Any, Any]:
    async def handler(request: web.Request) -> web.Response:
        request[log.LOG_LINE].update(FIELDS)
        return web.Response(text="ok")

    app = web.Application(middlewares=[log.canonical_log_line])
    app.router.add_get("/gw/kiosk", handler)
    return await aiohttp_client(app)


async def test_a_request_is_one_json_line_with_its_fields(
    stream: _Stream, monkeypatch: pytest.MonkeyPatch, aiohttp_client: ClientMaker
) -> None:
    """Each request writes exactly one JSON object on its own line: the request's fields first,
    then the handler's, then event, level and a UTC time stamp."""
    _configure(monkeypatch, stream)
    client = await _client(aiohttp_client)
    response = await client.get("/gw/kiosk", headers={"X-Request-Id": "r-1"})
    assert response.status == 200
    [line] = _lines(stream)
    stamp = str(line.pop("timestamp"))
    assert stamp.endswith("Z")
    assert datetime.fromisoformat(stamp).utcoffset() is not None
    assert isinstance(line.pop("duration_ms"), float)
    assert list(line) == ["request_id", "method", "path", "status", *FIELDS, "event", "level"]
    assert line == {
        "request_id": "r-1",
        "method": "GET",
        "path": "/gw/kiosk",
        "status": 200,
        **FIELDS,
        "event": "request",
        "level": "info",
    }


async def test_an_unknown_path_gets_its_line_too(
    stream: _Stream, monkeypatch: pytest.MonkeyPatch, aiohttp_client: ClientMaker
) -> None:
    """The router's own 404 passes through the middleware and is logged with its status."""
    _configure(monkeypatch, stream)
    client = await _client(aiohttp_client)
    assert (await client.get("/nowhere")).status == 404
    [line] = _lines(stream)
    assert (line["path"], line["status"], line["event"]) == ("/nowhere", 404, "request")


async def test_the_line_respects_the_level(
    stream: _Stream, monkeypatch: pytest.MonkeyPatch, aiohttp_client: ClientMaker
) -> None:
    """At level warning the request line, an info event, is filtered out."""
    _configure(monkeypatch, stream, level="warning")
    client = await _client(aiohttp_client)
    assert (await client.get("/gw/kiosk")).status == 200
    assert stream.buffer.getvalue() == b""


async def test_a_closed_log_stream_does_not_change_the_answer(
    stream: _Stream, monkeypatch: pytest.MonkeyPatch, aiohttp_client: ClientMaker
) -> None:
    """When the line cannot be written (the stream closed), the handler's answer still goes out."""
    _configure(monkeypatch, stream)
    client = await _client(aiohttp_client)
    stream.buffer.close()
    response = await client.get("/gw/kiosk")
    assert (response.status, await response.text()) == (200, "ok")
