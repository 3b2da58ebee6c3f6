"""Admin routes for the accountant: the payments list, daily totals, open discrepancies.

Their rows are in tolem.admin.routes, which the API serves and documents like every other.
"""

from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from tolem.admin import models as m
from tolem.admin.call import Call
from tolem.admin.errors import ApiError
from tolem.core.money import format_amount
from tolem.core.times import in_zone
from tolem.db import providers as provider_db
from tolem.db import reconcile as reconcile_db
from tolem.db import reports as reports_db

State = Literal["reserved", "credited", "voided", "reversed"]


class _Query(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class PaymentListQuery(_Query):
    """Every filter optional; newest first. To page on, pass the previous page's next_before.

    since/until bound the payment's business time (the aggregator's own stamp, ours when it
    sent none); without an offset they are read in the provider's zone when `provider` is
    given, else in TOLEM_TIMEZONE.
    """

    provider: m.ProviderName | None = None
    txn: m.Txn | None = None
    code: m.PaymentCode | None = None
    state: State | None = None
    since: datetime | None = None
    until: datetime | None = Field(default=None, description="Exclusive.")
    limit: int = Field(default=50, ge=1, le=500)
    before: int | None = Field(default=None, ge=1)


class ListedPayment(m.Payment):
    """A payment with its business time and the times of its credit and cancel."""

    provider_time: datetime | None = Field(description="The aggregator's own time of the payment.")
    credited_at: datetime | None
    cancelled_at: datetime | None


class ListedPaymentPage(BaseModel):
    """A page of payments, newest first; next_before is null on the last page."""

    model_config = ConfigDict(frozen=True)

    items: list[ListedPayment]
    next_before: int | None


class DailyQuery(_Query):
    """Days from `from` to `to` (inclusive, at most 366); each provider's day in its zone."""

    provider: m.ProviderName | None = None
    first: date = Field(alias="from")
    last: date | None = Field(default=None, alias="to", description="Default: the same as `from`.")

    @model_validator(mode="after")
    def _forwards(self) -> "DailyQuery":
        if self.last is not None and self.last < self.first:
            raise ValueError("`to` is before `from`")
        return self


class DayTotals(BaseModel):
    """One provider's day: what the ledger credited and reversed, and what was voided."""

    model_config = ConfigDict(frozen=True)

    provider: str
    day: date
    zone: str
    currency: str
    credited_count: int
    credited_minor: int
    credited_amount: str
    reversed_count: int
    reversed_minor: int
    reversed_amount: str
    voided_count: int
    voided_minor: int
    voided_amount: str
    net_minor: int
    net_amount: str


class DailyReport(BaseModel):
    """Daily totals computed from the ledger's transfers (voids from the payments they ended)."""

    model_config = ConfigDict(frozen=True)

    days: list[DayTotals]


class DiscrepancyQuery(_Query):
    """Open discrepancies unless `resolved` is true; newest first, paged by next_before."""

    provider: m.ProviderName | None = None
    resolved: bool = Field(default=False, description="Include resolved ones.")
    limit: int = Field(default=100, ge=1, le=500)
    before: int | None = Field(default=None, ge=1)


Kind = Literal[
    "missing_ours", "missing_theirs", "amount_mismatch", "code_mismatch", "state_mismatch", "day_mismatch"
]


class DiscrepancyItem(BaseModel):
    """A difference between a registry and our payments, and its resolution if any."""

    model_config = ConfigDict(frozen=True)

    id: int
    provider: str
    business_day: date
    kind: Kind
    txn: str
    currency: str
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
    open: bool
    resolved_at: datetime | None
    resolved_by: str | None
    resolution_note: str | None
    credited_payment_id: int | None


class DiscrepancyPage(BaseModel):
    """Discrepancies with open counts per provider; next_before is null on the last page."""

    model_config = ConfigDict(frozen=True)

    items: list[DiscrepancyItem]
    open_per_provider: dict[str, int]
    next_before: int | None


async def _known_provider(call: Call, name: str | None) -> str | None:
    """The provider's own zone (None: the deployment's); 404 when there is no such provider."""
    if name is None:
        return None
    async with call.pool.acquire() as conn:
        try:
            zone = await provider_db.timezone_of(conn, name)
        except provider_db.ProviderNotFound as exc:
            raise ApiError(404, "not_found", f"no provider named {name!r}", "provider") from exc
    return zone or call.settings.timezone


async def payments(call: Call) -> BaseModel:
    """Payments by provider, transaction id, code, state and business time."""
    query: PaymentListQuery = call.query
    zone = await _known_provider(call, query.provider) or call.settings.timezone
    where = reports_db.PaymentFilter(
        provider=query.provider,
        txn=query.txn,
        code=query.code,
        state=query.state,
        since=None if query.since is None else in_zone(query.since, zone),
        until=None if query.until is None else in_zone(query.until, zone),
        before_id=query.before,
    )
    rows = await reports_db.list_payments(call.pool, where, limit=query.limit + 1)
    page = rows[: query.limit]
    return ListedPaymentPage(
        items=[
            ListedPayment(
                id=r.id,
                provider=r.provider,
                txn=r.external_id,
                payment_code=r.payment_code,
                amount_minor=r.amount_minor,
                amount=format_amount(r.amount_minor),
                currency=r.currency,
                state=r.state,
                created_at=r.created_at,
                provider_time=r.provider_time,
                credited_at=r.credited_at,
                cancelled_at=r.cancelled_at,
            )
            for r in page
        ],
        next_before=page[-1].id if len(rows) > query.limit else None,
    )


async def daily(call: Call) -> BaseModel:
    """Daily totals per provider from the ledger."""
    query: DailyQuery = call.query
    await _known_provider(call, query.provider)
    try:
        rows = await reports_db.daily_totals(
            call.pool,
            provider=query.provider,
            first=query.first,
            last=query.last or query.first,
            default_zone=call.settings.timezone,
        )
    except ValueError as exc:
        raise ApiError(400, "invalid", str(exc), "to") from exc
    return DailyReport(
        days=[
            DayTotals(
                provider=r.provider,
                day=r.day,
                zone=r.zone,
                currency=r.currency,
                credited_count=r.credited_count,
                credited_minor=r.credited_minor,
                credited_amount=format_amount(r.credited_minor),
                reversed_count=r.reversed_count,
                reversed_minor=r.reversed_minor,
                reversed_amount=format_amount(r.reversed_minor),
                voided_count=r.voided_count,
                voided_minor=r.voided_minor,
                voided_amount=format_amount(r.voided_minor),
                net_minor=r.net_minor,
                net_amount=format_amount(r.net_minor),
            )
            for r in rows
        ]
    )


async def discrepancies(call: Call) -> BaseModel:
    """Discrepancies to work off, with the open count of every provider."""
    query: DiscrepancyQuery = call.query
    await _known_provider(call, query.provider)
    found = await reconcile_db.list_discrepancies(
        call.pool,
        provider=query.provider,
        include_resolved=query.resolved,
        limit=query.limit + 1,
        before_id=query.before,
    )
    counts = await reconcile_db.open_counts(call.pool)
    page = found[: query.limit]
    return DiscrepancyPage(
        items=[
            DiscrepancyItem.model_validate({**{f: getattr(d, f) for f in d.__slots__}, "open": d.open})
            for d in page
        ],
        open_per_provider=counts,
        next_before=page[-1].id if len(found) > query.limit else None,
    )
