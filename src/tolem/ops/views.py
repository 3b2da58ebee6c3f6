"""The console's pages: login and logout, search, the account page and an admin's changes."""

import asyncio
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import quote

from aiohttp import web

from tolem.core.model import AccountStatus
from tolem.core.payment_codes import CodeShape, classify, looks_issued, mask, normalize
from tolem.db import accounts as account_db
from tolem.db import console as console_db
from tolem.db import journal as journal_db
from tolem.db import operators as operator_db
from tolem.db import providers as provider_db
from tolem.db.operators import Action
from tolem.log import LOG_LINE
from tolem.ops import i18n, metrics
from tolem.ops.panels import AccountPanel, Page
from tolem.ops.security import (
    CSRF_FIELD,
    LANGUAGE_COOKIE,
    LOGIN_THROTTLE,
    PRE_LOGIN_COOKIE,
    PRE_LOGIN_SECONDS,
    SESSION_COOKIE,
    SESSION_LIFETIME,
    behind_tls,
    clear_cookie,
    csrf_ok,
    new_token,
    set_cookie,
    token_hash,
)
from tolem.ops.web import (
    FORM_TOKEN,
    LANGUAGE,
    LOGIN_CHECKS,
    PREFIX,
    PageError,
    admin_only,
    moment,
    operator,
    pool,
    remote_addr,
    render,
    safe_next,
    settings,
)
from tolem.passwords import PERSON_COST, check_password

# Payments per page of the account page, and journal rows shown per payment and per code.
PAYMENTS_PER_PAGE: Final = 20
CALLS_SHOWN: Final = 20
# Lines of the record shown on the account page.
CHANGES_SHOWN: Final = 50
VIEWS_SHOWN: Final = 10
ACCOUNTS_LISTED: Final = 50
_MAX_QUERY: Final = 254
_MAX_TXN: Final = 64
_MAX_NAME_TYPED: Final = 64
_MAX_PAYER_NAME: Final = 200
_MAX_ID: Final = 2**63 - 1
_ONE_YEAR: Final = 365 * 24 * 3600
ACCOUNT_PANELS_KEY: Final = web.AppKey("ops_account_panels", tuple)

# Checked when the name is unknown, so that a wrong name costs as long as a wrong password
# (scrypt at the cost the CLI stores) and timing does not tell which names exist. The login
# is refused whatever this check says.
_UNKNOWN_OPERATOR_HASH: Final = "scrypt${}${}${}${}${}".format(*PERSON_COST, "00" * 16, "00" * 32)


def redirect(location: str) -> web.Response:
    """303 See Other: after a POST the browser fetches the page anew with GET."""
    return web.Response(status=303, headers={"Location": location})


def _secure(request: web.Request) -> bool:
    return behind_tls(request, settings(request).trusted_proxies)


def _login_page(
    request: web.Request,
    *,
    status: int = 200,
    error: str | None = None,
    name: str = "",
    next_: object = None,
    **values: object,
) -> web.Response:
    """The login form, with a pre-login cookie whose MAC is the form's CSRF token."""
    pre_token = request.cookies.get(PRE_LOGIN_COOKIE)
    if status == 403 or not pre_token or len(pre_token) > 64:
        pre_token = new_token()
    request[FORM_TOKEN] = pre_token
    t = i18n.translator(request[LANGUAGE])
    response = render(
        request,
        "login.html",
        {"error": None if error is None else t(error, **values), "name": name, "next": safe_next(next_)},
        status=status,
    )
    set_cookie(response, PRE_LOGIN_COOKIE, pre_token, secure=_secure(request), max_age=PRE_LOGIN_SECONDS)
    return response


async def login_form(request: web.Request) -> web.StreamResponse:
    """GET /ops/login."""
    return _login_page(request, next_=request.query.get("next"))


async def login(request: web.Request) -> web.StreamResponse:
    """POST /ops/login: the throttle first, then the password, then a new session."""
    form = await request.post()
    line = request[LOG_LINE]
    next_ = form.get("next")
    if not csrf_ok(request.cookies.get(PRE_LOGIN_COOKIE), form.get(CSRF_FIELD)):
        line["refusal"] = "csrf"
        return _login_page(request, status=403, error="error_csrf", next_=next_)
    name, password = form.get("name"), form.get("password")
    if not isinstance(name, str) or not isinstance(password, str) or not name.strip() or not password:
        return _login_page(request, status=400, error="error_login_missing", next_=next_)
    key = name.strip().lower()[:_MAX_NAME_TYPED]
    address = remote_addr(request) or "unknown"
    db = pool(request)
    locked_until = await operator_db.claim_login_attempt(db, key, address, LOGIN_THROTTLE)
    if locked_until is not None:
        metrics.OPS_LOGINS.labels("locked").inc()
        line["login"] = "locked"
        until = moment(locked_until, settings(request).timezone)
        return _login_page(
            request, status=429, error="error_login_locked", name=key, next_=next_, until=until
        )
    found = await operator_db.credentials(db, key)
    stored = _UNKNOWN_OPERATOR_HASH if found is None else found[1]
    async with request.config_dict[LOGIN_CHECKS]:
        good = await asyncio.to_thread(check_password, password, stored)
    if found is None or not good:
        metrics.OPS_LOGINS.labels("refused").inc()
        line["login"] = "refused"
        return _login_page(request, status=401, error="error_login_failed", name=key, next_=next_)
    person = found[0]
    token = new_token()
    async with db.acquire() as conn, conn.transaction():
        await operator_db.login_succeeded(conn, key, address, LOGIN_THROTTLE)
        await operator_db.create_session(
            conn,
            person.id,
            token_hash(token),
            lifetime=SESSION_LIFETIME,
            remote_addr=remote_addr(request),
            user_agent=request.headers.get("User-Agent"),
        )
        await operator_db.record_action(conn, person.id, Action.LOGIN, remote_addr=remote_addr(request))
    metrics.OPS_LOGINS.labels("ok").inc()
    line.update({"login": "ok", "operator": person.name})
    response = redirect(safe_next(next_))
    secure = _secure(request)
    set_cookie(response, SESSION_COOKIE, token, secure=secure, max_age=int(SESSION_LIFETIME.total_seconds()))
    clear_cookie(response, PRE_LOGIN_COOKIE, secure=secure)
    return response


