"""When we cannot know or cannot try: result 1 (retry), never 0 or a final code, never HTTP 500;
the repeat, once the database is back, settles it exactly once."""

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import pytest
import structlog
from aiohttp import web
from aiohttp.test_utils import make_mocked_request
from structlog.testing import capture_logs

import tolem.log
from tests.conftest import provider_value
from tests.http.osmp.conftest import OsmpWorld, paid, refused, stated
from tolem.core.model import WireProtocol
from tolem.core.service import PaymentService
from tolem.protocols.osmp.handlers import ECHO, Echo, OsmpAdapter

RETRY = "temporary error, retry later"


@asynccontextmanager
async def held(world: OsmpWorld, statement: str, *args: object) -> AsyncIterator[None]:
    """Holds the locks `statement` takes, in an open transaction, until the block ends."""
    conn: asyncpg.Connection = await world.factory.pool.acquire()
    try:
        async with conn.transaction():
            await conn.execute(statement, *args)
            yield
    finally:
        await world.factory.pool.release(conn)


async def until_tolem_waits_on_a_lock(world: OsmpWorld) -> None:
    """Returns once one of tolem's sessions is blocked on a lock (its statement is in flight)."""
    waiting = 0
    while waiting == 0:
        await asyncio.sleep(0.01)
        waiting = await world.factory.count(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'tolem'"
            " AND wait_event_type = 'Lock'"
        )


async def test_pay_while_database_is_stuck_answers_1_then_retry_credits_once(world: OsmpWorld) -> None:
    """A pay that cannot reach the payments table in time answers 1 and stores nothing; the
    repeat credits once and answers 0."""
    async with held(world, "LOCK TABLE payments IN ACCESS EXCLUSIVE MODE"):
        reply = await world.kiosk.pay("8001", "60.00")
    assert (reply.status, reply.text) == (200, refused("8001", 1, RETRY))
    assert await world.money() == (0, 0, 0)
    again = await world.kiosk.pay("8001", "60.00")
    assert again.text == paid("8001", await world.payment_id("8001"), "60.00")
    assert await world.money() == (60_00, 1, 1)


async def test_cancel_while_payment_is_locked_answers_1(world: OsmpWorld) -> None:
    """A cancel that cannot lock the payment answers 1 and reverses nothing; the repeat does."""
    await world.kiosk.pay("8002", "60.00")
    prv_txn = await world.payment_id("8002")
    async with held(world, "SELECT 1 FROM payments WHERE id = $1 FOR UPDATE", prv_txn):
        reply = await world.kiosk.cancel("8002")
    assert reply.text == refused("8002", 1, RETRY)
    assert await world.money() == (60_00, 1, 1)
    assert (await world.kiosk.cancel("8002")).text == stated("8002", prv_txn, "60.00", "cancelled")


async def test_check_and_status_while_stuck_answer_1(world: OsmpWorld) -> None:
    """Lookups that cannot finish in time are 1 as well, never "not found"."""
    await world.kiosk.pay("8003", "60.00")
    async with held(world, "LOCK TABLE payments, payers IN ACCESS EXCLUSIVE MODE"):
        assert (await world.kiosk.status("8003")).text == refused("8003", 1, RETRY)
        assert (await world.kiosk.check("8004")).text == refused("8004", 1, RETRY)


async def test_database_connection_killed_mid_pay_answers_1(world: OsmpWorld) -> None:
    """The server ends the session while the pay waits inside its transaction: result 1, nothing
    half-written; the repeat credits once."""
    async with held(world, "LOCK TABLE payments IN ACCESS EXCLUSIVE MODE"):
        pending = asyncio.create_task(world.kiosk.pay("8005", "60.00"))
        await until_tolem_waits_on_a_lock(world)
        await world.factory.count(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = 'tolem'"
        )
        reply = await pending
    assert (reply.status, reply.text) == (200, refused("8005", 1, RETRY))
    assert await world.money() == (0, 0, 0)
    again = await world.kiosk.pay("8005", "60.00")
    assert again.text == paid("8005", await world.payment_id("8005"), "60.00")
    assert await world.money() == (60_00, 1, 1)


