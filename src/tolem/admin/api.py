"""The admin API: support lookups and account care over JSON, behind a bearer token.

Every route is one row of ROUTES (or of another module's ROUTES that `routes()` adds); the
aiohttp router and the OpenAPI document are both built from those tables, so the document cannot
drift from what is served.
"""

import hmac
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final
from zoneinfo import ZoneInfo

import asyncpg
from aiohttp import web
from pydantic import BaseModel, ValidationError
from pydantic.json_schema import models_json_schema

from tolem.admin import models as m
from tolem.core.model import AccountStatus
from tolem.core.money import format_amount
from tolem.db import accounts as account_db
from tolem.db import journal as journal_db
from tolem.db import providers as provider_db
from tolem.db.ledger import CurrencyMismatch
from tolem.db.pool import NO_WRITABLE_HOST
from tolem.log import LOG_LINE
from tolem.ops import metrics
from tolem.routing import methods_elsewhere
from tolem.settings import Settings

PREFIX: Final = "/admin"
POOL_GETTER: Final[web.AppKey[Callable[[], asyncpg.Pool]]] = web.AppKey("admin_pool")
ADMIN_SETTINGS: Final = web.AppKey("admin_settings", Settings)
_MAX_ID: Final = 2**63 - 1
_MAX_REF: Final = 64
_PATH_REGEX_RE: Final = re.compile(r"\{(\w+):[^}]*\}")
_PATH_PARAM_RE: Final = re.compile(r"\{(\w+)\}")
_DB_ERRORS: Final = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError, NO_WRITABLE_HOST)


class ApiError(Exception):
    """An error answer: HTTP status, stable code, message, and the field at fault if any."""

    def __init__(self, status: int, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.field = field


def _error_response(error: ApiError) -> web.Response:
    body = m.Error(error=m.ErrorDetail(code=error.code, message=error.message, field=error.field))
    response = web.json_response(body.model_dump(mode="json", exclude_none=True), status=error.status)
    if error.status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="tolem-admin"'
    return response


def _bad_input(exc: ValidationError) -> ApiError:
    first = exc.errors()[0]
    field = ".".join(str(part) for part in first["loc"]) or None
    message = first["msg"].removeprefix("Value error, ")
    return ApiError(400, "invalid", message, field)


@dataclass(frozen=True, slots=True)
class Call:
    """One admin request, parsed: the models its route declares, and the path's account id."""

    request: web.Request
    query: Any
    body: Any
    account_id: int | None

    def path(self, name: str) -> str:
        """A text parameter of the path (a billing id), checked like any other input."""
        value = self.request.match_info[name]
        if not 0 < len(value) <= _MAX_REF or not value.isprintable():
            raise ApiError(400, "invalid", f"{name} must be 1 to {_MAX_REF} printable characters", name)
        return value

    @property
    def pool(self) -> asyncpg.Pool:
        """The service's database pool."""
        return self.request.config_dict[POOL_GETTER]()

    @property
    def settings(self) -> Settings:
        """The deployment's settings."""
        return self.request.config_dict[ADMIN_SETTINGS]


@dataclass(frozen=True, slots=True)
class Answer:
    """A handler's answer with a status other than its route's (201 for an upsert that created)."""

    body: BaseModel
    status: int


Handler = Callable[[Call], Awaitable[BaseModel | Answer]]


@dataclass(frozen=True, slots=True)
class Route:
    """One admin endpoint: everything the router and the OpenAPI document need."""

    method: str
    path: str
    name: str
    summary: str
    handler: Handler
    response: type[BaseModel]
    status: int = 200
    query: type[BaseModel] | None = None
    body: type[BaseModel] | None = None
    errors: tuple[int, ...] = ()
    also: tuple[int, ...] = ()  # other success statuses the handler answers with (Answer)

    @property
    def openapi_path(self) -> str:
        """The path as OpenAPI writes it: `{account_id}` without the router's pattern."""
        return PREFIX + _PATH_REGEX_RE.sub(r"{\1}", self.path)


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


def _provider(provider: Any) -> m.Provider:
    return m.Provider(
        name=provider.name,
        protocol=str(provider.protocol),
        enabled=provider.enabled,
        gateway=f"/gw/{provider.name}",
        allow_ips=[str(n) for n in provider.allow_ips],
        login=provider.login,
        has_password=provider.password_hash is not None,
        has_secret=provider.secret is not None,
        service_id=provider.service_id,
        min_amount=None if provider.min_amount_minor is None else format_amount(provider.min_amount_minor),
        max_amount=None if provider.max_amount_minor is None else format_amount(provider.max_amount_minor),
        currency=provider.currency,
        timezone=provider.timezone,
    )


def _in_zone(value: datetime | None, zone: str) -> datetime | None:
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=ZoneInfo(zone))


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
        if await conn.fetchval("SELECT 1 FROM accounts WHERE id = $1", account_id) is None:
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
    return m.ProviderList(providers=[_provider(p) for p in found.values()])


