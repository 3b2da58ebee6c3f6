"""What an accountant reads: payments listed and exported, and daily totals from the ledger.

A payment's business time is the aggregator's own stamp of it (provider_time: OSMP txn_date,
Payme `time`, Click sign_time), or the time we recorded it when the aggregator sent none: the
registries the aggregators send are dated by their stamp, so the lists are too. Daily totals
are the other view: money as the ledger moved it (transfers.created_at), with voids (which
move no money) from the payments they ended.
"""

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Final

import asyncpg

# The OR is two ranges on ix__payments__provider_id__provider_time (IS NULL is one of them).
_IN_WINDOW: Final = """
((p.provider_time >= {start} AND p.provider_time < {end})
 OR (p.provider_time IS NULL AND p.created_at >= {start} AND p.created_at < {end}))
"""


@dataclass(frozen=True, slots=True)
class PaymentRow:
    """A payment with every time an accountant asks about."""

    id: int
    provider: str
    external_id: str
    payment_code: str
    amount_minor: int
    currency: str
    state: str
    provider_time: datetime | None
    created_at: datetime
    credited_at: datetime | None
    cancelled_at: datetime | None


@dataclass(frozen=True, slots=True)
class PaymentFilter:
    """Filters of the payments list; every one optional. Times bound the business time."""

    provider: str | None = None
    txn: str | None = None
    code: str | None = None
    state: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    before_id: int | None = None


_PAYMENT_SELECT: Final = """
SELECT p.id, pr.name AS provider, p.external_id, py.payment_code, p.amount_minor, p.currency,
       p.state, p.provider_time, p.created_at, p.credited_at, p.cancelled_at
  FROM payments p
  JOIN providers pr ON pr.id = p.provider_id
  JOIN payers py ON py.id = p.payer_id
"""

# Newest first, keyset on our id: a page's last id is where the next page starts, so payments
# arriving meanwhile (higher ids) never push rows across pages.
_LIST: Final = (
    _PAYMENT_SELECT
    + """
 WHERE ($1::text IS NULL OR pr.name = $1)
   AND ($2::text IS NULL OR p.external_id = $2)
   AND ($3::text IS NULL OR py.payment_code = $3)
   AND ($4::text IS NULL OR p.state = $4)
   AND ($5::timestamptz IS NULL OR coalesce(p.provider_time, p.created_at) >= $5)
   AND ($6::timestamptz IS NULL OR coalesce(p.provider_time, p.created_at) < $6)
   AND ($7::bigint IS NULL OR p.id < $7)
 ORDER BY p.id DESC
 LIMIT $8
"""
)

_DAY: Final = (
    _PAYMENT_SELECT
    + " WHERE p.provider_id = $1 AND "
    + _IN_WINDOW.format(start="$2", end="$3")
    + " ORDER BY coalesce(p.provider_time, p.created_at), p.id"
)


def _currency(values: dict[str, Any]) -> dict[str, Any]:
    values["currency"] = values["currency"].strip()
    return values


async def list_payments(
    conn: asyncpg.Connection | asyncpg.Pool, where: PaymentFilter, *, limit: int
) -> list[PaymentRow]:
    """Payments matching `where`, newest first."""
    rows = await conn.fetch(
        _LIST,
        where.provider,
        where.txn,
        where.code,
        where.state,
        where.since,
        where.until,
        where.before_id,
        limit,
    )
    return [PaymentRow(**_currency(dict(r.items()))) for r in rows]


async def day_payments(
    conn: asyncpg.Connection, provider_id: int, start: datetime, end: datetime
) -> list[PaymentRow]:
    """A provider's payments whose business time lies in [start, end), oldest first."""
    rows = await conn.fetch(_DAY, provider_id, start, end)
    return [PaymentRow(**_currency(dict(r.items()))) for r in rows]


@dataclass(frozen=True, slots=True)
class DailyTotals:
    """One provider's day, in its zone: what the ledger credited and reversed, what was voided."""

    provider: str
    day: date
    zone: str
    currency: str
    credited_count: int
    credited_minor: int
    reversed_count: int
    reversed_minor: int
    voided_count: int
    voided_minor: int

    @property
    def net_minor(self) -> int:
        """Credited less reversed: what the day left on balances."""
        return self.credited_minor - self.reversed_minor


