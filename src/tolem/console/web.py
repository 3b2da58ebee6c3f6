"""What the console's handlers share: its keys, the page renderer, roles, and its errors."""

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final
from urllib.parse import quote
from zoneinfo import ZoneInfo

import aiohttp_jinja2
import asyncpg
from aiohttp import web

from tolem.console import i18n
from tolem.console.security import CSRF_FIELD, csrf_token
from tolem.core.money import format_amount
from tolem.db.operators import Role, SessionOperator
from tolem.protocols.auth import client_ip
from tolem.settings import Settings

PREFIX: Final = "/ops"
OPS_POOL: Final[web.AppKey[Callable[[], asyncpg.Pool]]] = web.AppKey("ops_pool")
OPS_SETTINGS: Final = web.AppKey("ops_settings", Settings)
# scrypt for people costs 32 MiB and half a second: two at a time per worker bound both.
LOGIN_CHECKS: Final = web.AppKey("ops_login_checks", asyncio.Semaphore)

OPERATOR: Final = web.RequestKey("ops_operator", SessionOperator)
# The token of the cookie the request came with (session, or pre-login on the login form).
FORM_TOKEN: Final = web.RequestKey("ops_form_token", str)
LANGUAGE: Final = web.RequestKey("ops_language", str)

# Journal rows shown per payment and per payment code, and for a transaction id searched.
CALLS_SHOWN: Final = 20

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
# Between groups of thousands: narrow, and never a line break inside an amount.
_THIN_SPACE: Final = "\u202f"


class PageError(Exception):
    """An error page: HTTP status and the message key of what to tell the operator."""

    def __init__(self, status: int, message: str, **values: object) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.values = values


def pool(request: web.Request) -> asyncpg.Pool:
    """The service's database pool."""
    return request.config_dict[OPS_POOL]()


def settings(request: web.Request) -> Settings:
    """The deployment's settings."""
    return request.config_dict[OPS_SETTINGS]


def operator(request: web.Request) -> SessionOperator:
    """The logged-in operator (the guard admits no one else to these handlers)."""
    return request[OPERATOR]


def remote_addr(request: web.Request) -> str | None:
    """The caller's address as text, X-Forwarded-For only from trusted proxies."""
    address = client_ip(request, settings(request).trusted_proxies)
    return None if address is None else str(address)


def redirect(location: str) -> web.Response:
    """303 See Other: after a POST the browser fetches the page anew with GET."""
    return web.Response(status=303, headers={"Location": location})


def admin_only(handler: Handler) -> Handler:
    """Refuses the handler to support operators: looking is for all, changing for admins."""

    async def guarded(request: web.Request) -> web.StreamResponse:
        if operator(request).role is not Role.ADMIN:
            raise PageError(403, "error_admin_only")
        return await handler(request)

    guarded.__doc__ = handler.__doc__
    return guarded


def money(minor: int, currency: str) -> str:
    """`12 500.00 KGS`: exact decimals, thousands apart by a thin space, always the currency."""
    text = format_amount(minor)
    sign = "-" if text.startswith("-") else ""
    whole, _, fraction = text.lstrip("-").partition(".")
    groups: list[str] = []
    while whole:
        groups.insert(0, whole[-3:])
        whole = whole[:-3]
    return f"{sign}{_THIN_SPACE.join(groups)}.{fraction} {currency.strip()}"


def moment(value: datetime | None, zone: str) -> str:
    """`2026-11-25 14:30:00 +06:00`: in the deployment's zone, with its offset."""
    if value is None:
        return "—"
    local = value.astimezone(ZoneInfo(zone))
    offset = local.strftime("%z")
    return f"{local:%Y-%m-%d %H:%M:%S} {offset[:3]}:{offset[3:5]}"


def path_with_query(request: web.Request) -> str:
    """Where the browser is, as a `next` for after logging in or switching language."""
    return str(request.rel_url)


def safe_next(value: object, default: str = f"{PREFIX}/") -> str:
    """A redirect target only within the console: never another site."""
    if (
        isinstance(value, str)
        and value.startswith(f"{PREFIX}/")
        and value.isprintable()
        and "\\" not in value
    ):
        return value
    return default


@dataclass(frozen=True, slots=True)
class NavItem:
    """A link in the console's navigation."""

    path: str
    title: str


NAVIGATION: Final = web.AppKey("ops_navigation", tuple)


def render(
    request: web.Request, template: str, context: Mapping[str, Any], *, status: int = 200
) -> web.Response:
    """A page in the operator's language, with what every page needs (who, forms, navigation)."""
    language = request.get(LANGUAGE, i18n.DEFAULT)
    form_token = request.get(FORM_TOKEN)
    here = path_with_query(request)
    common: dict[str, Any] = {
        "t": i18n.translator(language),
        "language": language,
        "languages": i18n.LANGUAGES,
        "operator": request.get(OPERATOR),
        "csrf_field": CSRF_FIELD,
        "csrf": None if form_token is None else csrf_token(form_token),
        "navigation": request.config_dict[NAVIGATION],
        "zone": settings(request).timezone,
        "here": here,
        "here_quoted": quote(here, safe=""),
        "is_admin": (op := request.get(OPERATOR)) is not None and op.role is Role.ADMIN,
    }
    response = aiohttp_jinja2.render_template(template, request, {**common, **context}, status=status)
    response.headers["Content-Language"] = language
    return response
