"""The OpenAPI document says how to authenticate: Bearer and X-API-Key schemes (Swagger UI's
Authorize button, generated clients), and which operations need neither."""

from __future__ import annotations

from typing import Any

import httpx

from service.app import create_app
from service.config import Settings
from tests.support import make_settings, running_service
from tests.test_route_matrix import OPEN_ROUTES

BOTH = [{"bearerAuth": []}, {"apiKeyHeader": []}]


async def _schema(**overrides: object) -> dict[str, Any]:
    settings = Settings(_env_file=None, **overrides)  # type: ignore[arg-type]
    transport = httpx.ASGITransport(app=create_app(settings))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        response = await client.get("/openapi.json")
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    return body


def _open(schema: dict[str, Any]) -> set[tuple[str, str]]:
    return {
        (method.upper(), path)
        for path, operations in schema["paths"].items()
        for method, operation in operations.items()
        if operation.get("security") == []
    }


async def test_schemes_are_declared_and_every_operation_needs_one_but_the_open_ones() -> None:
    schema = await _schema()
    schemes = schema["components"]["securitySchemes"]
    assert schemes["bearerAuth"]["type"] == "http" and schemes["bearerAuth"]["scheme"] == "bearer"
    assert (schemes["apiKeyHeader"]["type"], schemes["apiKeyHeader"]["in"]) == ("apiKey", "header")
    assert schemes["apiKeyHeader"]["name"] == "X-API-Key"
    assert schema["security"] == BOTH  # no key-less access: anonymous callers are off
    # The open operations are the route matrix's open routes that the document describes.
    documented = {(method.upper(), path) for path, ops in schema["paths"].items() for method in ops}
    assert _open(schema) == OPEN_ROUTES & documented
    assert ("GET", "/api/v1/health") in _open(schema)
    assert not {("GET", "/v1/models"), ("GET", "/metrics")} & _open(schema)


async def test_public_models_and_metrics_and_anonymous_access_show_in_the_document() -> None:
    schema = await _schema(models_public=True, metrics_public=True, allow_anonymous=True)
    assert {("GET", "/v1/models"), ("GET", "/metrics")} <= _open(schema)
    assert schema["security"] == [*BOTH, {}]  # a key is optional for every other operation


async def test_the_operations_marked_open_answer_without_a_key(
    postgres_url: str, kafka_bootstrap: str
) -> None:
    settings = make_settings(postgres_url, kafka_bootstrap, allow_anonymous=False)
    async with running_service(settings, with_worker=False) as svc:
        schema = (await svc.client.get("/openapi.json")).json()
        for method, path in sorted(_open(schema)):
            answer = await svc.client.request(method, path)
            assert answer.status_code not in (401, 403), (method, path, answer.status_code)
        assert (await svc.client.get("/v1/models")).status_code == 401  # not marked: needs a key
