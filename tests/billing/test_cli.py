"""`tolem events`, `tolem events retry`, `tolem deliver` and `account show --billing-id` end to end."""

import asyncio
import signal
import subprocess
import sys

import asyncpg
from aiohttp import web
from aiohttp.test_utils import TestServer

from tests.billing.sinks.standins import SECRET
from tests.cli.conftest import Cli, clean_env
from tests.conftest import Factory
from tolem.billing.sink import Delivered, Refused
from tolem.core.model import PayCommand
from tolem.core.service import PaymentService
from tolem.db import binding, outbox


async def test_events_lists_masked_and_retry_requeues(
    cli: Cli, pool: asyncpg.Pool, factory: Factory, service: PaymentService
) -> None:
    """The list masks codes, shows amounts and states; retry ID and --dead requeue; delivered is refused."""
    provider = await factory.provider()
    _, code = await factory.account()
    await service.pay(provider, PayCommand("1", code, 150_50))
    await service.pay(provider, PayCommand("2", code, 2_00))
    [first] = await outbox.claim(pool, limit=5, lease_seconds=30, sink="webhook")
    await outbox.settle(pool, first, Refused("410 Gone"), give_up_seconds=3600)
    shown = await cli("events")
    assert shown.code == 0 and code not in shown.out
    assert "150.50 KGS" in shown.out and "410 Gone" in shown.out and code[-4:] in shown.out
    dead = await cli("events", "--state", "dead", "--json")
    [row] = dead.json()
    assert (row["state"], row["amount"], row["currency"], row["attempts"]) == ("dead", "150.50", "KGS", 1)
    assert (await cli("events", "retry", "--dead", "--json")).json() == {"requeued": 1}
    [again] = await outbox.claim(pool, limit=5, lease_seconds=30, sink="webhook")
    await outbox.settle(pool, again, Delivered(), give_up_seconds=3600)
    refused = await cli("events", "retry", row["id"])
    assert refused.code == 2 and "was delivered" in refused.err and refused.err.count("\n") == 1
    assert (await cli("events", "retry", "not-a-uuid")).code == 2
    assert (await cli("events", "retry")).code == 2


async def test_deliver_without_a_configured_billing_says_so(cli: Cli) -> None:
    """With no sink available `tolem deliver` exits 2 with one line, instead of idling."""
    run = await cli("deliver")
    assert run.code == 2
    assert run.err.startswith("tolem: error: ") and "nothing to deliver to" in run.err


async def test_deliver_refuses_a_lease_that_is_not_a_positive_number(cli: Cli) -> None:
    """--lease-seconds 0, negative, nan, inf or a word is a usage error naming the option."""
    for bad in ("0", "-1", "nan", "inf", "soon"):
        run = await cli("deliver", f"--lease-seconds={bad}")
        assert run.code == 2, bad
        assert run.err.startswith("tolem: error: ") and "--lease-seconds" in run.err, run.err


async def test_deliver_leases_each_attempt_for_the_seconds_given(
    database_url: str, pool: asyncpg.Pool, factory: Factory, service: PaymentService
) -> None:
    """`tolem deliver --lease-seconds 3` claims the event for 3 s (not the default 120) and delivers it."""
    provider = await factory.provider()
    _, code = await factory.account()
    await service.pay(provider, PayCommand("1", code, 10_00))
    arrived, answer = asyncio.Event(), asyncio.Event()

    async def receive(request: web.Request) -> web.Response:
        arrived.set()
        await answer.wait()
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/hook", receive)
    receiver = TestServer(app)
    await receiver.start_server()
    env = clean_env(
        TOLEM_DATABASE_URL=database_url,
        TOLEM_LOG_FORMAT="json",
        TOLEM_BILLING_SINK="webhook",
        TOLEM_BILLING_URL=str(receiver.make_url("/hook")),
        TOLEM_BILLING_SECRET=SECRET,
        TOLEM_BILLING_TIMEOUT="2",
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "tolem", "deliver", "--lease-seconds", "3"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        await asyncio.wait_for(arrived.wait(), 20)
        left = await pool.fetchval("SELECT extract(epoch FROM lease_until - now()) FROM outbox_events")
        assert 0 < left <= 3
        answer.set()

        async def state() -> str:
            return str(await pool.fetchval("SELECT state FROM outbox_events"))

        delivered = False
        for _ in range(100):
            if delivered := await state() == "delivered":
                break
            await asyncio.sleep(0.05)
        assert delivered
        process.send_signal(signal.SIGTERM)
        _, err = await asyncio.to_thread(process.communicate, timeout=15)
        assert process.returncode == 0, err.decode()
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
        await receiver.close()


async def test_account_show_by_billing_id_shows_both_refs(cli: Cli, pool: asyncpg.Pool) -> None:
    """--billing-id finds the account bound to the billing's client id and shows the payers' ids."""
    async with pool.acquire() as conn:
        bound = await binding.bind_account(
            conn, "cl-5", email="a@example.kg", name="Asanov Asan", services=[], currency="KGS"
        )
        payer = await binding.bind_payer(conn, "cl-5", "prof-8", None)
    shown = await cli("account", "show", "--billing-id", "cl-5")
    assert shown.code == 0
    assert (
        "billing id: cl-5" in shown.out
        and f"{payer.payment_code}  Asanov Asan (issued)  billing id prof-8" in shown.out
    )
    [view] = (await cli("account", "show", "--billing-id", "cl-5", "--json")).json()
    assert (view["id"], view["external_ref"]) == (bound.account_id, "cl-5")
    assert [p["external_ref"] for p in view["payers"]] == [None, "prof-8"]
    assert (await cli("account", "show", "--billing-id", "nobody")).code == 2
