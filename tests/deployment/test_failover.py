"""A multi-host DSN with target_session_attrs=read-write: "retry" while no listed server takes
writes, recovery without a restart, and the failover of a primary to its synchronous standby
under pay load (bench/deployment.py at a reduced size)."""

import asyncio
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import pytest
import structlog
from aiohttp.test_utils import TestClient
from pydantic import SecretStr

from bench.deployment import failover
from tests.conftest import Factory
from tests.deployment.conftest import need
from tolem.app import create_app
from tolem.cli import main
from tolem.settings import Settings


async def _set_read_only(database_url: str, read_only: bool) -> None:
    """Makes the test database refuse (or take again) writes in new sessions, and ends tolem's
    sessions so that its pool has to connect again."""
    name = urlsplit(database_url).path.lstrip("/")
    # Our own session must take writes to say so.
    conn = await asyncpg.connect(database_url, server_settings={"default_transaction_read_only": "off"})
    try:
        await conn.execute(
            f'ALTER DATABASE "{name}" SET default_transaction_read_only = {"on" if read_only else "off"}'
        )
        await conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND application_name = 'tolem'"
        )
    finally:
        await conn.close()


async def test_no_writable_host_answers_retry_then_recovers(
    aiohttp_client: Any,
    database_url: str,
    factory: Factory,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """While the only listed server refuses writes, a pay answers "retry", /readyz and the admin
    API 503, and a command says it cannot connect; once the server takes writes again the same
    application credits the pay."""
    await factory.provider("kiosk")
    account_id, code = await factory.account()
    dsn = f"{database_url}?target_session_attrs=read-write"
    settings = Settings(
        database_url=SecretStr(dsn),
        provider_cache_seconds=60,
        request_deadline=2.0,
        admin_token=SecretStr("admin-token"),
    )
    client: TestClient[Any, Any] = await aiohttp_client(create_app(settings))
    params = {
        "command": "pay",
        "txn_id": "7001",
        "account": code,
        "sum": "10.00",
        "txn_date": "20261125143000",
    }

    async def pay() -> str:
        async with client.get("/gw/kiosk", params=params) as response:
            return await response.text()

    assert "<result>0</result>" in await pay()
    params["txn_id"] = "7002"
    await _set_read_only(database_url, read_only=True)
    try:
        assert "<result>1</result>" in await pay()
        async with client.get("/readyz") as response:
            assert (response.status, (await response.json())["error"]) == (
                503,
                "TargetServerAttributeNotMatched",
            )
        headers = {"Authorization": "Bearer admin-token"}
        async with client.get(f"/admin/accounts/{account_id}", headers=headers) as response:
            assert (response.status, (await response.json())["error"]["code"]) == (503, "unavailable")
        monkeypatch.setenv("TOLEM_DATABASE_URL", dsn)
        capsys.readouterr()
        status = await asyncio.to_thread(main, ["account", "show", str(account_id)])
        # The command configured logging onto this test's captured output: give it back.
        structlog.reset_defaults()
        assert (status, "cannot connect to the database" in capsys.readouterr().err) == (1, True)
    finally:
        await _set_read_only(database_url, read_only=False)
    assert "<result>0</result>" in await pay()
    # Closed here, while its database still exists, so the journal's last rows are written.
    await client.close()
    assert await factory.balance(account_id) == 20_00


@pytest.mark.slow
async def test_failover_to_synchronous_standby_loses_nothing() -> None:
    """The primary SIGKILLed under pay load and its synchronous standby promoted: every
    acknowledged pay is on the new primary once, answers meanwhile are only "retry", and the
    same tolem process acknowledges again."""
    need("pg_basebackup")
    figures, switch = await failover(0.1, "osmp")
    assert figures.acknowledged == figures.credits == 150, figures
    assert (figures.doubles, figures.lost, figures.wrong_answers, figures.audit_violations) == (0, 0, 0, 0)
    assert switch.acknowledged_before > 0 and switch.acknowledged_after > 0, switch
    assert switch.retry_answers > 0, switch
    assert 0 < switch.retry_seconds < 15, switch
    assert switch.same_process, switch
