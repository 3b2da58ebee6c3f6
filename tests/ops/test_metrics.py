"""/metrics: what Grafana graphs, in-process and summed across worker processes."""

import asyncio
import subprocess
import sys
from typing import Any

import aiohttp
import asyncpg
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.cli.test_serve import clean_env, free_port, wait_ready
from tests.conftest import Factory
from tests.ops.conftest import ClickWorld
from tolem.core import errors
from tolem.core.model import PayCommand
from tolem.core.service import PaymentService
from tolem.db.store import PgStore
from tolem.gateway.handler import JOURNAL
from tolem.ops import metrics


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a scrape by (name, sorted labels)."""
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def value(scrape: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str) -> float:
    """One sample's value, 0 when absent (a counter never incremented)."""
    return scrape.get((name, tuple(sorted(labels.items()))), 0.0)


async def scrape(world: ClickWorld) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """The app's /metrics, parsed."""
    response = await world.click.client.get("/metrics")
    assert response.status == 200
    assert response.content_type == "text/plain"
    return samples(await response.text())


async def test_gateway_calls_show_up_by_provider_command_and_result(world: ClickWorld) -> None:
    """Requests, latency, credited amount, replays, pool and journal metrics move with real calls."""
    before = await scrape(world)
    prepared = await world.click.prepare("501")
    prepare_id = prepared.body["merchant_prepare_id"]
    assert (await world.click.complete(prepare_id, "501")).body["error"] == 0
    assert (await world.click.complete(prepare_id, "501")).body["error"] == -4  # already paid
    await world.click.client.app[JOURNAL].flush()
    after = await scrape(world)

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved("tolem_gateway_requests_total", provider="click", command="prepare", result="0") == 1
    assert moved("tolem_gateway_requests_total", provider="click", command="complete", result="0") == 1
    assert moved("tolem_gateway_requests_total", provider="click", command="complete", result="-4") == 1
    assert moved("tolem_gateway_request_seconds_count", provider="click", command="complete") == 2
    assert moved("tolem_gateway_request_seconds_bucket", provider="click", command="complete", le="+Inf") == 2
    assert moved("tolem_credited_minor_total", provider="click") == 1000_00
    assert moved("tolem_replays_total", provider="click") == 1
    assert moved("tolem_journal_rows_written_total") == 3
    assert value(after, "tolem_db_pool_connections") >= 1
    assert ("tolem_db_pool_connections_in_use", ()) in after
    assert ("tolem_transaction_retries_total", ()) in after


async def test_idempotency_conflicts_are_counted(pool: asyncpg.Pool, factory: Factory) -> None:
    """A transaction id reused with another amount counts one conflict for its provider."""
    provider = await factory.provider("conflicted")
    _, code = await factory.account()
    service = PaymentService(PgStore(pool), observer=metrics.PrometheusObserver())
    counter = metrics.IDEMPOTENCY_CONFLICTS.labels("conflicted")
    start = counter._value.get()
    await service.pay(provider, PayCommand("t1", code, 100_00))
    with pytest.raises(errors.IdempotencyConflict):
        await service.pay(provider, PayCommand("t1", code, 200_00))
    assert counter._value.get() - start == 1


@pytest.mark.slow
async def test_every_worker_is_counted_whichever_answers_the_scrape(database_url: str) -> None:
    """With two workers each scrape reports the calls both of them served."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    process = subprocess.Popen(
        [sys.executable, "-m", "tolem", "serve", "--port", str(port), "--workers", "2"],
        env=clean_env(TOLEM_DATABASE_URL=database_url, TOLEM_LOG_FORMAT="json", TOLEM_ADMIN_TOKEN="t" * 32),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        await wait_ready(f"{base}/readyz", process)
        # A new connection per call lets the kernel spread the calls over both workers.
        connector: Any = lambda: aiohttp.TCPConnector(force_close=True)  # noqa: E731
        async with aiohttp.ClientSession(connector=connector()) as session:
            for _ in range(40):
                async with session.get(
                    f"{base}/admin/providers", headers={"Authorization": "Bearer no"}
                ) as r:
                    assert r.status == 401
            seen = []
            for _ in range(10):
                async with session.get(f"{base}/metrics") as r:
                    scrape = samples(await r.text())
                seen.append(value(scrape, "tolem_admin_requests_total", route="none", status="401"))
        assert seen == [40.0] * 10
    finally:
        process.terminate()
        try:
            await asyncio.to_thread(process.wait, 15)
        finally:
            if process.poll() is None:
                process.kill()
            process.communicate()
