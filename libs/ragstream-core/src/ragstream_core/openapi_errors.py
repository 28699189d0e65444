"""The error answers of every REST route, written into the app's OpenAPI document.

FastAPI documents only a route's success and a 422 of its own shape, but every answer that is
not a success has the body of ``runtime.error_response`` (``error``, ``detail``, ``trace_id``,
sometimes more fields), and some statuses can come from any route: fuzzing the specs found them
undocumented. ``document_errors`` adds, to every operation:

- 400: a header, path or query value our rules refuse (every route checks ``X-Tenant-Id``);
- 422: a value of the wrong type or shape (request validation), or content we cannot process;
- 503: a server the service needs (PostgreSQL, NATS) is unreachable;
- 404: for routes with an id in their path, that id is not known (in the caller's tenant);

and gives every 4xx/5xx answer the ``ErrorBody`` schema, unless the route declares a body of its
own (the OpenAI-compatible routes answer OpenAI's error object). Statuses only some routes answer (409,
410, 413, 415...) stay declared on those routes, with ``responses=``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI

__all__ = ["ERROR_BODY", "document_errors"]

ERROR_BODY: dict[str, Any] = {
    "title": "ErrorBody",
    "type": "object",
    "required": ["detail"],
    "properties": {
        "error": {"type": "string", "description": "The error's type, e.g. NotFound or InvalidInput."},
        "detail": {"description": "What was wrong and what is accepted (a text, or a list of field errors)."},
        "trace_id": {"type": ["string", "null"], "description": "The request's trace, for the logs."},
    },
    "additionalProperties": True,
}

_ALWAYS = {
    "400": "A header, path or query value is refused; the detail says what is accepted.",
    "422": "A value has the wrong type or shape, or the content cannot be processed.",
    "503": "A server this service needs is unreachable; retry later.",
}
_NOT_FOUND = "The id in the path is not known in the caller's tenant."
_METHODS = frozenset({"get", "put", "post", "delete", "patch", "head", "options"})


def document_errors(app: FastAPI) -> None:
    """Make ``app.openapi()`` declare the error answers above on every operation (idempotent)."""
    original: Callable[[], dict[str, Any]] = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = original()
        schema.setdefault("components", {}).setdefault("schemas", {})["ErrorBody"] = ERROR_BODY
        body = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}
        for path, item in schema.get("paths", {}).items():
            for method, operation in item.items():
                if method not in _METHODS:
                    continue
                responses = operation.setdefault("responses", {})
                for code, description in _ALWAYS.items():
                    responses.setdefault(code, {"description": description})
                if "{" in path:
                    responses.setdefault("404", {"description": _NOT_FOUND})
                for code, response in responses.items():
                    if code[0] in "45" and _undeclared(response):
                        response["content"] = body
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def _undeclared(response: dict[str, Any]) -> bool:
    """No body declared, or only FastAPI's own 422 body (ours replaces it: see ``error_handlers``)."""
    schema = response.get("content", {}).get("application/json", {}).get("schema", {})
    return not schema or schema.get("$ref") == "#/components/schemas/HTTPValidationError"
