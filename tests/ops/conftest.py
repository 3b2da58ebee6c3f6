"""Operations tests reuse the Click and Payme gateway fixtures (real adapters whose answers
carry payment codes), the CLI runner, and a plain journal entry to store."""

from datetime import UTC, datetime
from typing import Any

from tests.cli.conftest import Cli, Run, _reset_logging, cli
from tests.http.click.conftest import ClickWorld, world
from tests.http.payme.conftest import Payme, account, clock, payme, provider
from tolem.db.journal import JournalEntry

__all__ = [
    "Cli",
    "ClickWorld",
    "Payme",
    "Run",
    "_reset_logging",
    "account",
    "cli",
    "clock",
    "entry",
    "payme",
    "provider",
    "world",
]


def entry(provider: str = "kiosk", txn: str = "1", at: datetime | None = None, **kw: Any) -> JournalEntry:
    """A journal entry with plain defaults."""
    fields: dict[str, Any] = {
        "received_at": at or datetime.now(UTC),
        "provider": provider,
        "remote_addr": "10.0.0.1",
        "method": "GET",
        "command": "pay",
        "txn": txn,
        "code_masked": "********1234",
        "result": "0",
        "http_status": 200,
        "response_body": "<response><result>0</result></response>",
        "duration_us": 1500,
        "request_id": "r-1",
        "details": {"amount": 15000},
    }
    fields.update(kw)
    return JournalEntry(**fields)
