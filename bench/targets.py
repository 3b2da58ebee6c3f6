"""What the benchmark measures: the servers seeded for one database (tolem and the bare
reference), the targets each scenario drives through them, tolem through PgBouncer, and the
stored history of the database measured with --prior."""

import os
import sys
from dataclasses import dataclass
from typing import Final
from urllib.parse import urlsplit

import asyncpg

from bench.balancer import Balancer, Fleet
from bench.harness import Database, Server, free_port, seed
from bench.load import Scenario
from bench.pgbouncer import PgBouncer
from bench.protocols import RequestBuilder, bare, osmp, payme

PAYME_PROVIDER = "bench-payme"
OSMP_PROVIDER = "bench-osmp"
BARE_PROVIDER = "bench-bare"
PAYME_LOGIN = "Paycom"
PASSWORD = "bench-key"  # noqa: S105 - a throwaway provider's key


@dataclass
class Target:
    """A server under test, how to talk to it, and the account keys it knows."""

    name: str
    server: Server | Fleet
    builder: RequestBuilder
    codes: list[str]
    url_path: str = "/"
    check_name: str = ""
    # The target whose throughput this one is divided by (its name), if any.
    reference: str = ""
    # The scenarios it takes part in; None for all.
    scenarios: frozenset[str] | None = None
    protocol: str = ""
    # Which database it serves: "" for the run's (nearly empty) one, else the label of the one
    # holding the prior payments ("@1M"), and that database's DSN.
    group: str = ""
    dsn: str = ""
    # Another target (its name) whose throughput this one's is given against in a note.
    versus: str = ""

    def runs(self, scenario: str, protocols: list[str]) -> bool:
        """Whether this target is measured in a scenario."""
        wanted = not protocols or self.protocol in protocols
        in_group = not self.group or scenario in PRIOR_SCENARIOS
        return wanted and in_group and (self.scenarios is None or scenario in self.scenarios)

    def label(self, scenario: Scenario) -> str:
        """The name shown for this target in a scenario."""
        return self.check_name if scenario.mode == "check" and self.check_name else self.name


# What is measured again against the database holding --prior payments.
PRIOR_SCENARIOS: Final = ("check", "pay")


async def load_prior_payments(dsn: str, provider: str, count: int) -> None:
    """`count` credited payments with their transfers and balances, as years of history."""
    conn = await asyncpg.connect(dsn)
    try:
        async with conn.transaction():
            await conn.execute(
                """
                INSERT INTO payments (provider_id, external_id, payer_id, account_id, amount_minor,
                                      currency, state, provider_time, created_at, credited_at)
                SELECT pr.id, 'prior-' || g, py.ids[1 + g % py.n], py.accounts[1 + g % py.n],
                       10000, pr.currency, 'credited', t, t, t
                  FROM providers pr,
                       (SELECT array_agg(id ORDER BY id) AS ids,
                               array_agg(account_id ORDER BY id) AS accounts, count(*)::int AS n
                          FROM payers) py,
                       generate_series(1, $2) g,
                       LATERAL (SELECT now() - g * interval '1 minute' AS t) tt
                 WHERE pr.name = $1
                """,
                provider,
                count,
            )
            await conn.execute(
                """
                INSERT INTO transfers (debit_ledger_account_id, credit_ledger_account_id,
                                       amount_minor, currency, code, payment_id, created_at)
                SELECT pr.clearing_ledger_account_id, a.ledger_account_id, p.amount_minor,
                       p.currency, 'topup', p.id, p.created_at
                  FROM payments p JOIN accounts a ON a.id = p.account_id
                  JOIN providers pr ON pr.id = p.provider_id
                 WHERE p.external_id LIKE 'prior-%'
                """
            )
            await conn.execute(
                """
                UPDATE ledger_accounts l SET balance_minor = balance_minor + s.total
                  FROM (SELECT t.credit_ledger_account_id AS id, sum(t.amount_minor) AS total
                          FROM transfers t JOIN payments p ON p.id = t.payment_id
                         WHERE p.external_id LIKE 'prior-%' GROUP BY 1) s
                 WHERE l.id = s.id AND l.kind = 'customer'
                """
            )
        await conn.execute("VACUUM ANALYZE")
    finally:
        await conn.close()


async def provider_id(dsn: str, name: str) -> int:
    """A provider's id by name."""
    conn = await asyncpg.connect(dsn)
    try:
        return int(await conn.fetchval("SELECT id FROM providers WHERE name = $1", name))
    finally:
        await conn.close()


