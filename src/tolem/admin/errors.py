"""Admin API errors: every refusal in one JSON shape, with a stable code and the field at fault."""

from typing import Final

from aiohttp import web
from pydantic import ValidationError

from tolem.admin import models as m


class ApiError(Exception):
    """An error answer: HTTP status, stable code, message, and the field at fault if any."""

    def __init__(self, status: int, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.field = field


def error_response(error: ApiError) -> web.Response:
    """The JSON answer of an ApiError; a 401 names the bearer scheme."""
    body = m.Error(error=m.ErrorDetail(code=error.code, message=error.message, field=error.field))
    response = web.json_response(body.model_dump(mode="json", exclude_none=True), status=error.status)
    if error.status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="tolem-admin"'
    return response


def bad_input(exc: ValidationError) -> ApiError:
    """A 400 naming the first field pydantic refused and why."""
    first = exc.errors()[0]
    field = ".".join(str(part) for part in first["loc"]) or None
    message = first["msg"].removeprefix("Value error, ")
    return ApiError(400, "invalid", message, field)


# What each error status means, as the OpenAPI document says it.
ERROR_DESCRIPTIONS: Final = {
    400: "A parameter or body field is wrong; `field` names it.",
    401: "Missing or wrong bearer token.",
    404: "No such account, provider or path.",
    409: "Conflicts with existing data.",
}
