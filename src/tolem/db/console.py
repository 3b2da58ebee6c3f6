"""The console's own reads: a provider's transaction id found in any provider, and today's
totals per provider, each provider's day in its own zone."""

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Final

import asyncpg

from tolem.db.accounts import PaymentView


@dataclass(frozen=True, slots=True)
class PaymentHit:
    """A payment a transaction id names, with its account."""

    account_id: int
    payment: PaymentView


# The unique key leads with provider_id, so the id is looked up once per provider (a handful)
# through that key rather than by a scan of every payment for external_id alone.
_PAYMENTS_BY_TXN: Final = """
SELECT p.account_id, p.id, pr.name AS provider, p.external_id, py.payment_code, p.amount_minor,
       p.currency, p.state, p.created_at
  FROM providers pr
  JOIN payments p ON p.provider_id = pr.id AND p.external_id = $1
  JOIN payers py ON py.id = p.payer_id
 ORDER BY pr.name
"""


async def payments_by_txn(conn: asyncpg.Connection, txn: str) -> list[PaymentHit]:
    """Every payment whose provider's transaction id is `txn`, whatever the provider."""
    rows = await conn.fetch(_PAYMENTS_BY_TXN, txn)
    hits = []
    for row in rows:
        values = dict(row.items())
        account_id = values.pop("account_id")
        hits.append(PaymentHit(account_id=account_id, payment=PaymentView(**values)))
    return hits


async def lock_account_status(conn: asyncpg.Connection, account_id: int) -> str | None:
    """The account's status, its row locked until the caller's transaction ends (None: no
    such account), so that a change and its record agree on what it was before."""
    status: str | None = await conn.fetchval(
        "SELECT status FROM accounts WHERE id = $1 FOR UPDATE", account_id
    )
    return status


@dataclass(frozen=True, slots=True)
class DayTotal:
    """Money a provider moved on its current day, in its currency."""

    provider: str
    zone: str
    day: date
    day_start: datetime
    currency: str
    credited_count: int
    credited_minor: int
    reversed_count: int
    reversed_minor: int
    # Transfers in another currency than the provider's: left out of the sums, never added in.
    other_currency_count: int

    @property
    def net_minor(self) -> int:
        """What the provider owes us for the day so far."""
        return self.credited_minor - self.reversed_minor


# Money moves only through transfers, so the day's totals are its transfers: a top-up debits
# the provider's clearing account, a reversal credits it. A provider's day runs from midnight
# in its own zone (or the deployment's), whatever the session's zone. The bounds are worked out
# once per provider (MATERIALIZED), not once per transfer row, and each provider's transfers
# are summed on their own; the BRIN index on transfers.created_at (0013) keeps the scan to the
# day's part of the table.
_TODAY: Final = """
WITH days AS MATERIALIZED (
    SELECT pr.name, pr.currency, pr.clearing_ledger_account_id AS clearing, z.zone,
           m.local_midnight::date AS day,
           m.local_midnight AT TIME ZONE z.zone AS day_start,
           coalesce($2::timestamptz, now()) AS until
      FROM providers pr
     CROSS JOIN LATERAL (SELECT coalesce(pr.timezone, $1) AS zone) z
     CROSS JOIN LATERAL (
           SELECT date_trunc('day', coalesce($2::timestamptz, now()) AT TIME ZONE z.zone) AS local_midnight
     ) m
)
SELECT d.name AS provider, d.zone, d.day, d.day_start, d.currency, s.*
  FROM days d
 CROSS JOIN LATERAL (
       SELECT count(*) FILTER (WHERE t.code = 'topup' AND same) AS credited_count,
              coalesce(sum(t.amount_minor) FILTER (WHERE t.code = 'topup' AND same), 0)::bigint
                  AS credited_minor,
              count(*) FILTER (WHERE t.code = 'reversal' AND same) AS reversed_count,
              coalesce(sum(t.amount_minor) FILTER (WHERE t.code = 'reversal' AND same), 0)::bigint
                  AS reversed_minor,
              count(*) FILTER (WHERE NOT same) AS other_currency_count
         FROM transfers t
        CROSS JOIN LATERAL (SELECT t.currency = d.currency AS same) c
        WHERE (t.debit_ledger_account_id = d.clearing OR t.credit_ledger_account_id = d.clearing)
          AND t.created_at >= d.day_start AND t.created_at <= d.until
  ) s
 ORDER BY d.name
"""


async def today_totals(
    conn: asyncpg.Connection, default_zone: str, *, at: datetime | None = None
) -> list[DayTotal]:
    """Per provider, what was credited and reversed on its local day that
    holds `at` (now, unless given), from local midnight up to `at`."""
    rows = await conn.fetch(_TODAY, default_zone, at)
    return [DayTotal(**_fields(r)) for r in rows]


def _fields(row: Any) -> dict[str, Any]:
    values = dict(row.items())
    values["currency"] = values["currency"].strip()
    return values