async def seeded_servers(
    dsn: str, *, accounts: int, workers: int, pool: int
) -> tuple[list[str], Server, Server]:
    """Seeds a migrated database; returns its codes, and tolem and the bare server for it."""
    codes = await seed(
        dsn,
        accounts=accounts,
        providers=((PAYME_PROVIDER, "payme"), (OSMP_PROVIDER, "osmp"), (BARE_PROVIDER, "osmp")),
        password=PASSWORD,
        # OSMP deployments put Basic credentials on top of the allow-list; so does the run.
        password_protocols=("payme", "osmp"),
    )
    bare_id = await provider_id(dsn, BARE_PROVIDER)
    tolem_server = Server.tolem(dsn, workers=workers, TOLEM_POOL_SIZE=str(pool))
    bare_port = free_port()
    bare_server = Server(
        [
            sys.executable,
            "-m",
            "bench.bare",
            "--dsn",
            dsn,
            "--port",
            str(bare_port),
            "--workers",
            str(workers),
            "--pool",
            str(pool),
            "--provider-id",
            str(bare_id),
        ],
        dict(os.environ),
        bare_port,
    )
    return codes, tolem_server, bare_server


def gateway_targets(
    tolem_server: Server, bare_server: Server, codes: list[str], group: str, dsn: str
) -> list[Target]:
    """What is measured against one database: tolem's two gateways and their references."""
    payme_builder = payme(f"/gw/{PAYME_PROVIDER}", login=PAYME_LOGIN, password=PASSWORD)
    payme_scenarios = frozenset({"check", "pay"})
    return [
        Target(
            "bare osmp pay",
            bare_server,
            osmp("/osmp"),
            codes,
            check_name="bare osmp check",
            protocol="osmp",
            group=group,
            dsn=dsn,
        ),
        Target(
            "tolem osmp pay",
            tolem_server,
            osmp(f"/gw/{OSMP_PROVIDER}", login="osmp", password=PASSWORD),
            codes,
            check_name="tolem osmp check",
            reference="bare osmp pay",
            protocol="osmp",
            group=group,
            dsn=dsn,
        ),
        Target(
            "bare reserve+perform",
            bare_server,
            bare(two_phase=True),
            codes,
            check_name="bare check",
            scenarios=payme_scenarios,
            protocol="payme",
            group=group,
            dsn=dsn,
        ),
        Target(
            "tolem payme pair",
            tolem_server,
            payme_builder,
            codes,
            check_name="tolem payme check",
            reference="bare reserve+perform",
            scenarios=payme_scenarios,
            protocol="payme",
            group=group,
            dsn=dsn,
        ),
    ]


# What is measured through PgBouncer: OSMP check and pay, with one and with two instances.
POOLED_SCENARIOS: Final = frozenset({"check", "pay"})


def pooled_targets(
    database: Database, codes: list[str], *, workers: int, pool: int
) -> tuple[PgBouncer, list[Target]]:
    """PgBouncer in front of the run's server, and tolem through it: one instance, and two
    behind HAProxy. PgBouncer's pool is the size of one instance's, so PostgreSQL sees as many
    connections as from the bare server, however many instances there are."""
    upstream = urlsplit(database.dsn)
    bouncer = PgBouncer(
        upstream.port or 5432,
        upstream_host=upstream.hostname or "127.0.0.1",
        user=upstream.username or "postgres",
        pool_size=pool,
        # The benchmark's deadline is tolem's default (5 s); these sit below it as tolem's own.
        statement_timeout_ms=4000,
    )

    def instance() -> Server:
        return Server.tolem(
            bouncer.dsn(database.name),
            workers=workers,
            TOLEM_POOL_SIZE=str(pool),
            TOLEM_DATABASE_POOLER="pgbouncer",
            TOLEM_TRUSTED_PROXIES="127.0.0.1/32",
        )

    pair = [instance(), instance()]
    fleets = {
        "pgb tolem": (Fleet([instance()], bouncer), "tolem osmp pay"),
        "pgb x2 tolem": (Fleet(pair, bouncer, Balancer([s.port for s in pair])), "pgb tolem osmp pay"),
    }
    targets = [
        Target(
            f"{label} osmp pay",
            fleet,
            osmp(f"/gw/{OSMP_PROVIDER}", login="osmp", password=PASSWORD),
            codes,
            check_name=f"{label} osmp check",
            reference="bare osmp pay",
            scenarios=POOLED_SCENARIOS,
            protocol="osmp",
            dsn=database.dsn,
            versus=versus,
        )
        for label, (fleet, versus) in fleets.items()
    ]
    return bouncer, targets


def prior_label(count: int) -> str:
    """How rows measured against the database with `count` prior payments are labelled."""
    return f"@{count // 1_000_000}M" if count >= 1_000_000 else f"@{count}"