async def journal(call: Call) -> BaseModel:
    """Journal search, newest first."""
    query: m.JournalQuery = call.query
    zone = call.settings.timezone
    where = journal_db.JournalFilter(
        provider=query.provider,
        txn=query.txn,
        code=query.code,
        since=_in_zone(query.since, zone),
        until=_in_zone(query.until, zone),
        before_id=query.before,
    )
    rows = await journal_db.search(call.pool, where, limit=query.limit + 1)
    page = rows[: query.limit]
    more = len(rows) > query.limit
    return m.JournalPage(
        items=[m.JournalEntry.model_validate(r, from_attributes=True) for r in page],
        next_before=page[-1].id if more else None,
    )


async def _openapi_placeholder(call: Call) -> BaseModel:
    raise AssertionError("served by openapi_view")


class OpenApiDocument(BaseModel):
    """The OpenAPI 3.1 document of this API (free-form JSON)."""


_ID: Final = r"{account_id:\d+}"

ROUTES: Final = (
    Route("GET", "/lookup", "lookup", "Accounts by payment code, email, service name or billing id", lookup,
          m.AccountList, query=m.LookupQuery, errors=(400, 401, 404)),
    Route("POST", "/accounts", "create_account", "Create an account with its first payer", create_account,
          m.Account, status=201, body=m.AccountCreate, errors=(400, 401, 409)),
    Route("GET", f"/accounts/{_ID}", "show_account", "An account, its payers, codes and latest payments",
          show_account, m.Account, errors=(401, 404)),
    Route("POST", f"/accounts/{_ID}/payers", "add_payer", "Add a payer (a new payment code)", add_payer,
          m.PayerCreated, status=201, body=m.PayerCreate, errors=(400, 401, 404)),
    Route("POST", f"/accounts/{_ID}/block", "block", "Block an account", block, m.AccountStatus,
          errors=(401, 404)),
    Route("POST", f"/accounts/{_ID}/unblock", "unblock", "Unblock an account", unblock, m.AccountStatus,
          errors=(401, 404)),
    Route("GET", f"/accounts/{_ID}/payments", "account_payments", "An account's payments, newest first",
          account_payments, m.PaymentPage, query=m.PageQuery, errors=(400, 401, 404)),
    Route("GET", "/providers", "providers", "Providers, secrets only as present or absent", providers,
          m.ProviderList, errors=(401,)),
    Route("GET", "/journal", "journal", "What aggregators asked and what we answered", journal,
          m.JournalPage, query=m.JournalQuery, errors=(400, 401)),
    Route("GET", "/openapi.json", "openapi", "This document", _openapi_placeholder, OpenApiDocument,
          errors=(401,)),
)  # fmt: skip


def routes() -> tuple[Route, ...]:
    """Every admin route: this module's and those of the modules built on it."""
    from tolem.admin import billing, reports  # noqa: PLC0415 - they import this module

    return ROUTES + reports.ROUTES + billing.ROUTES


# --- plumbing ---------------------------------------------------------------------------------


def _parse_query(request: web.Request, model: type[BaseModel] | None) -> Any:
    if model is None:
        if request.query:
            raise ApiError(
                400, "invalid", "this endpoint takes no query parameters", next(iter(request.query))
            )
        return None
    values: dict[str, str] = {}
    for key in request.query:
        given = request.query.getall(key)
        if len(given) > 1:
            raise ApiError(400, "invalid", "parameter given more than once", key)
        values[key] = given[0]
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        raise _bad_input(exc) from exc


async def _parse_body(request: web.Request, model: type[BaseModel] | None) -> Any:
    if model is None:
        return None
    raw = await request.read()
    if not raw.strip():
        raw = b"{}"
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        if exc.errors()[0]["type"] == "json_invalid":
            raise ApiError(400, "invalid", "the body is not JSON") from exc
        raise _bad_input(exc) from exc


def _endpoint(route: Route) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def endpoint(request: web.Request) -> web.StreamResponse:
        request[LOG_LINE]["admin"] = route.name
        account_id = None
        if "account_id" in request.match_info:
            account_id = int(request.match_info["account_id"])
            if account_id > _MAX_ID:
                raise ApiError(404, "not_found", f"no account {account_id}")
        call = Call(
            request=request,
            query=_parse_query(request, route.query),
            body=await _parse_body(request, route.body),
            account_id=account_id,
        )
        result = await route.handler(call)
        if isinstance(result, Answer):
            return web.json_response(result.body.model_dump(mode="json"), status=result.status)
        return web.json_response(result.model_dump(mode="json"), status=route.status)

    return endpoint


