"""The canonical line's direct JSON rendering: the same line structlog's chain would write."""

import asyncio
import io
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
import structlog
from hypothesis import given
from hypothesis import strategies as st
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


class _CountingBuffer(io.BytesIO):
    """A binary stdout that counts its write calls (each one a system call when unbuffered)."""

    def __init__(self) -> None:
        super().__init__()
        self.writes = 0

    def write(self, data: Any) -> int:
        """Counts, then stores."""
        self.writes += 1
        return super().write(data)


async def test_lines_of_one_loop_turn_go_out_in_one_write(
    stream: _Stream, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On an event loop, a turn's lines are held until the turn ends, then written in one call."""
    counting = _CountingBuffer()
    stream.buffer = counting
    _configure(monkeypatch, stream)
    renderer = log._json_line
    assert renderer is not None
    renderer.emit(dict(FIELDS, request_id="r-1"))
    renderer.emit(dict(FIELDS, request_id="r-2"))
    assert counting.writes == 0
    await asyncio.sleep(0)
    assert counting.writes == 1
    assert [line["request_id"] for line in _lines(stream)] == ["r-1", "r-2"]


async def test_a_stop_writes_the_held_lines(stream: _Stream, monkeypatch: pytest.MonkeyPatch) -> None:
    """Lines still held when the server stops are written by write_held_lines, once."""
    _configure(monkeypatch, stream)
    renderer = log._json_line
    assert renderer is not None
    renderer.emit(dict(FIELDS))
    log.write_held_lines()
    await asyncio.sleep(0)
    assert [line["request_id"] for line in _lines(stream)] == ["r-1"]


def test_off_a_loop_each_line_is_written_at_once(stream: _Stream, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without a running event loop (a command, not the server) nothing is held."""
    _configure(monkeypatch, stream)
    renderer = log._json_line
    assert renderer is not None
    renderer.emit(dict(FIELDS))
    assert [line["request_id"] for line in _lines(stream)] == ["r-1"]


@given(st.integers(min_value=0, max_value=4_102_444_800 * 10**9))
def test_time_stamp_is_isoformat_to_the_microsecond(now_ns: int) -> None:
    """The per-second cached stamp reads as TimeStamper's isoformat of that moment, zero
    microseconds included (isoformat leaves the fraction out then)."""
    renderer = log._JsonLine([], io.BytesIO(), enabled=True)
    moment = datetime.fromtimestamp(now_ns // 10**9, UTC).replace(microsecond=now_ns // 1000 % 10**6)
    whole = moment.replace(microsecond=0)
    assert renderer._stamp(now_ns) == moment.isoformat().replace("+00:00", "Z")
    assert renderer._stamp(now_ns - now_ns % 10**9) == whole.isoformat().replace("+00:00", "Z")


def test_lines_held_on_a_closed_loop_go_out_with_the_next_loop(
    stream: _Stream, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A loop that closed before its turn ended leaves no line held for good: the next loop's
    turn writes it, ahead of its own."""
    _configure(monkeypatch, stream)
    renderer = log._json_line
    assert renderer is not None

    def last_turn(loop: asyncio.AbstractEventLoop, request_id: str) -> None:
        renderer.emit(dict(FIELDS, request_id=request_id))
        loop.stop()  # the loop ends with this turn: the write it scheduled never runs

    first = asyncio.new_event_loop()
    first.call_soon(last_turn, first, "r-1")
    first.run_forever()
    first.close()
    assert _lines(stream) == []
    second = asyncio.new_event_loop()
    second.call_soon(renderer.emit, dict(FIELDS, request_id="r-2"))
    second.run_until_complete(asyncio.sleep(0.01))
    second.close()
    assert [line["request_id"] for line in _lines(stream)] == ["r-1", "r-2"]
