"""Input that cannot be stored is refused at the edge with a precise 422, on every route and
parameter; what fits is carried end to end. Each case here once answered 500 with a traceback."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import pytest
from sqlalchemy import exc as sa_exc

from service.api.errors import error_response
from service.db.errors import classify
from service.errors import DatabaseUnavailable, ServiceUnavailable, ValidationFailed
from service.schemas.fields import INT64_MAX, INT64_MIN
from tests.support import (
    PROCESS_EXAMPLE,
    SEED_EXAMPLE,
    RunningService,
    bearer,
    issue_key,
    make_settings,
    running_service,
)

SPREADSHEET = {"kind": "spreadsheet", **SEED_EXAMPLE}
TEMPLATE = {"category": "spreadsheet-analysis", "language": "en", "system_prompt": "S", "user_template": "U"}


@pytest.fixture(scope="module")
async def svc(postgres_url: str, kafka_bootstrap: str) -> AsyncIterator[RunningService]:
    async with running_service(make_settings(postgres_url, kafka_bootstrap)) as service:
        yield service


@pytest.fixture(scope="module")
async def admin(svc: RunningService) -> dict[str, str]:
    """Template writes need an admin key."""
    return bearer(await issue_key(svc.settings, "validation admin", "admin"))


def raw_json(body: Any) -> bytes:
    """JSON with \\uXXXX escapes, as a client may send them: a lone surrogate survives the trip."""
    return json.dumps(body, ensure_ascii=True).encode()


async def send(
    svc: RunningService, method: str, path: str, body: Any = None, auth: dict[str, str] | None = None
) -> httpx.Response:
    content = None if body is None else raw_json(body)
    headers = {"content-type": "application/json", **(auth or {})}
    return await svc.client.request(method, path, content=content, headers=headers)


def assert_422(response: httpx.Response, loc: str, words: str) -> None:
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    matching = [d for d in error["details"] if d["loc"] == loc]
    assert matching, (loc, error["details"])
    assert words in matching[0]["msg"], matching


def cells(*values: Any) -> dict[str, Any]:
    return {**SPREADSHEET, "input_range": "A1:D1", "input_data": [list(values)]}


SUBMITS = [
    ("lone surrogate in a cell", cells("ok", "\udfff"), "input_data.0.1", "lone surrogate"),
    ("high surrogate in a cell", cells("\ud800x"), "input_data.0.0", "lone surrogate"),
    ("lone surrogate in query", {**SPREADSHEET, "query_text": "a\udfff"}, "query_text", "lone surrogate"),
    ("NUL in a cell", cells("a\x00"), "input_data.0.0", "NUL"),
    ("integer beyond 64 bits", cells(2**64), "input_data.0.0", "64-bit"),
    ("negative beyond 64 bits", cells(INT64_MIN - 1), "input_data.0.0", "64-bit"),
    ("surrogate in category", {**SPREADSHEET, "category": "\udfff"}, "category", "lone surrogate"),
    ("category longer than its column", {**SPREADSHEET, "category": "x" * 65}, "category", "at most 64"),
    ("NUL in idempotency key", {**SPREADSHEET, "idempotency_key": "k\x00"}, "idempotency_key", "NUL"),
    ("key too long", {**SPREADSHEET, "idempotency_key": "k" * 129}, "idempotency_key", "at most 128"),
    ("NUL in industry", {**PROCESS_EXAMPLE, "industry": "it\x00"}, "industry", "NUL"),
    ("surrogate in title", {**PROCESS_EXAMPLE, "title": "\udc00"}, "title", "lone surrogate"),
    ("title longer than its column", {**PROCESS_EXAMPLE, "title": "t" * 301}, "title", "at most 300"),
]


@pytest.mark.parametrize(("name", "body", "loc", "words"), SUBMITS, ids=[case[0] for case in SUBMITS])
async def test_unstorable_submits_are_422(
    svc: RunningService, name: str, body: dict[str, Any], loc: str, words: str
) -> None:
    assert_422(await send(svc, "POST", "/api/v1/requests", body), loc, words)


async def test_seed_contract_refuses_the_same(svc: RunningService) -> None:
    body = {key: value for key, value in cells("\udfff").items() if key != "kind"}
    assert_422(await send(svc, "POST", "/api/ai/process", body), "input_data.0.0", "lone surrogate")


async def test_longest_idempotency_key_fits_with_its_owner_scope(svc: RunningService) -> None:
    """A 128-character key is stored as "owner:key", which once overflowed varchar(128)."""
    body = {**PROCESS_EXAMPLE, "idempotency_key": "k" * 128}
    first = await send(svc, "POST", "/api/v1/requests", body)
    assert first.status_code == 202, first.text
    again = await send(svc, "POST", "/api/v1/requests", body)
    assert again.status_code == 200, again.text
    assert again.json()["id"] == first.json()["id"]


async def test_64_bit_integers_are_carried_end_to_end(svc: RunningService) -> None:
    body = cells(INT64_MAX, INT64_MIN, 1.5, "text")
    response = await send(svc, "POST", "/api/v1/requests", body)
    assert response.status_code == 202, response.text
    final = await svc.wait_final(response.json()["id"])
    assert final["status"] == "completed", final
    result = await svc.client.get(f"/api/v1/requests/{response.json()['id']}/result")
    assert result.status_code == 200, result.text


@pytest.mark.parametrize(
    ("path", "loc", "words"),
    [
        ("/api/v1/prompts/1001754560981", "path.template_id", "less than or equal to 2147483647"),
        ("/api/v1/prompts/0", "path.template_id", "greater than or equal to 1"),
        ("/api/v1/prompts?language=%00", "query.language", "NUL"),
        ("/api/v1/prompts?category=a%00b", "query.category", "NUL"),
        ("/api/v1/prompts?category=" + "c" * 65, "query.category", "at most 64"),
        ("/api/v1/presets?category=%00", "query.category", "NUL"),
        ("/api/prompts/presets?language=%00", "query.language", "NUL"),
        ("/api/prompts/presets?language=" + "l" * 9, "query.language", "at most 8"),
        # ?wait= is read by hand on the hot status path (service/api/requests.py).
        ("/api/v1/requests/00000000-0000-0000-0000-000000000000?wait=nan", "query.wait", "finite"),
        ("/api/v1/requests/00000000-0000-0000-0000-000000000000?wait=inf", "query.wait", "finite"),
    ],
)
async def test_unstorable_parameters_are_422(svc: RunningService, path: str, loc: str, words: str) -> None:
    assert_422(await svc.client.get(path), loc, words)


@pytest.mark.parametrize(
    ("change", "loc", "words"),
    [
        ({"system_prompt": "a\udfff"}, "system_prompt", "lone surrogate"),
        ({"system_prompt": "a\x00"}, "system_prompt", "NUL"),
        ({"user_template": "\ud83d"}, "user_template", "lone surrogate"),
        ({"examples": [{"q": "\udfff"}]}, "examples.0", "lone surrogate"),
        ({"examples": [{"q\x00": "a"}]}, "examples.0", "NUL"),
        ({"examples": [{"n": 2**70}]}, "examples.0", "64-bit"),
        ({"note": "n" * 501}, "note", "at most 500"),
        ({"category": "\x00"}, "category", "NUL"),
    ],
)
async def test_unstorable_templates_are_422(
    svc: RunningService, admin: dict[str, str], change: dict[str, Any], loc: str, words: str
) -> None:
    assert_422(await send(svc, "POST", "/api/v1/prompts", {**TEMPLATE, **change}, admin), loc, words)
    update = {
        key: value for key, value in {**TEMPLATE, **change}.items() if key not in ("category", "language")
    }
    if "category" not in change:
        assert_422(await send(svc, "PUT", "/api/v1/prompts/1", update, admin), loc, words)
    assert_422(
        await send(svc, "PUT", "/api/v1/prompts/99999999999", update, admin), "path.template_id", "less than"
    )


async def test_unexpected_errors_are_an_envelope_without_internals(svc: RunningService) -> None:
    app = svc.client._transport.app  # type: ignore[attr-defined]

    async def broken() -> None:
        raise RuntimeError("secret detail /etc/passwd")

    app.add_api_route("/test-broken", broken)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        response = await client.get("/test-broken")
    assert response.status_code == 500
    assert response.json() == {
        "error": {"code": "internal_error", "message": "An internal error occurred.", "details": None}
    }
    assert "secret" not in response.text and "Traceback" not in response.text


def test_database_errors_are_classified() -> None:
    """Whatever driver path raised it: a lost connection is 503, a refused value is 422."""
    lost = [
        asyncpg.AdminShutdownError("terminating connection due to administrator command"),
        asyncpg.ConnectionDoesNotExistError("connection was closed in the middle of operation"),
        asyncpg.InternalClientError("cannot switch to state 13; another operation is in progress"),
        asyncpg.InterfaceError("connection is closed"),
        sa_exc.OperationalError("SELECT 1", {}, ConnectionRefusedError(111, "refused")),
        sa_exc.TimeoutError("QueuePool limit reached"),
    ]
    for error in lost:
        assert isinstance(classify(error), DatabaseUnavailable), error
    refused = [
        asyncpg.StringDataRightTruncationError("value too long for type character varying(128)"),
        sa_exc.DBAPIError("INSERT", {}, asyncpg.CharacterNotInRepertoireError("invalid byte sequence")),
    ]
    for error in refused:
        mapped = classify(error)
        assert isinstance(mapped, ValidationFailed), error
    assert classify(asyncpg.UndefinedTableError('relation "x" does not exist')) is None
    elsewhere = classify(TimeoutError())
    assert isinstance(elsewhere, ServiceUnavailable) and not isinstance(elsewhere, DatabaseUnavailable)


@pytest.mark.parametrize(
    ("name", "content", "status"),
    [
        ("infinite float", b'{"kind":"spreadsheet","query_text":"x","input_data":[[1e400]]}', 422),
        (
            "integer of 5000 digits",
            b'{"kind":"spreadsheet","query_text":"x","input_data":[[' + b"9" * 5000 + b"]]}",
            400,
        ),
        ("nested 100000 deep", b"[" * 100_000 + b"]" * 100_000, 400),
        ("surrogate as a field name", b'{"kind":"spreadsheet","query_text":"x","\\udfff":1}', 422),
        ("surrogate as a JSON key in examples", b'{"kind":"spreadsheet","query_text":"x","\\ud800x":1}', 422),
        ("not UTF-8", b'{"kind":"spreadsheet","query_text":"\xff"}', 400),
    ],
)
async def test_hostile_bodies_are_4xx(svc: RunningService, name: str, content: bytes, status: int) -> None:
    headers = {"content-type": "application/json"}
    response = await svc.client.post("/api/v1/requests", content=content, headers=headers)
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] in ("validation_error", "bad_request")


def test_an_error_quoting_bad_text_still_renders() -> None:
    response = error_response(404, "not_found", "category '\udfff' is unknown")
    assert json.loads(response.body)["error"]["message"] == "category '\udfff' is unknown"
