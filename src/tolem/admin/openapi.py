"""The admin API's OpenAPI 3.1 document, generated from the route table and its pydantic models."""

import re
from typing import Any, Final

from pydantic.json_schema import models_json_schema

from tolem.admin import models as m
from tolem.admin.call import MAX_REF
from tolem.admin.errors import ERROR_DESCRIPTIONS
from tolem.admin.routes import ROUTES, OpenApiDocument

_PATH_PARAM_RE: Final = re.compile(r"\{(\w+)\}")


def openapi_document() -> dict[str, Any]:
    """OpenAPI 3.1, generated from ROUTES and their pydantic models."""
    inputs = {r.query for r in ROUTES if r.query} | {r.body for r in ROUTES if r.body}
    outputs = {r.response for r in ROUTES if r.response is not OpenApiDocument} | {m.Error}
    keys, schema = models_json_schema(
        [(model, "validation") for model in sorted(inputs, key=lambda c: c.__name__)]
        + [(model, "serialization") for model in sorted(outputs, key=lambda c: c.__name__)],
        ref_template="#/components/schemas/{model}",
    )
    components = schema.get("$defs", {})
    error_ref = keys[(m.Error, "serialization")]
    paths: dict[str, dict[str, Any]] = {}
    for route in ROUTES:
        operation: dict[str, Any] = {"operationId": route.name, "summary": route.summary}
        parameters: list[dict[str, Any]] = []
        for name in _PATH_PARAM_RE.findall(route.openapi_path):
            schema = (
                {"type": "integer"}
                if name == "account_id"
                else {"type": "string", "minLength": 1, "maxLength": MAX_REF}
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
                "description": ERROR_DESCRIPTIONS[status],
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
