"""The receiver example of docs/billing.md runs as printed and works with the webhook sink."""

import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestServer

from tests.billing.sinks.conftest import Saved, make_event
from tests.billing.sinks.standins import SECRET
from tolem.billing.sink import Delivered, Retry
from tolem.billing.sinks.webhook import WebhookSink

DOC = Path(__file__).resolve().parents[3] / "docs" / "billing.md"
Serve = Callable[..., Awaitable[TestServer]]


def _example() -> str:
    section = DOC.read_text().split("## Webhook sink", 1)[1].split("\n## ", 1)[0]
    (code,) = re.findall(r"```python\n(.*?)```", section, re.S)
    return str(code)


def test_the_example_is_about_twenty_lines() -> None:
    """The example stays short enough to copy: at most 25 lines of code."""
    lines = [line for line in _example().splitlines() if line.strip()]
    assert 15 <= len(lines) <= 25


async def test_the_documented_receiver_verifies_and_applies_each_event_once(
    aiohttp_server: Serve, monkeypatch: pytest.MonkeyPatch, saved: Saved
) -> None:
    """Run from the page, it accepts our signature, applies a repeat once, and refuses another secret."""
    monkeypatch.setenv("TOLEM_BILLING_SECRET", SECRET)
    applied: list[tuple[str, dict[str, Any]]] = []
    namespace: dict[str, Any] = {"apply": lambda kind, data: applied.append((kind, data))}
    exec(compile(_example(), str(DOC), "exec"), namespace)  # noqa: S102 - our own page's example
    server = await aiohttp_server(namespace["app"])
    sink = WebhookSink(str(server.make_url("/tolem")), SECRET, timeout=2)
    forged = WebhookSink(str(server.make_url("/tolem")), "whsec_" + "QUFB" * 8, timeout=2)
    event = make_event()
    try:
        assert await sink.deliver(event, saved.progress()) == Delivered("HTTP 204")
        assert await sink.deliver(event, saved.progress()) == Delivered("HTTP 204")
        assert await forged.deliver(make_event(), saved.progress()) == Retry("webhook answered HTTP 401")
    finally:
        await sink.close()
        await forged.close()
    assert [(kind, data["amount_minor"]) for kind, data in applied] == [("payment.credited", 15050)]
