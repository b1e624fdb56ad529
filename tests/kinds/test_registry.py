"""Every registered kind, end to end: its own example submitted through the real API, processed by a
worker on the dryrun backend (real broker, real PostgreSQL), read back on every surface; and the
rest of the code looks kinds up instead of branching on them."""

from __future__ import annotations

import ast
import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from service.kinds import EXAMPLES, KINDS, REQUEST_INPUT
from tests.conftest import fresh_postgres_database
from tests.support import RunningService, make_settings, running_service

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module", name="postgres_url")
async def kinds_database() -> AsyncIterator[str]:
    """A database of its own: the batch below must not reach other tests' workers, nor theirs ours."""
    async with fresh_postgres_database() as url:
        yield url


def example_of(name: str) -> dict[str, Any]:
    example = next(iter(KINDS[name].examples.values()))
    body: dict[str, Any] = example["value"]
    return body


def test_every_kind_has_an_example_that_its_own_input_accepts() -> None:
    assert set(KINDS) >= {"spreadsheet", "process_analysis", "chat", "text"}
    for name, kind in KINDS.items():
        assert kind.name == name
        body = REQUEST_INPUT.validate_python(example_of(name))
        assert isinstance(body, kind.Input) and body.kind == name
    assert len(EXAMPLES) >= len(KINDS)


async def wait_batch(svc: RunningService, batch_id: str, timeout: float = 90) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        body: dict[str, Any] = (await svc.client.get(f"/api/v1/batches/{batch_id}")).json()
        if body["status"] in ("completed", "failed", "cancelled", "expired"):
            return body
        assert loop.time() < deadline, f"batch still {body['status']}: {body['counts']}"
        await asyncio.sleep(0.1)


async def test_every_kind_round_trips_on_every_surface(postgres_url: str, kafka_bootstrap: str) -> None:
    settings = make_settings(postgres_url, kafka_bootstrap)
    async with running_service(settings) as svc:
        submitted = {}
        for name in KINDS:
            response = await svc.submit(example_of(name))
            assert response.status_code == 202, response.text
            assert response.json()["kind"] == name
            submitted[name] = response.json()["id"]
        for name, request_id in submitted.items():
            kind = KINDS[name]
            final = await svc.wait_final(request_id, timeout=120)  # a shared, busy machine
            assert final["status"] == "completed", (name, final)
            # v1 result: the stored result, as the kind produced it.
            v1 = (await svc.client.get(f"/api/v1/requests/{request_id}/result")).json()
            assert v1["kind"] == name and v1["result"], (name, v1)
            assert v1["usage"]["llm_calls"] >= 1 and v1["usage"]["backend"] == "dryrun"
            # Seed contract: the same keys for every kind.
            seed = (await svc.client.get(f"/api/ai/result/{request_id}")).json()
            assert seed["success"] is True and seed["answer"] == v1["result"], (name, seed)
            assert {"answer_type", "result", "text", "output_range", "tokens_used"} <= set(seed)
            # OpenAI's chat.completion object: a message whose content is the kind's answer text.
            completion = kind.chat_completion(uuid.UUID(request_id), v1["result"], datetime.now(UTC))
            message = completion["choices"][0]["message"]
            assert completion["object"] == "chat.completion" and message["role"] == "assistant"
            assert isinstance(message["content"], str)
            assert message["content"] == (kind.answer_text(v1["result"]) or "")

        # Batch lines: one native line per kind through the batch lane, results in line order.
        items = [{"custom_id": name, **example_of(name)} for name in KINDS]
        created = await svc.client.post("/api/v1/batches", json=items)
        assert created.status_code == 201, created.text
        final_batch = await wait_batch(svc, created.json()["id"])
        assert final_batch["status"] == "completed", final_batch
        response = await svc.client.get(f"/api/v1/batches/{created.json()['id']}/results")
        out = [orjson.loads(line) for line in response.content.splitlines()]
        assert [line["custom_id"] for line in out] == list(KINDS)
        assert all(line["status"] == "completed" and line["result"] for line in out), out


async def test_openapi_documents_one_body_per_kind_with_its_examples(
    postgres_url: str, kafka_bootstrap: str
) -> None:
    async with running_service(make_settings(postgres_url, kafka_bootstrap), with_worker=False) as svc:
        spec = (await svc.client.get("/openapi.json")).json()
    body = spec["paths"]["/api/v1/requests"]["post"]["requestBody"]["content"]["application/json"]
    assert set(body["schema"]["discriminator"]["mapping"]) == set(KINDS)
    assert set(body["examples"]) == set(EXAMPLES)


def _source_files() -> list[Path]:
    files = [*(ROOT / "service").rglob("*.py"), *(ROOT / "workers").rglob("*.py")]
    return [path for path in files if "kinds" not in path.relative_to(ROOT).parts]


def _kind_name(node: ast.AST) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in KINDS:
        return node.value
    if isinstance(node, ast.Tuple | ast.List | ast.Set):
        return next((name for element in node.elts if (name := _kind_name(element))), None)
    return None


def _reads_a_kind(node: ast.AST) -> bool:
    """`row.kind`, `context.get("kind")` or `body["kind"]` (a bare name `kind` may be anything, e.g.
    the answer schema's kind in pipeline/answer.py)."""
    if isinstance(node, ast.Attribute):
        return node.attr == "kind"
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "get":
        return bool(node.args) and isinstance(node.args[0], ast.Constant) and node.args[0].value == "kind"
    if isinstance(node, ast.Subscript):
        return isinstance(node.slice, ast.Constant) and node.slice.value == "kind"
    return False


def test_no_code_outside_the_kinds_package_branches_on_a_kind() -> None:
    """No comparison with a kind's name and no isinstance on a kind's input outside service/kinds/:
    what differs between kinds is looked up (`KINDS[row.kind]`), so a new kind is one module."""
    inputs = {kind.Input.__name__ for kind in KINDS.values()}
    found: list[str] = []
    for path in _source_files():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            where = f"{path.relative_to(ROOT)}:{getattr(node, 'lineno', '?')}"
            if isinstance(node, ast.Compare):
                parts = (node.left, *node.comparators)
                names = [_kind_name(part) for part in parts]
                if any(names) and any(_reads_a_kind(part) for part in parts):
                    found.append(f"{where} compares with kind {next(n for n in names if n)!r}")
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "isinstance":
                classes = ast.unparse(node.args[1]) if len(node.args) > 1 else ""
                if any(name in classes for name in inputs):
                    found.append(f"{where} isinstance on a kind's input")
    assert not found, "\n".join(found)
