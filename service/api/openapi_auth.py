"""How callers authenticate, said in the OpenAPI document: Swagger UI gets its Authorize button and
generated clients learn about the key.

Two schemes, either one will do (service/callers/auth.py reads both): `Authorization: Bearer <key>`
and `X-API-Key: <key>`. Every operation needs one of them unless it is listed as open here; the
route matrix (tests/test_route_matrix.py) checks the same list against the app's real answers.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from service.config import Settings

BEARER, API_KEY = "bearerAuth", "apiKeyHeader"
SCHEMES: dict[str, dict[str, Any]] = {
    BEARER: {"type": "http", "scheme": "bearer", "description": "An API key (`gok_…`) as a bearer token."},
    API_KEY: {"type": "apiKey", "in": "header", "name": "X-API-Key", "description": "An API key (`gok_…`)."},
}

# Open to anyone: probes must work without a key.
OPEN_OPERATIONS = {
    ("get", "/api/health"),
    ("get", "/api/v1/health"),
    ("get", "/api/v1/health/live"),
    ("get", "/api/v1/health/ready"),
}


def open_operations(settings: Settings) -> set[tuple[str, str]]:
    """The operations that need no key with these settings."""
    opened = set(OPEN_OPERATIONS)
    if settings.metrics_public:
        opened.add(("get", "/metrics"))
    if settings.models_public:
        opened.add(("get", "/v1/models"))
    return opened


def declare_security(app: FastAPI, settings: Settings) -> None:
    """Adds the schemes to the app's OpenAPI document (built once, on first request)."""
    build = app.openapi
    requirement: list[dict[str, list[str]]] = [{BEARER: []}, {API_KEY: []}]
    if settings.allow_anonymous:
        requirement.append({})  # the key is optional: key-less callers are the shared anonymous owner
    opened = open_operations(settings)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = build()
        schema.setdefault("components", {})["securitySchemes"] = SCHEMES
        schema["security"] = requirement
        for path, operations in schema.get("paths", {}).items():
            for method, operation in operations.items():
                if (method, path) in opened:
                    operation["security"] = []
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
