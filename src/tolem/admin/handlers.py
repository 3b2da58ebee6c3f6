"""Admin handlers for support: account lookup and care, providers, the journal."""

import asyncpg
from pydantic import BaseModel

from tolem.admin import models as m
from tolem.admin.call import Call
from tolem.admin.errors import ApiError
from tolem.core.model import AccountStatus, shown_settings
from tolem.core.money import format_amount
from tolem.core.times import in_zone
from tolem.db import accounts as account_db
from tolem.db import journal as journal_db
from tolem.db import providers as provider_db
from tolem.db.ledger import CurrencyMismatch

# --- conversions ------------------------------------------------------------------------------


def _payment(view: account_db.PaymentView) -> m.Payment:
    return m.Payment(
        id=view.id,
        provider=view.provider,
        txn=view.external_id,
        payment_code=view.payment_code,
        amount_minor=view.amount_minor,
        amount=format_amount(view.amount_minor),
        currency=view.currency.strip(),
        state=view.state,
        created_at=view.created_at,
    )


def _account(view: account_db.AccountView) -> m.Account:
    return m.Account(
        id=view.id,
        email=view.email,
        name=view.name,
        status=view.status,
        balance_minor=view.balance_minor,
        balance=format_amount(view.balance_minor),
        currency=view.currency.strip(),
        created_at=view.created_at,
        payers=[
            m.Payer(
                id=p.id,
                name=p.name,
                payment_code=p.payment_code,
                origin=p.origin,
                created_at=p.created_at,
                external_ref=p.external_ref,
            )
            for p in view.payers
        ],
        services=view.services,
        latest_payments=[_payment(p) for p in view.payments],
        external_ref=view.external_ref,
    )


def _account_id(call: Call) -> int:
    assert call.account_id is not None
    return call.account_id


async def _load_account(conn: asyncpg.Connection, account_id: int) -> account_db.AccountView:
    try:
        return await account_db.load_account(conn, account_id)
    except account_db.AccountNotFound as exc:
        raise ApiError(404, "not_found", f"no account {account_id}") from exc


# --- handlers ---------------------------------------------------------------------------------


async def lookup(call: Call) -> BaseModel:
    """The support lookup."""
    query: m.LookupQuery = call.query
    async with call.pool.acquire() as conn:
        ids = await account_db.find_account_ids(
            conn, code=query.code, email=query.email, service=query.service, external_ref=query.ref
        )
        views = [await account_db.load_account(conn, i) for i in ids]
    if not views:
        raise ApiError(404, "not_found", "no matching account")
    return m.AccountList(accounts=[_account(v) for v in views])


async def create_account(call: Call) -> BaseModel:
    """Creates an account and its first payer."""
    body: m.AccountCreate = call.body
    async with call.pool.acquire() as conn:
        try:
            account_id, _ = await account_db.create_account(
                conn,
                email=body.email,
                name=body.name,
                currency=call.settings.currency,
                services=body.services,
                payment_code=body.payment_code,
            )
        except asyncpg.UniqueViolationError as exc:
            raise ApiError(409, "code_taken", "that payment code belongs to a payer", "payment_code") from exc
        except CurrencyMismatch as exc:
            raise ApiError(
                409,
                "currency_mismatch",
                f"the database holds {', '.join(exc.held)}, this deployment {exc.wanted} (TOLEM_CURRENCY); "
                "tolem never converts",
            ) from exc
        return _account(await _load_account(conn, account_id))


async def show_account(call: Call) -> BaseModel:
    """One account."""
    async with call.pool.acquire() as conn:
        return _account(await _load_account(conn, _account_id(call)))


async def add_payer(call: Call) -> BaseModel:
    """A new payer, so a new payment code, for an account."""
    body: m.PayerCreate = call.body
    account_id = _account_id(call)
    async with call.pool.acquire() as conn:
        try:
            code = await account_db.add_payer(conn, account_id, body.name)
        except account_db.AccountNotFound as exc:
            raise ApiError(404, "not_found", f"no account {account_id}") from exc
    return m.PayerCreated(account_id=account_id, payment_code=code)


async def _set_status(call: Call, status: AccountStatus) -> BaseModel:
    account_id = _account_id(call)
    async with call.pool.acquire() as conn:
        try:
            await account_db.set_status(conn, account_id, status)
        except account_db.AccountNotFound as exc:
            raise ApiError(404, "not_found", f"no account {account_id}") from exc
    return m.AccountStatus(account_id=account_id, status=status)


async def block(call: Call) -> BaseModel:
    """Blocks an account (idempotent)."""
    return await _set_status(call, AccountStatus.BLOCKED)


async def unblock(call: Call) -> BaseModel:
    """Unblocks an account (idempotent)."""
    return await _set_status(call, AccountStatus.ACTIVE)


async def account_payments(call: Call) -> BaseModel:
    """An account's payments, newest first, paged by id."""
    query: m.PageQuery = call.query
    account_id = _account_id(call)
    async with call.pool.acquire() as conn:
        if not await account_db.account_exists(conn, account_id):
            raise ApiError(404, "not_found", f"no account {account_id}")
        views = await account_db.account_payments(
            conn, account_id, limit=query.limit + 1, before_id=query.before
        )
    page = views[: query.limit]
    more = len(views) > query.limit
    return m.PaymentPage(items=[_payment(v) for v in page], next_before=page[-1].id if more else None)


async def providers(call: Call) -> BaseModel:
    """Every provider, secrets only as present or absent."""
    async with call.pool.acquire() as conn:
        found = await provider_db.load_all(conn)
    return m.ProviderList(providers=[m.Provider(**shown_settings(p)) for p in found.values()])


async def journal(call: Call) -> BaseModel:
    """Journal search, newest first."""
    query: m.JournalQuery = call.query
    zone = call.settings.timezone
    where = journal_db.JournalFilter(
        provider=query.provider,
        txn=query.txn,
        code=query.code,
        since=None if query.since is None else in_zone(query.since, zone),
        until=None if query.until is None else in_zone(query.until, zone),
        before_id=query.before,
    )
    rows = await journal_db.search(call.pool, where, limit=query.limit + 1)
    page = rows[: query.limit]
    more = len(rows) > query.limit
    return m.JournalPage(
        items=[m.JournalEntry.model_validate(r, from_attributes=True) for r in page],
        next_before=page[-1].id if more else None,
    )