def openapi_document() -> dict[str, Any]:
    """OpenAPI 3.1, generated from ROUTES and their pydantic models."""
    every = routes()
    inputs = {r.query for r in every if r.query} | {r.body for r in every if r.body}
    outputs = {r.response for r in every if r.response is not OpenApiDocument} | {m.Error}
    keys, schema = models_json_schema(
        [(model, "validation") for model in sorted(inputs, key=lambda c: c.__name__)]
        + [(model, "serialization") for model in sorted(outputs, key=lambda c: c.__name__)],
        ref_template="#/components/schemas/{model}",
    )
    components = schema.get("$defs", {})
    error_ref = keys[(m.Error, "serialization")]
    paths: dict[str, dict[str, Any]] = {}
    for route in every:
        operation: dict[str, Any] = {"operationId": route.name, "summary": route.summary}
        parameters: list[dict[str, Any]] = []
        for name in _PATH_PARAM_RE.findall(route.openapi_path):
            schema = (
                {"type": "integer"}
                if name == "account_id"
                else {"type": "string", "minLength": 1, "maxLength": _MAX_REF}
            )
            parameters.append({"name": name, "in": "path", "required": True, "schema": schema})
        if route.query is not None:
            query_schema = route.query.model_json_schema(
                mode="validation", ref_template="#/components/schemas/{model}"
            )
            required = set(query_schema.get("required", []))
            for name, prop in query_schema["properties"].items():
                parameters.append({"name": name, "in": "query", "required": name in required, "schema": prop})
        if parameters:
            operation["parameters"] = parameters
        if route.body is not None:
            operation["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": keys[(route.body, "validation")]}},
            }
        response_schema = (
            {"type": "object"}
            if route.response is OpenApiDocument
            else keys[(route.response, "serialization")]
        )
        responses: dict[str, Any] = {
            str(status): {
                "description": route.response.__doc__ or route.summary,
                "content": {"application/json": {"schema": response_schema}},
            }
            for status in (route.status, *route.also)
        }
        for status in route.errors:
            responses[str(status)] = {
                "description": _ERROR_DESCRIPTIONS[status],
                "content": {"application/json": {"schema": error_ref}},
            }
        operation["responses"] = responses
        paths.setdefault(route.openapi_path, {})[route.method.lower()] = operation
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "tolem admin API",
            "version": "1",
            "description": "Support lookups and account care. Every call needs the bearer token.",
        },
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}],
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }


_ERROR_DESCRIPTIONS: Final = {
    400: "A parameter or body field is wrong; `field` names it.",
    401: "Missing or wrong bearer token.",
    404: "No such account, provider or path.",
    409: "Conflicts with existing data.",
}


def _authorized(request: web.Request, token: bytes) -> bool:
    header = request.headers.get("Authorization", "")
    scheme, _, given = header.partition(" ")
    # Compare in constant time and always compare, so timing tells nothing about the token.
    matches = hmac.compare_digest(given.strip().encode(), token)
    return scheme.lower() == "bearer" and matches


def _guard(token: bytes) -> Any:
    @web.middleware
    async def guard(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        if not _authorized(request, token):
            metrics.ADMIN_REQUESTS.labels("none", "401").inc()
            return _error_response(ApiError(401, "unauthorized", "missing or wrong bearer token"))
        status = 500
        try:
            response = await handler(request)
            status = response.status
            return response
        except ApiError as exc:
            status = exc.status
            return _error_response(exc)
        except _DB_ERRORS as exc:
            status = 503
            request[LOG_LINE]["error"] = type(exc).__name__
            return _error_response(ApiError(503, "unavailable", "database unavailable, try again"))
        finally:
            metrics.ADMIN_REQUESTS.labels(request[LOG_LINE].get("admin", "none"), str(status)).inc()

    return guard


async def _not_found(request: web.Request) -> web.StreamResponse:
    allowed = await methods_elsewhere(request, "not_found")
    if allowed:
        error = ApiError(405, "method_not_allowed", f"use {', '.join(sorted(allowed))}")
        response = _error_response(error)
        response.headers["Allow"] = ", ".join(sorted(allowed))
        return response
    raise ApiError(404, "not_found", "no such admin path")


def build_admin_app(settings: Settings, pool: Callable[[], asyncpg.Pool]) -> web.Application:
    """The /admin sub-application; only mounted when TOLEM_ADMIN_TOKEN is set."""
    assert settings.admin_token is not None
    token = settings.admin_token.get_secret_value().encode()
    # The canonical line comes from the root application's middleware (tolem.app).
    admin = web.Application(middlewares=[_guard(token)])
    admin[POOL_GETTER] = pool
    admin[ADMIN_SETTINGS] = settings
    document = openapi_document()

    async def openapi_view(request: web.Request) -> web.StreamResponse:
        request[LOG_LINE]["admin"] = "openapi"
        return web.json_response(document)

    for route in routes():
        handler = openapi_view if route.name == "openapi" else _endpoint(route)
        admin.router.add_route(route.method, route.path, handler, name=route.name)
    # Unknown paths answer in the same JSON shape, and only after the token is checked.
    admin.router.add_route("*", "/{tail:.*}", _not_found, name="not_found")
    return admin
