"""The /ops/ sub-application: routes, the guard every request passes, and the templates."""

import asyncio
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Final

import aiohttp_jinja2
import asyncpg
import jinja2
import structlog
from aiohttp import web

from tolem.console import account, auth, i18n, search
from tolem.console.pages import page_view
from tolem.console.panels import ACCOUNT_PANELS, PAGES, AccountPanel, Page
from tolem.console.security import (
    CSRF_FIELD,
    LANGUAGE_COOKIE,
    SESSION_COOKIE,
    SESSION_IDLE,
    csrf_ok,
    token_hash,
)
from tolem.console.web import (
    FORM_TOKEN,
    LANGUAGE,
    LOGIN_CHECKS,
    NAVIGATION,
    OPERATOR,
    OPS_POOL,
    OPS_SETTINGS,
    PREFIX,
    Handler,
    NavItem,
    PageError,
    moment,
    money,
    pool,
    redirect,
    render,
)
from tolem.db import operators as operator_db
from tolem.db.pool import NO_WRITABLE_HOST
from tolem.log import LOG_LINE
from tolem.ops import metrics
from tolem.routing import methods_elsewhere
from tolem.settings import Settings

_HERE: Final = Path(__file__).resolve().parent
_DB_ERRORS: Final = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError, NO_WRITABLE_HOST)
# Reachable without a session: the login form, the language switch and the style sheet.
_PUBLIC: Final = frozenset({"login_form", "login", "language", "static"})
# Two verifications at once: each takes 32 MiB and half a core-second (tolem.protocols.passwords).
_LOGIN_CHECKS_AT_ONCE: Final = 2
# Sessions' tokens are 43 characters; anything much longer is not one of ours.
_MAX_COOKIE: Final = 128

# Only our own style sheet and script; no inline code, no frames, forms only to ourselves.
_CSP: Final = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
_HEADERS: Final = {
    "Content-Security-Policy": _CSP,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}

_log = structlog.get_logger("tolem.console")


def _protect(response: web.StreamResponse, route: str | None) -> None:
    response.headers.update(_HEADERS)
    if route != "static":
        # Pages carry customers' data: no copy in the browser's cache or a proxy's.
        response.headers["Cache-Control"] = "no-store"


def _error_page(request: web.Request, error: PageError) -> web.Response:
    t = i18n.translator(request[LANGUAGE])
    return render(
        request,
        "error.html",
        {
            "status": error.status,
            "message": t(error.message, **error.values),
            "login_link": error.status == 401,
        },
        status=error.status,
    )


async def _admit(request: web.Request, handler: Handler, route: str | None) -> web.StreamResponse:
    """Public routes pass; every other one needs a live session, and a POST its CSRF token."""
    if request.path == PREFIX:
        # The cookies' path is /ops/, so a browser sends none of them to /ops itself.
        return redirect(f"{PREFIX}/")
    if route in _PUBLIC:
        return await handler(request)
    token = request.cookies.get(SESSION_COOKIE)
    found = None
    if token and len(token) <= _MAX_COOKIE:
        found = await operator_db.session_operator(pool(request), token_hash(token), idle=SESSION_IDLE)
    if found is None or token is None:
        if request.method in ("GET", "HEAD"):
            return auth.login_redirect(request)
        raise PageError(401, "error_session")
    request[OPERATOR] = found
    request[FORM_TOKEN] = token
    request[LOG_LINE]["operator"] = found.name
    if request.method == "POST":
        form = await request.post()
        if not csrf_ok(token, form.get(CSRF_FIELD)):
            request[LOG_LINE]["refusal"] = "csrf"
            raise PageError(403, "error_csrf")
    return await handler(request)


@web.middleware
async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Language, login, CSRF, error pages and protective headers for every console request."""
    route = request.match_info.route.name
    request[LOG_LINE]["ops"] = route or "unknown"
    request[LANGUAGE] = i18n.known(request.cookies.get(LANGUAGE_COOKIE)) or i18n.negotiate(
        request.headers.get("Accept-Language", "")
    )
    label = route or "unknown"
    try:
        response = await _admit(request, handler, route)
    except PageError as exc:
        response = _error_page(request, exc)
    except _DB_ERRORS as exc:
        request[LOG_LINE]["error"] = type(exc).__name__
        _log.warning("ops_database_unavailable", error=type(exc).__name__)
        response = _error_page(request, PageError(503, "error_db"))
    except web.HTTPException as exc:
        _protect(exc, route)
        metrics.OPS_REQUESTS.labels(label, str(exc.status)).inc()
        raise
    _protect(response, route)
    metrics.OPS_REQUESTS.labels(label, str(response.status)).inc()
    return response


async def _not_found(request: web.Request) -> web.StreamResponse:
    allowed = await methods_elsewhere(request, "not_found")
    if allowed:
        raise PageError(405, "error_method")
    raise PageError(404, "error_not_found")


def build_ops_app(
    settings: Settings,
    pool_getter: Callable[[], asyncpg.Pool],
    *,
    panels: tuple[AccountPanel, ...] = ACCOUNT_PANELS,
    pages: tuple[Page, ...] = PAGES,
) -> web.Application:
    """The console, mounted at /ops by tolem.app; `panels` and `pages` are its extension points
    (tolem.console.panels)."""
    # The canonical line comes from the root application's middleware (tolem.app).
    ops = web.Application(middlewares=[guard])
    ops[OPS_POOL] = pool_getter
    ops[OPS_SETTINGS] = settings
    ops[LOGIN_CHECKS] = asyncio.Semaphore(_LOGIN_CHECKS_AT_ONCE)
    ops[account.ACCOUNT_PANELS_KEY] = panels
    ops[NAVIGATION] = tuple(NavItem(f"{PREFIX}/{p.name}", p.title) for p in pages)
    zone = settings.timezone

    def in_zone(value: datetime | None, other_zone: str | None = None) -> str:
        return moment(value, other_zone or zone)

    filters: dict[str, Callable[..., str]] = {"money": money, "moment": in_zone}
    aiohttp_jinja2.setup(
        ops,
        loader=jinja2.FileSystemLoader(_HERE / "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        filters=filters,
    )
    ops.router.add_get("/", search.home, name="home")
    ops.router.add_get("/login", auth.login_form, name="login_form")
    ops.router.add_post("/login", auth.login, name="login")
    ops.router.add_post("/logout", auth.logout, name="logout")
    ops.router.add_get("/lang/{code}", auth.language, name="language")
    ops.router.add_get("/search", search.search, name="search")
    ops.router.add_get(r"/accounts/{account_id:\d{1,19}}", account.account, name="account")
    ops.router.add_post(r"/accounts/{account_id:\d{1,19}}/block", account.block, name="block")
    ops.router.add_post(r"/accounts/{account_id:\d{1,19}}/unblock", account.unblock, name="unblock")
    ops.router.add_post(r"/accounts/{account_id:\d{1,19}}/payers", account.add_payer, name="add_payer")
    for page in pages:
        ops.router.add_get(f"/{page.name}", page_view(page), name=f"page_{page.name}")
    ops.router.add_static("/static/", _HERE / "static", name="static")
    ops.router.add_route("*", "/{tail:.*}", _not_found, name="not_found")
    return ops