async def test_unexpected_exception_answers_1_with_the_txn_id(
    world: OsmpWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Any bug inside a command is answered 1 echoing txn_id, never HTTP 500 or a final code."""

    async def broken(self: PaymentService, *_args: Any, **_kw: Any) -> Any:
        raise RuntimeError("bug")

    monkeypatch.setattr(PaymentService, "pay", broken)
    reply = await world.kiosk.pay("8006", "60.00")
    assert (reply.status, reply.text) == (200, refused("8006", 1, RETRY))
    assert await world.money() == (0, 0, 0)


async def test_deadline_answers_1(world: OsmpWorld, monkeypatch: pytest.MonkeyPatch) -> None:
    """A command still running at the request deadline is answered 1."""

    async def stuck(self: PaymentService, *_args: Any, **_kw: Any) -> Any:
        await asyncio.sleep(30)

    monkeypatch.setattr(PaymentService, "status", stuck)
    assert (await world.kiosk.status("8007")).text == refused("8007", 1, RETRY)


def test_temporary_error_echoes_the_txn_id_only_once_read() -> None:
    """The last-resort answer is 1 with an empty osmp_txn_id until txn_id was read."""
    provider = provider_value(WireProtocol.OSMP, "kiosk")
    adapter = OsmpAdapter()
    request = make_mocked_request("GET", "/gw/kiosk")
    first = adapter.temporary_error(request, provider)
    assert isinstance(first, web.Response)
    assert first.text == refused("", 1, RETRY)
    request[ECHO] = Echo("123")
    second = adapter.temporary_error(request, provider)
    assert isinstance(second, web.Response)
    assert second.text == refused("123", 1, RETRY)


async def test_log_line_carries_command_masked_code_txn_amount_result(
    world: OsmpWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each call logs command, masked code, txn, amount and result; the full code appears nowhere."""
    monkeypatch.setattr(tolem.log, "_log", structlog.get_logger("test"))
    with capture_logs() as logs:
        await world.kiosk.pay("8100", "12.34")
        await world.kiosk.pay("8100", "12.34")
        await world.kiosk.check("8101", "5.00")
        await world.kiosk.get("command=nonsense&txn_id=8102")
    keys = {"command", "code", "txn", "amount", "result", "replayed"}
    lines = [{k: v for k, v in line.items() if k in keys} for line in logs]
    masked = "*" * (len(world.code) - 4) + world.code[-4:]
    assert lines == [
        {"command": "pay", "code": masked, "txn": "8100", "amount": 1234, "result": "0", "replayed": False},
        {"command": "pay", "code": masked, "txn": "8100", "amount": 1234, "result": "0", "replayed": True},
        {"command": "check", "code": masked, "txn": "8101", "amount": 500, "result": "241"},
        {"command": "unknown", "txn": "8102", "result": "300"},
    ]
    assert world.code not in repr(logs)


async def test_client_disconnect_leaves_no_half_done_payment(world: OsmpWorld) -> None:
    """A kiosk that hangs up while its pay waits on the database does not cut the pay short:
    the transaction finishes whole, and the kiosk's repeat replays it; one credit."""
    server = world.kiosk.client.server
    query = "&".join(f"{k}={v}" for k, v in world.kiosk.pay_params("8200", "70.00").items())
    async with held(world, "LOCK TABLE payments IN ACCESS EXCLUSIVE MODE"):
        reader, writer = await asyncio.open_connection(server.host, server.port)
        writer.write(f"GET /gw/kiosk?{query} HTTP/1.1\r\nHost: kiosk\r\n\r\n".encode())
        await writer.drain()
        await until_tolem_waits_on_a_lock(world)
        writer.close()
        await writer.wait_closed()
        assert await reader.read() == b""
    again = await world.kiosk.pay("8200", "70.00")
    assert again.text == paid("8200", await world.payment_id("8200"), "70.00")
    assert await world.money() == (70_00, 1, 1)
