"""Every validation error is a precise 422 in the one error shape, and nothing is stored for it."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import func, select

from service.db.models import AnalysisRequest
from tests.support import SEED_EXAMPLE, RunningService, make_settings, running_service


@pytest.fixture(scope="module")
async def svc(postgres_url: str, kafka_bootstrap: str) -> AsyncIterator[RunningService]:
    settings = make_settings(
        postgres_url,
        kafka_bootstrap,
        max_input_cells=20,
        max_query_chars=50,
        max_cell_chars=30,
        max_input_chars=60,
    )
    async with running_service(settings, with_worker=False) as service:
        yield service


def spreadsheet(**changes: Any) -> dict[str, Any]:
    body = {"kind": "spreadsheet", **SEED_EXAMPLE, "query_text": "Find trends"}
    body.update(changes)
    return {key: value for key, value in body.items() if value is not ...}


CASES = [
    ("empty query", spreadsheet(query_text="   "), "query_text"),
    ("missing query", spreadsheet(query_text=...), "query_text"),
    ("malformed range", spreadsheet(input_range="A1-D10"), "input_range"),
    ("range with bad row", spreadsheet(input_range="A0:D10"), "input_range"),
    ("range column too far", spreadsheet(input_range="A1:ZZZZ3"), "input_range"),
    ("ragged data", spreadsheet(input_data=[["a", "b"], ["c"]]), "input_data"),
    ("non-scalar cell", spreadsheet(input_data=[["a", {"x": 1}]]), "input_data"),
    ("nested list cell", spreadsheet(input_data=[["a", [1, 2]]]), "input_data"),
    ("data larger than range", spreadsheet(input_range="A1:B2"), "body"),
    ("too many cells", spreadsheet(input_range="A1:E5", input_data=[[1] * 5] * 5), "input_data"),
    ("query too long", spreadsheet(query_text="x" * 51), "query_text"),
    ("cell too long", spreadsheet(input_data=[["x" * 31]], input_range="A1"), "input_data.0.0"),
    (
        "too many characters",
        spreadsheet(input_data=[["x" * 25, "y" * 25, "z" * 25]], input_range="A1:C1"),
        "input_data",
    ),
    ("unknown category", spreadsheet(category="astrology"), "category"),
    ("NUL in query", spreadsheet(query_text="sum\x00"), "query_text"),
    ("NUL in a cell", spreadsheet(input_data=[["a\x00"]], input_range="A1"), "input_data.0.0"),
    ("unknown kind", {"kind": "poetry", "query_text": "x"}, "body"),
    ("unknown field", spreadsheet(colour="red"), "colour"),
    ("process without description", {"kind": "process_analysis", "title": "T"}, "description"),
    ("process blank title", {"kind": "process_analysis", "title": " ", "description": "d"}, "title"),
]


@pytest.mark.parametrize(("name", "body", "loc"), CASES, ids=[case[0] for case in CASES])
async def test_invalid_requests_get_precise_422(
    svc: RunningService, name: str, body: dict[str, Any], loc: str
) -> None:
    async with svc.sessions() as session:
        before = await session.scalar(select(func.count()).select_from(AnalysisRequest))
    response = await svc.submit(body)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert error["message"]
    locations = [detail["loc"] for detail in error["details"]]
    assert any(location.startswith(loc) for location in locations), (name, locations)
    async with svc.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(AnalysisRequest)) == before


async def test_malformed_json_is_422(svc: RunningService) -> None:
    response = await svc.client.post(
        "/api/v1/requests", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "validation_error"


async def test_range_in_either_orientation_is_normalised(svc: RunningService) -> None:
    response = await svc.submit(spreadsheet(input_range="d10:a1"))
    assert response.status_code == 202, response.text
    async with svc.sessions() as session:
        row = await session.get(AnalysisRequest, uuid.UUID(response.json()["id"]))
    assert row is not None and row.input_range == "A1:D10"


async def test_seed_aliases_are_accepted(svc: RunningService) -> None:
    for alias in ("analysis", "transformation", "search", "generation", "data-chart"):
        response = await svc.submit(spreadsheet(category=alias))
        assert response.status_code == 202, (alias, response.text)


async def test_compat_endpoint_validates_too(svc: RunningService) -> None:
    response = await svc.client.post("/api/ai/process", json={**SEED_EXAMPLE, "input_data": [[1], [1, 2]]})
    assert response.status_code == 422
    assert response.json()["error"]["details"][0]["loc"] == "input_data"


async def test_unknown_path_uses_the_error_shape(svc: RunningService) -> None:
    response = await svc.client.get("/api/v1/nothing-here")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
