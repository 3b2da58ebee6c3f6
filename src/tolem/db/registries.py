"""Registries: storing an aggregator's registry file and diffing it with set-based SQL against
our payments; what differs is recorded as discrepancies (tolem.db.reconcile works them off).

What the diff compares (docs/reconciliation.md has the reasoning):

* Every registry line is joined to our payment with the same (provider, transaction id),
  whatever day that payment fell on: the transaction id is the key on both sides. A line
  without a payment is ``missing_ours`` (unless the aggregator cancelled it too); a line with
  one may differ in amount, payment code, state, or business day (``day_mismatch``: a payment
  near midnight that the aggregator counted on the other day).
* Our payments credited on the registry's business day (their provider time, read in the
  registry's zone) that no line lists are ``missing_theirs``, unless the stored registry of
  the day before or after lists them: that registry's diff reports the day instead.

Each difference is recorded once per (provider, business day, kind, transaction id); diffing
again finds the recorded one, open or resolved, and adds nothing.
"""

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Final
from zoneinfo import ZoneInfo

import asyncpg

from tolem.core.model import Provider
from tolem.reconcile.formats import Parsed

# Class id of the advisory lock that serialises imports of one provider's registries (the
# second key is the provider's id). Arbitrary but fixed; nothing else uses it.
REGISTRY_LOCK_CLASS: Final = 0x7017E6


def day_bounds(day: date, zone: str) -> tuple[datetime, datetime]:
    """[start, end) of a business day: midnight to midnight in `zone`, as UTC instants."""
    tz = ZoneInfo(zone)
    start = datetime.combine(day, time(), tzinfo=tz).astimezone(UTC)
    end = datetime.combine(day + timedelta(days=1), time(), tzinfo=tz).astimezone(UTC)
    return start, end


@dataclass(frozen=True, slots=True)
class StoredRegistry:
    """A stored registry file."""

    id: int
    provider: str
    provider_id: int
    business_day: date
    revision: int
    format: str
    file_name: str
    sha256: str
    zone: str
    currency: str
    line_count: int
    declared_count: int | None
    declared_minor: int | None
    imported_by: str
    imported_at: datetime


class RegistryConflict(Exception):
    """The day already has a registry with other content, and no new revision was asked for."""

    def __init__(self, latest: StoredRegistry) -> None:
        super().__init__(f"registry #{latest.id} already covers that day")
        self.latest = latest


class RegistrySuperseded(Exception):
    """The file was stored before, but a later revision of the same day has replaced it."""

    def __init__(self, stored: StoredRegistry, latest: StoredRegistry) -> None:
        super().__init__(f"registry #{stored.id} is superseded by #{latest.id}")
        self.stored = stored
        self.latest = latest


@dataclass(frozen=True, slots=True)
class Difference:
    """One difference the diff found, with the discrepancy that records it."""

    kind: str
    txn: str
    line_no: int | None
    payment_id: int | None
    theirs_amount_minor: int | None
    ours_amount_minor: int | None
    theirs_code: str | None
    ours_code: str | None
    theirs_state: str | None
    ours_state: str | None
    ours_day: date | None
    # The registry's time of the payment; ours for missing_theirs.
    at: datetime
    discrepancy_id: int
    new: bool
    resolved_at: datetime | None
    resolved_by: str | None


@dataclass(frozen=True, slots=True)
class Side:
    """How many payments one side counts as paid on the day, and their sum."""

    count: int
    total_minor: int


@dataclass(frozen=True, slots=True)
class Reconciliation:
    """A registry diffed against our payments."""

    registry: StoredRegistry
    stored_now: bool
    theirs: Side
    theirs_not_paid: int
    ours: Side
    differences: list[Difference]

    @property
    def agree(self) -> bool:
        """Nothing differs."""
        return not self.differences


@dataclass(frozen=True, slots=True)
class RegistryLine:
    """One stored line, as a credit from the registry needs it."""

    txn: str
    paid_at: datetime
    paid_at_raw: str
    payment_code: str | None
    amount_minor: int
    state: str


_REGISTRY_COLUMNS: Final = """
r.id, pr.name AS provider, r.provider_id, r.business_day, r.revision, r.format, r.file_name,
r.sha256, r.zone, r.currency, r.line_count, r.declared_count, r.declared_minor, r.imported_by,
r.imported_at
"""
_REGISTRIES_OF_DAY: Final = f"""
SELECT {_REGISTRY_COLUMNS}
  FROM registries r JOIN providers pr ON pr.id = r.provider_id
 WHERE r.provider_id = $1 AND r.business_day = $2
 ORDER BY r.revision
"""
_INSERT_REGISTRY: Final = """
INSERT INTO registries (provider_id, business_day, revision, format, file_name, sha256, zone,
                        currency, line_count, declared_count, declared_minor, imported_by)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
RETURNING id
"""
_LINE_COLUMNS: Final = (
    "registry_id",
    "line_no",
    "txn",
    "txn_raw",
    "paid_at",
    "paid_at_raw",
    "payment_code",
    "amount_minor",
    "state",
)

