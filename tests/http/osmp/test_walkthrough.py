"""README's first payment by hand, made true: the operator's commands, then a kiosk's requests,
with the balance and the ledger checked after every step."""

import asyncio
import json
import os
import sys
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from tests.conftest import ledger_violations
from tests.http.osmp.conftest import ClientMaker, paid, refused, stated
from tolem.app import create_app
from tolem.settings import Settings

CHECKED = (
    '<?xml version="1.0" encoding="UTF-8"?>\n<response><osmp_txn_id>1001</osmp_txn_id>'
    '<result>0</result><comment>OK</comment><fields><field1 name="name">Asanov A.</field1>'
    "</fields></response>\n"
)


async def tolem(database_url: str, *args: str) -> Any:
    """Runs one `tolem ... --json` command as the operator does, in its own process (so its
    logging setup stays its own); its parsed output."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOLEM_")}
    env.update(TOLEM_DATABASE_URL=database_url, TOLEM_LOG_FORMAT="json")
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tolem",
        *args,
        "--json",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    assert process.returncode == 0, err.decode()
    return json.loads(out)


@pytest.mark.slow
async def test_readme_walkthrough(
    aiohttp_client: ClientMaker,
    settings: Settings,
    database_url: str,
) -> None:
    """provider add, account create, then check → pay → repeat pay → status → cancel over HTTP:
    each answer as documented, the balance right after each step, the ledger sound throughout."""

    async def cli(*args: str) -> Any:
        return await tolem(database_url, *args)

    added = await cli(
        "provider",
        "add",
        "elsom",
        "--protocol",
        "osmp",
        "--allow-ip",
        "127.0.0.1/32",
        "--max-amount",
        "50000",
    )
    assert added["gateway"] == "/gw/elsom"
    created = await cli(
        "account", "create", "--email", "asan@example.kg", "--name", "Asanov Asan", "--service", "asan.kg"
    )
    code = created["payment_code"]
    client: TestClient[Any, Any] = await aiohttp_client(create_app(settings))

    async def kiosk(query: str) -> str:
        response = await client.get(f"/gw/elsom?{query}")
        assert (response.status, response.headers["Content-Type"]) == (200, "text/xml; charset=utf-8")
        return await response.text()

    async def balance() -> tuple[int, list[str]]:
        (shown,) = await cli("account", "show", "--code", code)
        assert await ledger_violations(database_url) == []
        return shown["balance_minor"], [p["state"] for p in shown["payments"]]

    pay = f"command=pay&txn_id=1001&txn_date=20261125143000&account={code}&sum=150.00"
    assert await kiosk(f"command=check&txn_id=1001&account={code}&sum=150.00") == CHECKED
    assert await balance() == (0, [])

    first = await kiosk(pay)
    (shown,) = await cli("account", "show", "--code", code)
    prv_txn = shown["payments"][0]["id"]
    assert first == paid("1001", prv_txn, "150.00")
    assert await balance() == (150_00, ["credited"])

    assert await kiosk(pay) == first
    assert await balance() == (150_00, ["credited"])

    assert await kiosk("command=status&txn_id=1001") == stated("1001", prv_txn, "150.00", "paid")
    assert await kiosk(pay.replace("sum=150.00", "sum=50000.01").replace("1001", "1002")) == refused(
        "1002", 242, "sum too large"
    )

    cancelled = stated("1001", prv_txn, "150.00", "cancelled")
    assert await kiosk("command=cancel&txn_id=1001") == cancelled
    assert await balance() == (0, ["reversed"])
    assert await kiosk("command=cancel&txn_id=1001") == cancelled
    assert await kiosk("command=status&txn_id=1001") == cancelled
    assert await balance() == (0, ["reversed"])
