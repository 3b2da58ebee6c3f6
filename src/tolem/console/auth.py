"""The console's login and logout, and the language switch the login form has too."""

import asyncio
from typing import Final
from urllib.parse import quote

from aiohttp import web

from tolem.console import i18n
from tolem.console.security import (
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
from tolem.console.web import (
    FORM_TOKEN,
    LANGUAGE,
    LOGIN_CHECKS,
    PREFIX,
    PageError,
    moment,
    operator,
    pool,
    redirect,
    remote_addr,
    render,
    safe_next,
    settings,
)
from tolem.db import operators as operator_db
from tolem.db.operators import Action
from tolem.log import LOG_LINE
from tolem.ops import metrics
from tolem.protocols.passwords import PERSON_COST, check_password

_MAX_NAME_TYPED: Final = 64
_ONE_YEAR: Final = 365 * 24 * 3600

# Checked when the name is unknown, so that a wrong name costs as long as a wrong password
# (scrypt at the cost the CLI stores) and timing does not tell which names exist. The login
# is refused whatever this check says.
_UNKNOWN_OPERATOR_HASH: Final = "scrypt${}${}${}${}${}".format(*PERSON_COST, "00" * 16, "00" * 32)


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


def login_redirect(request: web.Request) -> web.Response:
    """To the login form, coming back here afterwards."""
    return redirect(f"{PREFIX}/login?next={quote(str(request.rel_url), safe='')}")
