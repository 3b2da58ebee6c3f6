"""Prometheus metrics operators watch, and the /metrics page. One registry per process (module level).

With several worker processes (`TOLEM_WORKERS` > 1) a scrape reaches whichever worker the
kernel picks, so `tolem serve` points PROMETHEUS_MULTIPROC_DIR at a fresh directory before
starting them: each worker then writes its values there and every scrape sums all workers.
"""

import asyncio
import os
from collections.abc import Callable
from typing import Any, Final

import asyncpg
import structlog
from aiohttp import web
from aiohttp.typedefs import Handler
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

from tolem.core.model import Provider
from tolem.core.service import Observer
from tolem.db import outbox as outbox_db
from tolem.db import reconcile as reconcile_db
from tolem.db import registries as registry_db

_log = structlog.get_logger("tolem.metrics")

REGISTRY: Final = CollectorRegistry(auto_describe=True)

GATEWAY_REQUESTS: Final = Counter(
    "tolem_gateway_requests_total",
    "Gateway calls by provider, command and protocol result code.",
    ["provider", "command", "result"],
    registry=REGISTRY,
)
GATEWAY_LATENCY: Final = Histogram(
    "tolem_gateway_request_seconds",
    "Gateway call latency by provider and command.",
    ["provider", "command"],
    registry=REGISTRY,
    buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
CREDITED_MINOR: Final = Counter(
    "tolem_credited_minor_total",
    "Amount credited to balances, minor units, by provider.",
    ["provider"],
    registry=REGISTRY,
)
REPLAYS: Final = Counter(
    "tolem_replays_total",
    "Repeated requests answered from the stored first result.",
    ["provider"],
    registry=REGISTRY,
)
IDEMPOTENCY_CONFLICTS: Final = Counter(
    "tolem_idempotency_conflicts_total",
    "Transaction ids reused with another amount or code.",
    ["provider"],
    registry=REGISTRY,
)
TRANSACTION_RETRIES: Final = Counter(
    "tolem_transaction_retries_total",
    "Deadlocks and serialization failures rerun.",
    registry=REGISTRY,
)
POOL_IN_USE: Final = Gauge(
    "tolem_db_pool_connections_in_use",
    "Database connections currently lent out.",
    registry=REGISTRY,
    multiprocess_mode="livesum",
)
POOL_SIZE: Final = Gauge(
    "tolem_db_pool_connections",
    "Database connections open in the pool.",
    registry=REGISTRY,
    multiprocess_mode="livesum",
)
JOURNAL_WRITTEN: Final = Counter(
    "tolem_journal_rows_written_total",
    "Gateway calls written to the request journal.",
    registry=REGISTRY,
)
JOURNAL_DROPPED: Final = Counter(
    "tolem_journal_rows_dropped_total",
    "Gateway calls not journaled: buffer full during a database outage, or a row refused.",
    registry=REGISTRY,
)
JOURNAL_WRITE_FAILURES: Final = Counter(
    "tolem_journal_write_failures_total",
    "Journal batches the database did not accept (retried).",
    registry=REGISTRY,
)
JOURNAL_BUFFERED: Final = Gauge(
    "tolem_journal_rows_buffered",
    "Gateway calls waiting in memory to be journaled.",
    registry=REGISTRY,
    multiprocess_mode="livesum",
)
# Read from the database at each scrape (refresh_reconciliation): the freshest worker's value is
# the truth, so with several workers the most recent one is reported, not a sum.
DISCREPANCIES_OPEN: Final = Gauge(
    "tolem_discrepancies_open",
    "Registry discrepancies not yet resolved, by provider.",
    ["provider"],
    registry=REGISTRY,
    multiprocess_mode="mostrecent",
)
RECONCILED_DAY: Final = Gauge(
    "tolem_reconciled_day_timestamp_seconds",
    "Start (midnight in its zone) of the latest business day whose registry was imported and diffed.",
    ["provider"],
    registry=REGISTRY,
    multiprocess_mode="mostrecent",
)
ADMIN_REQUESTS: Final = Counter(
    "tolem_admin_requests_total",
    "Admin API calls by route and HTTP status (route none: refused before routing).",
    ["route", "status"],
    registry=REGISTRY,
)
OPS_REQUESTS: Final = Counter(
    "tolem_ops_requests_total",
    "Operator console requests by route and HTTP status.",
    ["route", "status"],
    registry=REGISTRY,
)
OPS_LOGINS: Final = Counter(
    "tolem_ops_logins_total",
    "Operator console logins by outcome: ok, refused (wrong name or password), locked (throttled).",
    ["outcome"],
    registry=REGISTRY,
)
OPS_ACTIONS: Final = Counter(
    "tolem_ops_actions_total",
    "Changes operators made in the console, by action.",
    ["action"],
    registry=REGISTRY,
)
# Incremented by the dispatcher, in whichever process runs it (tolem serve's parent with
# TOLEM_DELIVER_IN_SERVE, or tolem deliver).
DELIVERY_ATTEMPTS: Final = Counter(
    "tolem_billing_delivery_attempts_total",
    "Outbox deliveries attempted, by sink and outcome (delivered, retry, refused, manual).",
    ["sink", "outcome"],
    registry=REGISTRY,
)
DELIVERY_FAILURES: Final = Counter(
    "tolem_billing_delivery_failures_total",
    "Deliveries whose sink raised or overran its lease (counted as retry too), by sink.",
    ["sink"],
    registry=REGISTRY,
)
# Read from the database at each scrape (refresh_outbox), like the reconciliation gauges.
OUTBOX_PENDING: Final = Gauge(
    "tolem_outbox_pending_events",
    "Outbox events not yet delivered, dead-lettered or handed to an operator.",
    registry=REGISTRY,
    multiprocess_mode="mostrecent",
)
OUTBOX_LAG: Final = Gauge(
    "tolem_outbox_lag_seconds",
    "Age of the oldest pending outbox event (0 when none): how far the billing is behind.",
    registry=REGISTRY,
    multiprocess_mode="mostrecent",
)

MULTIPROCESS_DIR_ENV: Final = "PROMETHEUS_MULTIPROC_DIR"

# labels() validates and looks its arguments up under a lock on every call; the children of
# one set of label values never change (nothing here removes or clears them), so the hot ones
# are kept.
_GATEWAY_CHILDREN: Final[dict[tuple[str, str, str], tuple[Any, Any]]] = {}
_CREDITED_CHILDREN: Final[dict[str, Any]] = {}


def observe_gateway(provider: str, command: str, result: str, seconds: float) -> None:
    """Counts one gateway call and its latency."""
    key = (provider, command, result)
    children = _GATEWAY_CHILDREN.get(key)
    if children is None:
        children = (
            GATEWAY_REQUESTS.labels(provider, command, result),
            GATEWAY_LATENCY.labels(provider, command),
        )
        _GATEWAY_CHILDREN[key] = children
    children[0].inc()
    children[1].observe(seconds)


async def refresh_reconciliation(source: Any) -> None:
    """Sets the reconciliation gauges from the database (`source`: a pool or connection)."""
    for provider, count in (await reconcile_db.open_counts(source)).items():
        DISCREPANCIES_OPEN.labels(provider).set(count)
    for provider, start in (await registry_db.last_reconciled(source)).items():
        RECONCILED_DAY.labels(provider).set(start.timestamp())


async def refresh_outbox(source: Any) -> None:
    """Sets the outbox gauges from the database (`source`: a pool or connection)."""
    found = await outbox_db.backlog(source)
    OUTBOX_PENDING.set(found.pending)
    OUTBOX_LAG.set(found.oldest_seconds)


def exposition() -> bytes:
    """The text a scrape gets: this process's registry, or every worker's when there are several."""
    if os.environ.get(MULTIPROCESS_DIR_ENV):
        combined = CollectorRegistry()
        multiprocess.MultiProcessCollector(combined)  # type: ignore[no-untyped-call]
        return generate_latest(combined)
    return generate_latest(REGISTRY)


# How often each worker refreshes its pool gauges; a scrape may reach any worker.
POOL_GAUGE_SECONDS: Final = 1.0


async def refresh_pool_gauges(pool: asyncpg.Pool) -> None:
    """Keeps this worker's pool gauges current until cancelled."""
    while True:
        POOL_SIZE.set(pool.get_size())
        POOL_IN_USE.set(pool.get_size() - pool.get_idle_size())
        await asyncio.sleep(POOL_GAUGE_SECONDS)


# A scrape waits at most this long for the reconciliation gauges, then shows the last values.
RECONCILIATION_GAUGE_SECONDS: Final = 1.0


async def _reconciliation_gauges(pool: asyncpg.Pool) -> None:
    try:
        async with asyncio.timeout(RECONCILIATION_GAUGE_SECONDS):
            await refresh_reconciliation(pool)
            await refresh_outbox(pool)
    except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError) as exc:
        _log.warning("reconciliation_gauges_failed", error=type(exc).__name__)


