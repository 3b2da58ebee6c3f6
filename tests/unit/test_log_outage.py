"""Library logs and database outages on the log stream: one event per line, one outage line per interval."""

import io
import logging
import time
from collections.abc import Iterator

import orjson
import pytest
import structlog

from tolem import log


@pytest.fixture
def stream() -> Iterator[io.TextIOWrapper]:
    """A non-terminal text stream with a byte buffer, as stdout is in production."""
    saved = structlog.get_config()
    out = io.TextIOWrapper(io.BytesIO(), encoding="utf-8", write_through=True)
    yield out
    structlog.configure(**saved)
    root = logging.getLogger()
    for handler in root.handlers[:]:
        if isinstance(handler.formatter, structlog.stdlib.ProcessorFormatter):
            root.removeHandler(handler)


def _configure(monkeypatch: pytest.MonkeyPatch, out: io.TextIOWrapper) -> None:
    with monkeypatch.context() as patch:
        patch.setattr("sys.stdout", out)
        log.configure_logging(json=True, level="info")


def _lines(out: io.TextIOWrapper) -> list[dict[str, object]]:
    buffer = out.buffer
    assert isinstance(buffer, io.BytesIO)
    return [orjson.loads(line) for line in buffer.getvalue().splitlines()]


def test_library_warning_is_one_json_line(monkeypatch: pytest.MonkeyPatch, stream: io.TextIOWrapper) -> None:
    """A library's warning with a traceback is one JSON event on the log stream, not a text block."""
    _configure(monkeypatch, stream)
    logging.getLogger("aiohttp.server").warning("Error handling request", exc_info=ValueError("boom"))
    [line] = _lines(stream)
    assert line["event"] == "Error handling request"
    assert line["level"] == "warning"
    assert line["logger"] == "aiohttp.server"
    assert "exception" in line


def test_pool_reconnect_failures_fold_into_one_outage_line(
    monkeypatch: pytest.MonkeyPatch, stream: io.TextIOWrapper
) -> None:
    """asyncpg's reconnect warnings during an outage become database_unavailable, once per interval."""
    _configure(monkeypatch, stream)
    log.report_pool_outages(log.Outage(interval=3600))
    try:
        pool_log = logging.getLogger("asyncpg.pool")
        for _ in range(50):
            pool_log.warning("Failed to restore the pool connection floor", exc_info=ConnectionRefusedError())
    finally:
        log.report_pool_outages(None)
    lines = _lines(stream)
    assert [line["event"] for line in lines] == ["database_unavailable"]
    assert lines[0]["source"] == "pool"
    assert lines[0]["error"] == "ConnectionRefusedError"


def test_outage_reports_once_per_interval_and_its_end(
    monkeypatch: pytest.MonkeyPatch, stream: io.TextIOWrapper
) -> None:
    """Failures within an interval make one line that counts them; recovery is one more line."""
    _configure(monkeypatch, stream)
    clock = [1000.0]
    monkeypatch.setattr(time, "monotonic", lambda: clock[0])
    outage = log.Outage(interval=10)
    error = OSError("refused")
    for _ in range(5):
        outage.failed("journal", error)  # reported at once, then four within the interval
    clock[0] += 10
    outage.failed("providers", error)  # the interval is over: reported with what it stands for
    outage.recovered()
    outage.recovered()  # only the first recovery after an outage is news
    events = [(line["event"], line.get("failures"), line.get("source")) for line in _lines(stream)]
    assert events == [
        ("database_unavailable", 1, "journal"),
        ("database_unavailable", 5, "providers"),
        ("database_available", None, None),
    ]
