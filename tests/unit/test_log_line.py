"""The canonical line's direct JSON rendering: the same line structlog's chain would write."""

import io
from collections.abc import Iterator

import orjson
import pytest
import structlog
from structlog.testing import capture_logs

from tolem import log

FIELDS = {
    "request_id": "r-1",
    "method": "POST",
    "path": "/gw/kiosk",
    "status": 200,
    "duration_ms": 1.25,
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
    monkeypatch.setattr(log, "_json_line", None)
    yield _Stream()
    structlog.configure(**saved)


def _configure(monkeypatch: pytest.MonkeyPatch, out: _Stream, level: str = "info") -> None:
    # Inside the test itself: pytest's output capture replaces sys.stdout after fixtures ran.
    with monkeypatch.context() as patch:
        patch.setattr("sys.stdout", out)
        log.configure_logging(json=True, level=level)


def _lines(out: _Stream) -> list[dict[str, object]]:
    return [orjson.loads(line) for line in out.buffer.getvalue().splitlines()]


def test_direct_line_matches_structlog(stream: _Stream, monkeypatch: pytest.MonkeyPatch) -> None:
    """Same keys, same order, same values (time stamp aside) as the configured structlog chain."""
    _configure(monkeypatch, stream)
    renderer = log._json_line
    assert renderer is not None and renderer.active()
    renderer.emit(dict(FIELDS))
    structlog.get_logger("t").info("request", **FIELDS)
    direct, chained = _lines(stream)
    assert list(direct) == list(chained)
    assert str(direct.pop("timestamp")).endswith("Z")
    chained.pop("timestamp")
    assert direct == chained == {**FIELDS, "event": "request", "level": "info"}


def test_direct_line_respects_the_level(stream: _Stream, monkeypatch: pytest.MonkeyPatch) -> None:
    """At level warning the request line is filtered out, as structlog's info would be."""
    _configure(monkeypatch, stream, level="warning")
    renderer = log._json_line
    assert renderer is not None
    renderer.emit(dict(FIELDS))
    assert stream.buffer.getvalue() == b""


def test_capture_logs_turns_the_direct_line_off(stream: _Stream, monkeypatch: pytest.MonkeyPatch) -> None:
    """While structlog is reconfigured (capture_logs in tests) the direct line stands aside."""
    _configure(monkeypatch, stream)
    renderer = log._json_line
    assert renderer is not None
    with capture_logs():
        assert not renderer.active()
    assert renderer.active()
