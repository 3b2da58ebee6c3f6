"""Discrepancies: the differences a registry's diff recorded (tolem.db.registries), listed,
counted and worked off.

A discrepancy stays open until an operator resolves it with a note; who and when are kept with
it, and a resolution is final (docs/reconciliation.md).
"""

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Final

import asyncpg

MAX_OPERATOR: Final = 64
MAX_NOTE: Final = 1000


# The kinds of difference, as ck__discrepancies__kind spells them.
KINDS: Final = (
    "missing_ours",
    "missing_theirs",
    "amount_mismatch",
    "code_mismatch",
    "state_mismatch",
    "day_mismatch",
)


class DiscrepancyNotFound(LookupError):
    """No discrepancy with that id."""


class AlreadyResolved(Exception):
    """The discrepancy was resolved before (resolutions are final)."""

    def __init__(self, discrepancy: "Discrepancy") -> None:
        super().__init__(f"discrepancy {discrepancy.id} is already resolved")
        self.discrepancy = discrepancy


@dataclass(frozen=True, slots=True)
class Discrepancy:
    """A recorded difference, open or resolved."""

    id: int
    provider: str
    currency: str
    business_day: date
    kind: str
    txn: str
    registry_id: int
    line_no: int | None
    payment_id: int | None
    theirs_amount_minor: int | None
    ours_amount_minor: int | None
    theirs_code: str | None
    ours_code: str | None
    theirs_state: str | None
    ours_state: str | None
    ours_day: date | None
    found_at: datetime
    resolved_at: datetime | None
    resolved_by: str | None
    resolution_note: str | None
    credited_payment_id: int | None

    @property
    def open(self) -> bool:
        """Not yet resolved."""
        return self.resolved_at is None


_DISCREPANCY_SELECT: Final = """
SELECT d.id, pr.name AS provider, pr.currency, d.business_day, d.kind, d.txn, d.registry_id,
       d.line_no, d.payment_id, d.theirs_amount_minor, d.ours_amount_minor, d.theirs_code,
       d.ours_code, d.theirs_state, d.ours_state, d.ours_day, d.found_at, d.resolved_at,
       d.resolved_by, d.resolution_note, d.credited_payment_id
  FROM discrepancies d JOIN providers pr ON pr.id = d.provider_id
"""


def _discrepancy(row: Any) -> Discrepancy:
    values = dict(row.items())
    values["currency"] = values["currency"].strip()
    return Discrepancy(**values)


async def list_discrepancies(
    conn: asyncpg.Connection | asyncpg.Pool,
    *,
    provider: str | None = None,
    include_resolved: bool = False,
    limit: int = 100,
    before_id: int | None = None,
) -> list[Discrepancy]:
    """Discrepancies, newest first (open ones only unless `include_resolved`); page on with
    the last id as `before_id`."""
    rows = await conn.fetch(
        _DISCREPANCY_SELECT
        + """ WHERE ($1::text IS NULL OR pr.name = $1)
               AND ($2 OR d.resolved_at IS NULL)
               AND ($3::bigint IS NULL OR d.id < $3)
             ORDER BY d.id DESC LIMIT $4""",
        provider,
        include_resolved,
        before_id,
        limit,
    )
    return [_discrepancy(r) for r in rows]


async def get_discrepancy(conn: asyncpg.Connection | asyncpg.Pool, discrepancy_id: int) -> Discrepancy:
    """One discrepancy; raises DiscrepancyNotFound."""
    row = await conn.fetchrow(_DISCREPANCY_SELECT + " WHERE d.id = $1", discrepancy_id)
    if row is None:
        raise DiscrepancyNotFound(discrepancy_id)
    return _discrepancy(row)


async def open_counts(conn: asyncpg.Connection | asyncpg.Pool) -> dict[str, int]:
    """Open discrepancies per provider, every provider listed (0 when none)."""
    rows = await conn.fetch(
        """SELECT pr.name, count(d.id) AS open
             FROM providers pr
             LEFT JOIN discrepancies d ON d.provider_id = pr.id AND d.resolved_at IS NULL
            GROUP BY pr.name ORDER BY pr.name"""
    )
    return {r["name"]: r["open"] for r in rows}


def check_resolution(operator: str, note: str) -> tuple[str, str]:
    """The operator's name and note, stripped; ValueError says what is wrong."""
    operator, note = operator.strip(), note.strip()
    if not 0 < len(operator) <= MAX_OPERATOR or not operator.isprintable():
        raise ValueError(f"the operator must be 1 to {MAX_OPERATOR} printable characters")
    if not 0 < len(note) <= MAX_NOTE:
        raise ValueError(f"the note must be 1 to {MAX_NOTE} characters")
    return operator, note


async def resolve(
    conn: asyncpg.Connection | asyncpg.Pool,
    discrepancy_id: int,
    *,
    operator: str,
    note: str,
    credited_payment_id: int | None = None,
) -> Discrepancy:
    """Resolves an open discrepancy with a note, recording who and when.

    `credited_payment_id` names the payment that credited a missing one (the database checks
    that it is that provider's payment of that transaction id). Raises ValueError (bad
    operator or note), DiscrepancyNotFound, AlreadyResolved.
    """
    operator, note = check_resolution(operator, note)
    done = await conn.fetchval(
        """UPDATE discrepancies
              SET resolved_at = now(), resolved_by = $2, resolution_note = $3,
                  credited_payment_id = $4
            WHERE id = $1 AND resolved_at IS NULL
        RETURNING id""",
        discrepancy_id,
        operator,
        note,
        credited_payment_id,
    )
    found = await get_discrepancy(conn, discrepancy_id)
    if done is None:
        raise AlreadyResolved(found)
    return found