# $1 registry, $2 provider, $3 business day, $4 zone, $5/$6 the day's bounds in UTC.
# Our payments' business time is the aggregator's own stamp, ours when it sent none; the OR
# below is two ranges on ix__payments__provider_id__provider_time (provider_time IS NULL is
# one of them), so the day's payments are found without a scan.
_DIFF: Final = """
WITH joined AS (
    SELECT l.line_no, l.txn, l.amount_minor, l.payment_code, l.state, l.paid_at,
           p.id AS payment_id, p.amount_minor AS ours_amount, py.payment_code AS ours_code,
           p.state AS ours_state,
           (coalesce(p.provider_time, p.created_at) AT TIME ZONE $4)::date AS ours_day
      FROM registry_lines l
      LEFT JOIN payments p ON p.provider_id = $2 AND p.external_id = l.txn
      LEFT JOIN payers py ON py.id = p.payer_id
     WHERE l.registry_id = $1
),
theirs AS (
    -- One flag per kind, so only lines that differ somehow are expanded into kinds below.
    SELECT j.*,
           j.payment_id IS NULL AND j.state <> 'cancelled' AS missing_ours,
           j.payment_id IS NOT NULL AND j.amount_minor <> j.ours_amount AS amount_mismatch,
           j.payment_id IS NOT NULL AND j.payment_code IS NOT NULL
               AND j.payment_code <> j.ours_code AS code_mismatch,
           j.payment_id IS NOT NULL AND (j.state, j.ours_state) NOT IN (
               ('paid', 'credited'), ('cancelled', 'voided'), ('cancelled', 'reversed'),
               ('pending', 'reserved')) AS state_mismatch,
           j.payment_id IS NOT NULL AND j.ours_day <> $3::date AS day_mismatch
      FROM joined j
),
listed AS (
    -- The latest revision of the day before and after, besides this registry.
    SELECT $1::bigint AS id
    UNION ALL
    (SELECT DISTINCT ON (business_day) id
       FROM registries
      WHERE provider_id = $2 AND business_day IN ($3::date - 1, $3::date + 1)
      ORDER BY business_day, revision DESC)
),
diff AS (
    SELECT k.kind, t.txn, t.line_no, t.payment_id, t.amount_minor AS theirs_amount_minor,
           t.ours_amount AS ours_amount_minor, t.payment_code AS theirs_code, t.ours_code,
           t.state AS theirs_state, t.ours_state, t.ours_day, t.paid_at AS at
      FROM theirs t
     CROSS JOIN LATERAL (VALUES
        ('missing_ours', t.missing_ours), ('amount_mismatch', t.amount_mismatch),
        ('code_mismatch', t.code_mismatch), ('state_mismatch', t.state_mismatch),
        ('day_mismatch', t.day_mismatch)
     ) AS k(kind, differs)
     WHERE k.differs
       AND (t.missing_ours OR t.amount_mismatch OR t.code_mismatch OR t.state_mismatch OR t.day_mismatch)
    UNION ALL
    SELECT 'missing_theirs', p.external_id, NULL, p.id, NULL, p.amount_minor, NULL,
           py.payment_code, NULL, p.state, $3::date, coalesce(p.provider_time, p.created_at)
      FROM payments p JOIN payers py ON py.id = p.payer_id
     WHERE p.provider_id = $2 AND p.state = 'credited'
       AND ((p.provider_time >= $5 AND p.provider_time < $6)
            OR (p.provider_time IS NULL AND p.created_at >= $5 AND p.created_at < $6))
       AND NOT EXISTS (SELECT 1 FROM registry_lines l
                        WHERE l.registry_id IN (SELECT id FROM listed) AND l.txn = p.external_id)
),
recorded AS (
    INSERT INTO discrepancies (provider_id, business_day, kind, txn, registry_id, line_no,
                               payment_id, theirs_amount_minor, ours_amount_minor, theirs_code,
                               ours_code, theirs_state, ours_state, ours_day)
    SELECT $2, $3, kind, txn, $1, line_no, payment_id, theirs_amount_minor, ours_amount_minor,
           theirs_code, ours_code, theirs_state, ours_state, ours_day
      FROM diff
    ON CONFLICT ON CONSTRAINT uq__discrepancies__provider_id__business_day__kind__txn DO NOTHING
    RETURNING id, kind, txn
)
SELECT d.*, coalesce(r.id, x.id) AS discrepancy_id, r.id IS NOT NULL AS new,
       x.resolved_at, x.resolved_by
  FROM diff d
  LEFT JOIN recorded r ON r.kind = d.kind AND r.txn = d.txn
  LEFT JOIN discrepancies x ON x.provider_id = $2 AND x.business_day = $3 AND x.kind = d.kind
                           AND x.txn = d.txn
 ORDER BY d.line_no NULLS LAST, d.txn, d.kind
"""
_THEIRS: Final = """
SELECT count(*) FILTER (WHERE state = 'paid') AS paid,
       coalesce(sum(amount_minor) FILTER (WHERE state = 'paid'), 0)::bigint AS paid_minor,
       count(*) FILTER (WHERE state <> 'paid') AS not_paid
  FROM registry_lines WHERE registry_id = $1
"""
_OURS: Final = """
SELECT count(*) AS paid, coalesce(sum(amount_minor), 0)::bigint AS paid_minor
  FROM payments
 WHERE provider_id = $1 AND state = 'credited'
   AND ((provider_time >= $2 AND provider_time < $3)
        OR (provider_time IS NULL AND created_at >= $2 AND created_at < $3))
"""