def metrics_view(pool: Callable[[], asyncpg.Pool]) -> Handler:
    """The /metrics handler over the application's pool (created in its lifecycle, hence `pool()`)."""

    async def view(_request: web.Request) -> web.Response:
        """Prometheus text exposition."""
        # Pool gauges come from each worker's refresh_pool_gauges task: a scrape reaches only one worker.
        await _reconciliation_gauges(pool())
        body = exposition()
        response = web.Response(body=body)
        response.headers["Content-Type"] = CONTENT_TYPE_LATEST
        return response

    return view


class PrometheusObserver(Observer):
    """Feeds the service's observations into the counters above."""

    def retried(self) -> None:
        """Counts a rerun transaction."""
        TRANSACTION_RETRIES.inc()

    def credited(self, provider: Provider, amount_minor: int) -> None:
        """Adds a credit's amount."""
        child = _CREDITED_CHILDREN.get(provider.name)
        if child is None:
            child = _CREDITED_CHILDREN[provider.name] = CREDITED_MINOR.labels(provider.name)
        child.inc(amount_minor)

    def replayed(self, provider: Provider) -> None:
        """Counts a replay."""
        REPLAYS.labels(provider.name).inc()

    def conflicted(self, provider: Provider) -> None:
        """Counts an idempotency conflict."""
        IDEMPOTENCY_CONFLICTS.labels(provider.name).inc()