# $1 provider name or NULL, $2 first day, $3 last day (inclusive), $4 the deployment's zone.
# Credits are the topups debiting the provider's clearing account, reversals the reversals
# crediting it: both read from transfers, never from counters or stored balances.
_DAILY: Final = """
WITH prov AS (
    SELECT id, name, currency, clearing_ledger_account_id AS clearing, coalesce(timezone, $4) AS zone
      FROM providers
     WHERE $1::text IS NULL OR name = $1
),
span AS (
    SELECT prov.*, ($2::date)::timestamp AT TIME ZONE zone AS starts,
           ($3::date + 1)::timestamp AT TIME ZONE zone AS ends
      FROM prov
),
moved AS (
    SELECT s.id AS provider_id, t.code, t.currency, (t.created_at AT TIME ZONE s.zone)::date AS day,
           t.amount_minor
      FROM span s JOIN transfers t ON t.debit_ledger_account_id = s.clearing AND t.code = 'topup'
     WHERE t.created_at >= s.starts AND t.created_at < s.ends
    UNION ALL
    SELECT s.id, t.code, t.currency, (t.created_at AT TIME ZONE s.zone)::date, t.amount_minor
      FROM span s JOIN transfers t ON t.credit_ledger_account_id = s.clearing AND t.code = 'reversal'
     WHERE t.created_at >= s.starts AND t.created_at < s.ends
    UNION ALL
    SELECT s.id, 'void', p.currency, (p.cancelled_at AT TIME ZONE s.zone)::date, p.amount_minor
      FROM span s JOIN payments p ON p.provider_id = s.id AND p.state = 'voided'
     WHERE p.cancelled_at >= s.starts AND p.cancelled_at < s.ends
),
totals AS (
    SELECT provider_id, day, currency,
           count(*) FILTER (WHERE code = 'topup') AS credited_count,
           coalesce(sum(amount_minor) FILTER (WHERE code = 'topup'), 0)::bigint AS credited_minor,
           count(*) FILTER (WHERE code = 'reversal') AS reversed_count,
           coalesce(sum(amount_minor) FILTER (WHERE code = 'reversal'), 0)::bigint AS reversed_minor,
           count(*) FILTER (WHERE code = 'void') AS voided_count,
           coalesce(sum(amount_minor) FILTER (WHERE code = 'void'), 0)::bigint AS voided_minor
      FROM moved
     GROUP BY provider_id, day, currency
)
SELECT p.name AS provider, d.day::date AS day, p.zone, coalesce(t.currency, p.currency) AS currency,
       coalesce(t.credited_count, 0) AS credited_count, coalesce(t.credited_minor, 0) AS credited_minor,
       coalesce(t.reversed_count, 0) AS reversed_count, coalesce(t.reversed_minor, 0) AS reversed_minor,
       coalesce(t.voided_count, 0) AS voided_count, coalesce(t.voided_minor, 0) AS voided_minor
  FROM prov p
 CROSS JOIN generate_series($2::date, $3::date, interval '1 day') AS d(day)
  LEFT JOIN totals t ON t.provider_id = p.id AND t.day = d.day::date
 ORDER BY p.name, d.day, currency
"""

# A report longer than this is a data export, not something to read.
MAX_REPORT_DAYS: Final = 366


async def daily_totals(
    conn: asyncpg.Connection | asyncpg.Pool,
    *,
    provider: str | None,
    first: date,
    last: date,
    default_zone: str,
) -> list[DailyTotals]:
    """Per provider and day from `first` to `last` (inclusive), each day in the provider's zone
    (`default_zone` for providers without one); days without any movement are listed as zeros."""
    if last < first or (last - first).days >= MAX_REPORT_DAYS:
        raise ValueError(f"the range must run forwards and span at most {MAX_REPORT_DAYS} days")
    rows = await conn.fetch(_DAILY, provider, first, last, default_zone)
    return [DailyTotals(**_currency(dict(r.items()))) for r in rows]