def _registry(row: Any) -> StoredRegistry:
    values = dict(row.items())
    values["currency"] = values["currency"].strip()
    return StoredRegistry(**values)


async def import_registry(
    conn: asyncpg.Connection,
    *,
    provider: Provider,
    day: date,
    zone: str,
    parsed: Parsed,
    file_name: str,
    sha256: str,
    imported_by: str,
    supersede: bool = False,
) -> Reconciliation:
    """Stores the registry (unless this very file is stored for that day) and diffs it, in one
    transaction: a failure stores nothing.

    Raises RegistryConflict (another file covers the day and `supersede` is off) and
    RegistrySuperseded (this file was replaced by a later revision).
    """
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1, $2)", REGISTRY_LOCK_CLASS, provider.id)
        stored = [_registry(r) for r in await conn.fetch(_REGISTRIES_OF_DAY, provider.id, day)]
        latest = stored[-1] if stored else None
        same = next((r for r in stored if r.sha256 == sha256), None)
        if same is not None:
            assert latest is not None
            if same.revision != latest.revision:
                raise RegistrySuperseded(same, latest)
            return await _diff(conn, same, stored_now=False)
        if latest is not None and not supersede:
            raise RegistryConflict(latest)
        registry_id = await conn.fetchval(
            _INSERT_REGISTRY,
            provider.id,
            day,
            1 if latest is None else latest.revision + 1,
            str(parsed.format),
            file_name,
            sha256,
            zone,
            provider.currency,
            len(parsed.lines),
            parsed.declared_count,
            parsed.declared_minor,
            imported_by,
        )
        await conn.copy_records_to_table(
            "registry_lines",
            records=[
                (
                    registry_id,
                    line.line_no,
                    line.txn,
                    line.txn_raw,
                    line.paid_at,
                    line.paid_at_raw,
                    line.payment_code,
                    line.amount_minor,
                    str(line.state),
                )
                for line in parsed.lines
            ],
            columns=_LINE_COLUMNS,
        )
        row = await conn.fetchrow(
            f"SELECT {_REGISTRY_COLUMNS} FROM registries r JOIN providers pr ON pr.id = r.provider_id"
            " WHERE r.id = $1",
            registry_id,
        )
        return await _diff(conn, _registry(row), stored_now=True)


async def _diff(conn: asyncpg.Connection, registry: StoredRegistry, *, stored_now: bool) -> Reconciliation:
    start, end = day_bounds(registry.business_day, registry.zone)
    rows = await conn.fetch(
        _DIFF, registry.id, registry.provider_id, registry.business_day, registry.zone, start, end
    )
    theirs = await conn.fetchrow(_THEIRS, registry.id)
    ours = await conn.fetchrow(_OURS, registry.provider_id, start, end)
    return Reconciliation(
        registry=registry,
        stored_now=stored_now,
        theirs=Side(theirs["paid"], theirs["paid_minor"]),
        theirs_not_paid=theirs["not_paid"],
        ours=Side(ours["paid"], ours["paid_minor"]),
        differences=[Difference(**dict(r.items())) for r in rows],
    )


async def last_reconciled(conn: asyncpg.Connection | asyncpg.Pool) -> dict[str, datetime]:
    """Per provider with a registry: the start (midnight in the registry's zone) of the latest
    business day whose registry was imported and diffed."""
    rows = await conn.fetch(
        """SELECT DISTINCT ON (r.provider_id) pr.name, r.business_day, r.zone
             FROM registries r JOIN providers pr ON pr.id = r.provider_id
            ORDER BY r.provider_id, r.business_day DESC"""
    )
    return {r["name"]: day_bounds(r["business_day"], r["zone"])[0] for r in rows}


async def registry_line(
    conn: asyncpg.Connection | asyncpg.Pool, registry_id: int, line_no: int
) -> RegistryLine:
    """A stored line of a registry."""
    row = await conn.fetchrow(
        """SELECT txn, paid_at, paid_at_raw, payment_code, amount_minor, state
             FROM registry_lines WHERE registry_id = $1 AND line_no = $2""",
        registry_id,
        line_no,
    )
    assert row is not None, "a discrepancy's line is kept by a foreign key"
    return RegistryLine(**dict(row.items()))
