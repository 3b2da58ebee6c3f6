"""Admin routes the billing calls: accounts and payers bound by its own ids, and the event feed.

Their rows are in tolem.admin.routes, which the API serves and documents like every other.
"""

from pydantic import BaseModel

from tolem.admin import models as m
from tolem.admin.call import Answer, Call
from tolem.admin.errors import ApiError
from tolem.core.money import format_amount
from tolem.db import accounts as account_db
from tolem.db import binding
from tolem.db import outbox as outbox_db
from tolem.db.ledger import CurrencyMismatch


async def bind_account(call: Call) -> Answer:
    """The account of a billing client: 201 when this call created it, 200 when it existed."""
    body: m.AccountBind = call.body
    ref = call.path("ref")
    async with call.pool.acquire() as conn:
        try:
            bound = await binding.bind_account(
                conn,
                ref,
                email=body.email,
                name=body.name,
                services=body.services,
                currency=call.settings.currency,
            )
        except CurrencyMismatch as exc:
            raise ApiError(
                409,
                "currency_mismatch",
                f"the database holds {', '.join(exc.held)}, this deployment {exc.wanted} (TOLEM_CURRENCY); "
                "tolem never converts",
            ) from exc
    answer = m.AccountBound(
        account_id=bound.account_id, external_ref=ref, payment_code=bound.payment_code, created=bound.created
    )
    return Answer(answer, 201 if bound.created else 200)


async def bind_payer(call: Call) -> Answer:
    """A billing payer's payment code: created on the first call, the same one on every repeat."""
    body: m.PayerBind = call.body
    ref, payer_ref = call.path("ref"), call.path("payer_ref")
    async with call.pool.acquire() as conn:
        try:
            bound = await binding.bind_payer(conn, ref, payer_ref, body.name)
        except account_db.AccountNotFound as exc:
            raise ApiError(404, "not_found", f"no account is bound to billing id {ref}") from exc
        except binding.PayerRefTaken as exc:
            raise ApiError(409, "payer_ref_taken", str(exc), "payer_ref") from exc
    answer = m.PayerBound(
        account_id=bound.account_id,
        external_ref=ref,
        payer_ref=payer_ref,
        payment_code=bound.payment_code,
        created=bound.created,
    )
    return Answer(answer, 201 if bound.created else 200)


async def events(call: Call) -> BaseModel:
    """The pull feed: credits, reversals and voids in a fixed order, each exactly once."""
    query: m.EventsQuery = call.query
    try:
        found, cursor = await outbox_db.feed(call.pool, after=query.after, limit=query.limit)
    except outbox_db.BadCursor as exc:
        raise ApiError(400, "invalid", str(exc), "after") from exc
    items = [
        m.FeedEvent(
            id=e.id,
            type=e.type,
            payment_id=e.payment_id,
            account_id=e.account_id,
            account_ref=e.account_ref,
            payer_ref=e.payer_ref,
            payment_code=e.payment_code,
            provider=e.provider,
            txn=e.provider_txn,
            amount_minor=e.amount_minor,
            amount=format_amount(e.amount_minor),
            currency=e.currency,
            occurred_at=e.occurred_at,
            created_at=e.created_at,
        )
        for e in found
    ]
    return m.EventPage(items=items, next_after=cursor)
