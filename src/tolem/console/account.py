"""The account page and an admin's changes to the account: block, unblock, a new payer."""

from dataclasses import dataclass
from typing import Any, Final

from aiohttp import web

from tolem.console.panels import AccountPanel
from tolem.console.web import (
    CALLS_SHOWN,
    PREFIX,
    PageError,
    admin_only,
    operator,
    pool,
    redirect,
    remote_addr,
    render,
    settings,
)
from tolem.core.model import AccountStatus
from tolem.core.payment_codes import mask
from tolem.db import accounts as account_db
from tolem.db import console as console_db
from tolem.db import journal as journal_db
from tolem.db import operators as operator_db
from tolem.db import providers as provider_db
from tolem.db.operators import Action
from tolem.ops import metrics

# Payments per page of the account page.
PAYMENTS_PER_PAGE: Final = 20
# Lines of the record shown on the account page.
CHANGES_SHOWN: Final = 50
VIEWS_SHOWN: Final = 10
_MAX_PAYER_NAME: Final = 200
_MAX_ID: Final = 2**63 - 1
ACCOUNT_PANELS_KEY: Final = web.AppKey("ops_account_panels", tuple)


@dataclass(frozen=True, slots=True)
class PaymentItem:
    """A payment on the account page with the gateway calls that carried its transaction id."""

    payment: account_db.PaymentView
    calls: list[journal_db.JournalRow]


@dataclass(frozen=True, slots=True)
class PanelData:
    """A contributed panel, loaded for one account."""

    name: str
    title: str
    template: str
    data: Any


def _account_id(request: web.Request) -> int:
    account_id = int(request.match_info["account_id"])
    if account_id > _MAX_ID:
        raise PageError(404, "error_account_not_found", account_id=account_id)
    return account_id


def _before(request: web.Request) -> int | None:
    given = request.query.get("before", "")
    return int(given) if given.isdecimal() and int(given) <= _MAX_ID else None


async def account(request: web.Request) -> web.StreamResponse:
    """GET /ops/accounts/{id}: everything support reads back on the phone; the look is recorded."""
    account_id = _account_id(request)
    who = operator(request)
    panels: tuple[AccountPanel, ...] = request.config_dict[ACCOUNT_PANELS_KEY]
    async with pool(request).acquire() as conn:
        try:
            view = await account_db.load_account(conn, account_id, payments=0)
        except account_db.AccountNotFound as exc:
            raise PageError(404, "error_account_not_found", account_id=account_id) from exc
        page = await account_db.account_payments(
            conn, account_id, limit=PAYMENTS_PER_PAGE + 1, before_id=_before(request)
        )
        payments = []
        for payment in page[:PAYMENTS_PER_PAGE]:
            where = journal_db.JournalFilter(provider=payment.provider, txn=payment.external_id)
            payments.append(PaymentItem(payment, await journal_db.search(conn, where, limit=CALLS_SHOWN)))
        older = page[PAYMENTS_PER_PAGE - 1].id if len(page) > PAYMENTS_PER_PAGE else None
        currencies = {name: p.currency for name, p in (await provider_db.load_all(conn)).items()}
        calls: list[journal_db.JournalRow] = []
        for payer in view.payers:
            where = journal_db.JournalFilter(code=payer.payment_code)
            calls += await journal_db.search(conn, where, limit=CALLS_SHOWN)
        calls = sorted(calls, key=lambda row: row.id, reverse=True)[:CALLS_SHOWN]
        changes = await operator_db.account_actions(conn, account_id, limit=CHANGES_SHOWN, views=False)
        views = await operator_db.account_actions(conn, account_id, limit=VIEWS_SHOWN, views=True)
        loaded = [
            PanelData(p.name, p.title, p.template, await p.load(conn, view, settings(request)))
            for p in panels
        ]
        await operator_db.record_action(
            conn, who.operator_id, Action.VIEW, account_id=account_id, remote_addr=remote_addr(request)
        )
    return render(
        request,
        "account.html",
        {
            "query": "",
            "account": view,
            "payments": payments,
            "older": older,
            "calls": calls,
            "changes": changes,
            "views": views,
            "panels": loaded,
            "currencies": currencies,
        },
    )


async def _set_status(request: web.Request, status: AccountStatus, action: Action) -> web.StreamResponse:
    account_id = _account_id(request)
    who = operator(request)
    async with pool(request).acquire() as conn, conn.transaction():
        before = await console_db.lock_account_status(conn, account_id)
        if before is None:
            raise PageError(404, "error_account_not_found", account_id=account_id)
        await account_db.set_status(conn, account_id, status)
        await operator_db.record_action(
            conn,
            who.operator_id,
            action,
            account_id=account_id,
            remote_addr=remote_addr(request),
            details={"before": before},
        )
    metrics.OPS_ACTIONS.labels(str(action)).inc()
    return redirect(f"{PREFIX}/accounts/{account_id}#actions")


@admin_only
async def block(request: web.Request) -> web.StreamResponse:
    """POST /ops/accounts/{id}/block: its codes refuse new payments from now on."""
    return await _set_status(request, AccountStatus.BLOCKED, Action.BLOCK)


@admin_only
async def unblock(request: web.Request) -> web.StreamResponse:
    """POST /ops/accounts/{id}/unblock."""
    return await _set_status(request, AccountStatus.ACTIVE, Action.UNBLOCK)


@admin_only
async def add_payer(request: web.Request) -> web.StreamResponse:
    """POST /ops/accounts/{id}/payers: a new payer, so a new payment code, for the account."""
    account_id = _account_id(request)
    who = operator(request)
    form = await request.post()
    given = form.get("name")
    name = given.strip() if isinstance(given, str) else ""
    if len(name) > _MAX_PAYER_NAME or not name.isprintable():
        raise PageError(400, "error_payer_name")
    async with pool(request).acquire() as conn, conn.transaction():
        try:
            code = await account_db.add_payer(conn, account_id, name or None)
        except account_db.AccountNotFound as exc:
            raise PageError(404, "error_account_not_found", account_id=account_id) from exc
        details = {"code": mask(code)} | ({"name": name} if name else {})
        await operator_db.record_action(
            conn,
            who.operator_id,
            Action.ADD_PAYER,
            account_id=account_id,
            remote_addr=remote_addr(request),
            details=details,
        )
    metrics.OPS_ACTIONS.labels(str(Action.ADD_PAYER)).inc()
    return redirect(f"{PREFIX}/accounts/{account_id}#payers")