async def logout(request: web.Request) -> web.StreamResponse:
    """POST /ops/logout: the session ends in the database, not only in this browser."""
    who = operator(request)
    async with pool(request).acquire() as conn, conn.transaction():
        await operator_db.end_session(conn, who.session_id)
        await operator_db.record_action(
            conn, who.operator_id, Action.LOGOUT, remote_addr=remote_addr(request)
        )
    response = redirect(f"{PREFIX}/login")
    clear_cookie(response, SESSION_COOKIE, secure=_secure(request))
    return response


async def language(request: web.Request) -> web.StreamResponse:
    """GET /ops/lang/{code}: remembers the language and goes back where the operator was."""
    code = i18n.known(request.match_info["code"])
    if code is None:
        raise PageError(404, "error_not_found")
    response = redirect(safe_next(request.query.get("next")))
    set_cookie(response, LANGUAGE_COOKIE, code, secure=_secure(request), max_age=_ONE_YEAR)
    return response


async def home(request: web.Request) -> web.StreamResponse:
    """GET /ops/: the search box."""
    return render(request, "home.html", {})


@dataclass
class AccountHit:
    """An account the search found, with every reason it matched."""

    account: account_db.AccountView
    reasons: list[str]
    payment_id: int | None = None


async def search(request: web.Request) -> web.StreamResponse:
    """GET /ops/search?q=: one box for email, service, payment code and transaction id.

    One account found opens it at once (at the payment, when a transaction id found it): the
    support call "what is my code?" or "did my payment arrive?" is one search away.
    """
    query = request.query.get("q", "").strip()
    if not query:
        return redirect(f"{PREFIX}/")
    t = i18n.translator(request[LANGUAGE])
    if len(query) > _MAX_QUERY:
        context: dict[str, Any] = {
            "query": query[:_MAX_QUERY],
            "hint": "search_too_long",
            "accounts": [],
            "calls": [],
            "currencies": {},
        }
        return render(request, "search.html", context)
    reasons: dict[int, list[str]] = {}
    at_payment: dict[int, int] = {}
    hint = None
    calls: list[journal_db.JournalRow] = []
    async with pool(request).acquire() as conn:
        currencies = {name: p.currency for name, p in (await provider_db.load_all(conn)).items()}
        code = normalize(query)
        if classify(code) is not CodeShape.MALFORMED:
            for found in await account_db.find_account_ids(conn, code=code):
                reasons.setdefault(found, []).append(t("match_code"))
        elif looks_issued(code):
            hint = "hint_check_digit"
        if "@" in query:
            for found in await account_db.find_account_ids(conn, email=query):
                reasons.setdefault(found, []).append(t("match_email"))
        for found in await account_db.find_account_ids(conn, service=query):
            reasons.setdefault(found, []).append(t("match_service"))
        if len(query) <= _MAX_TXN:
            hits = await console_db.payments_by_txn(conn, query)
            for hit in hits:
                reason = t("match_txn", provider=hit.payment.provider, txn=hit.payment.external_id)
                reasons.setdefault(hit.account_id, []).append(reason)
                at_payment.setdefault(hit.account_id, hit.payment.id)
            if not hits:
                # No payment, but the aggregator may have asked and been refused: show that.
                for name in currencies:
                    where = journal_db.JournalFilter(provider=name, txn=query)
                    calls += await journal_db.search(conn, where, limit=CALLS_SHOWN)
        if len(reasons) == 1 and not calls:
            (only,) = reasons
            anchor = f"#payment-{at_payment[only]}" if only in at_payment else ""
            return redirect(f"{PREFIX}/accounts/{only}{anchor}")
        accounts = [
            AccountHit(await account_db.load_account(conn, i, payments=0), why, at_payment.get(i))
            for i, why in list(reasons.items())[:ACCOUNTS_LISTED]
        ]
    calls.sort(key=lambda row: row.id, reverse=True)
    context = {
        "query": query,
        "hint": hint,
        "accounts": accounts,
        "calls": calls,
        "currencies": currencies,
    }
    return render(request, "search.html", context)


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


def page_view(page: Page) -> Any:
    """The handler of a page listed in tolem.ops.panels.PAGES."""

    async def view(request: web.Request) -> web.StreamResponse:
        if page.role is operator_db.Role.ADMIN and operator(request).role is not operator_db.Role.ADMIN:
            raise PageError(403, "error_admin_only")
        async with pool(request).acquire() as conn:
            data = await page.load(conn, settings(request))
        return render(request, page.template, data)

    return view


def login_redirect(request: web.Request) -> web.Response:
    """To the login form, coming back here afterwards."""
    return redirect(f"{PREFIX}/login?next={quote(str(request.rel_url), safe='')}")
