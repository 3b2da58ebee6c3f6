"""The admin API: support lookups and account care over JSON, behind a bearer token.

This is the sub-application: it checks the token, parses each route's query and body into the
models the route declares, runs its handler and answers in JSON. Every route is one row of
tolem.admin.routes.ROUTES; the router here and the OpenAPI document (tolem.admin.openapi) are
both built from that table, so the document cannot drift from what is served.
"""

import hmac
from collections.abc import Awaitable, Callable
from typing import Any, Final

import asyncpg
from aiohttp import web
from pydantic import BaseModel, ValidationError

from tolem.admin.call import ADMIN_SETTINGS, POOL_GETTER, Answer, Call
from tolem.admin.errors import ApiError, bad_input, error_response
from tolem.admin.openapi import openapi_document
from tolem.admin.routes import ROUTES, Route
from tolem.db.pool import NO_WRITABLE_HOST
from tolem.log import LOG_LINE
from tolem.ops import metrics
from tolem.routing import methods_elsewhere
from tolem.settings import Settings

_MAX_ID: Final = 2**63 - 1
_DB_ERRORS: Final = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError, NO_WRITABLE_HOST)


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
        raise bad_input(exc) from exc


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
        raise bad_input(exc) from exc


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
            return error_response(ApiError(401, "unauthorized", "missing or wrong bearer token"))
        status = 500
        try:
            response = await handler(request)
            status = response.status
            return response
        except ApiError as exc:
            status = exc.status
            return error_response(exc)
        except _DB_ERRORS as exc:
            status = 503
            request[LOG_LINE]["error"] = type(exc).__name__
            return error_response(ApiError(503, "unavailable", "database unavailable, try again"))
        finally:
            metrics.ADMIN_REQUESTS.labels(request[LOG_LINE].get("admin", "none"), str(status)).inc()

    return guard


async def _not_found(request: web.Request) -> web.StreamResponse:
    allowed = await methods_elsewhere(request, "not_found")
    if allowed:
        error = ApiError(405, "method_not_allowed", f"use {', '.join(sorted(allowed))}")
        response = error_response(error)
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

    for route in ROUTES:
        handler = openapi_view if route.name == "openapi" else _endpoint(route)
        admin.router.add_route(route.method, route.path, handler, name=route.name)
    # Unknown paths answer in the same JSON shape, and only after the token is checked.
    admin.router.add_route("*", "/{tail:.*}", _not_found, name="not_found")
    return admin
