"""The official `openai` SDK as the client of /v1/files and /v1/batches, end to end through the
broker and the worker (dryrun backend)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import openai
import orjson
import pytest
from openai import AsyncOpenAI
from openai.types import Batch

from tests.conftest import fresh_postgres_database
from tests.support import PROCESS_EXAMPLE, RunningService, issue_key, make_settings, running_service


@pytest.fixture(scope="module", name="postgres_url")
async def batches_database() -> AsyncIterator[str]:
    """This module's batches live in a database of their own: a worker's batch feeder releases the
    lines of every open batch it finds, which would reach the backends of other tests."""
    async with fresh_postgres_database() as url:
        yield url


def chat_line(custom_id: str, question: str) -> dict[str, Any]:
    return {
        "custom_id": custom_id,
        "method": "POST",
        "url": "/v1/chat/completions",
        "body": {"model": "any", "messages": [{"role": "user", "content": question}], "max_tokens": 50},
    }


def jsonl(items: list[Any]) -> bytes:
    return b"".join(orjson.dumps(item) + b"\n" for item in items)


@asynccontextmanager
async def sdk(svc: RunningService) -> AsyncIterator[AsyncOpenAI]:
    # The SDK with an API key of its own (its own owner), over the app's ASGI transport (the
    # service's lifespan is already running).
    key = await issue_key(svc.settings, name=f"sdk-{uuid.uuid4().hex[:6]}")
    yield AsyncOpenAI(base_url="http://test/v1", api_key=key, http_client=svc.client, max_retries=0)


async def wait(client: AsyncOpenAI, batch_id: str, statuses: tuple[str, ...], timeout: float = 60) -> Batch:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        batch = await client.batches.retrieve(batch_id)
        if batch.status in statuses:
            return batch
        assert loop.time() < deadline, f"batch still {batch.status}: {batch.request_counts}"
        await asyncio.sleep(0.1)


async def create(client: AsyncOpenAI, content: bytes, endpoint: str = "/v1/chat/completions") -> Batch:
    uploaded = await client.files.create(file=("input.jsonl", content), purpose="batch")
    return await client.batches.create(
        input_file_id=uploaded.id,
        endpoint=endpoint,  # type: ignore[arg-type]
        completion_window="24h",
        metadata={"job": "nightly"},
    )


async def read_lines(client: AsyncOpenAI, file_id: str | None) -> list[dict[str, Any]]:
    assert file_id is not None
    content = await client.files.content(file_id)
    return [orjson.loads(line) for line in content.content.splitlines()]


async def test_sdk_batch_workflow_with_output_and_error_files(
    postgres_url: str, kafka_bootstrap: str
) -> None:
    settings = make_settings(postgres_url, kafka_bootstrap, dryrun_failure_rate=0.25, llm_max_attempts=1)
    async with running_service(settings) as svc, sdk(svc) as client:
        items = [chat_line(f"q-{n}", f"How do I do thing number {n}?") for n in range(20)]
        batch = await create(client, jsonl(items))
        assert batch.status == "in_progress" and batch.endpoint == "/v1/chat/completions"
        assert batch.request_counts is not None and batch.request_counts.total == 20
        assert batch.metadata == {"job": "nightly"}

        done = await wait(client, batch.id, ("completed",))
        counts = done.request_counts
        assert counts is not None and counts.completed + counts.failed == 20
        assert counts.failed > 0 and counts.completed > 0  # the dryrun failure rate hit some lines
        assert done.completed_at and done.finalizing_at and done.in_progress_at

        outputs = await read_lines(client, done.output_file_id)
        errors = await read_lines(client, done.error_file_id)
        assert len(outputs) == counts.completed and len(errors) == counts.failed
        assert sorted(line["custom_id"] for line in outputs + errors) == sorted(f"q-{n}" for n in range(20))
        first = outputs[0]
        assert first["id"].startswith("batch_req_") and first["error"] is None
        body = first["response"]["body"]
        assert first["response"]["status_code"] == 200 and body["object"] == "chat.completion"
        number = first["custom_id"].split("-")[1]
        assert f"number {number}" in body["choices"][0]["message"]["content"]  # each answer is its own line's
        assert body["usage"]["total_tokens"] > 0
        failure = errors[0]
        assert failure["response"]["status_code"] >= 500
        assert failure["response"]["body"]["error"]["code"] == "llm_unavailable"

        described = await client.files.retrieve(done.output_file_id or "")
        assert described.purpose == "batch_output"
        # Every file reports the bytes its download has (the input as uploaded, the rest rendered).
        for file_id in (batch.input_file_id, done.output_file_id, done.error_file_id):
            assert file_id is not None
            content = (await client.files.content(file_id)).content
            assert (await client.files.retrieve(file_id)).bytes == len(content) > 0
        listed = {file.id: file.bytes for file in (await client.files.list()).data}
        assert listed[done.output_file_id or ""] == described.bytes
        # Each line was sent to the model once (no retries configured), never twice.
        assert len(svc.backend.calls) == 20


async def test_sdk_native_url_lines(postgres_url: str, kafka_bootstrap: str) -> None:
    settings = make_settings(postgres_url, kafka_bootstrap)
    async with running_service(settings) as svc, sdk(svc) as client:
        items = [
            {"custom_id": f"p-{n}", "method": "POST", "url": "/api/v1/requests",
             "body": {**PROCESS_EXAMPLE, "title": f"Process {n}"}}
            for n in range(3)
        ]  # fmt: skip
        batch = await create(client, jsonl(items), endpoint="/api/v1/requests")
        done = await wait(client, batch.id, ("completed",))
        outputs = await read_lines(client, done.output_file_id)
        assert [line["custom_id"] for line in outputs] == ["p-0", "p-1", "p-2"]
        assert all(1 <= line["response"]["body"]["result"]["score"] <= 10 for line in outputs)
        assert done.error_file_id is None


async def test_sdk_cancel_list_pagination_files_and_errors(postgres_url: str, kafka_bootstrap: str) -> None:
    settings = make_settings(
        postgres_url, kafka_bootstrap, dryrun_latency_ms=200, batch_owner_window=2, worker_batch_concurrency=2
    )
    async with running_service(settings) as svc, sdk(svc) as client:
        big = await create(client, jsonl([chat_line(f"b-{n}", f"slow {n}") for n in range(40)]))
        cancelling = await client.batches.cancel(big.id)
        assert cancelling.status == "cancelling" and cancelling.cancelling_at
        cancelled = await wait(client, big.id, ("cancelled",))
        counts = cancelled.request_counts
        assert counts is not None and counts.total == 40 and counts.completed < 40
        errors = await read_lines(client, cancelled.error_file_id)
        cancelled_lines = [
            line for line in errors if line["error"] and line["error"]["code"] == "batch_cancelled"
        ]
        assert len(cancelled_lines) == 40 - counts.completed - counts.failed
        assert all(line["response"] is None for line in cancelled_lines)
        if counts.completed:
            assert len(await read_lines(client, cancelled.output_file_id)) == counts.completed
        with pytest.raises(openai.ConflictError):
            await client.batches.cancel(big.id)

        others = [await create(client, jsonl([chat_line("x", "hi")])) for _ in range(3)]
        listed = [batch.id async for batch in client.batches.list(limit=2)]
        newest_first = [other.id for other in reversed(others)] + [big.id]
        assert listed == newest_first  # this key's batches only; auto-paging over pages of two, by `after`
        page = await client.batches.list(limit=2)
        assert page.has_more is True and len(page.data) == 2

        ours = [batch.input_file_id for batch in (*reversed(others), big)]
        files = [f.id async for f in client.files.list(purpose="batch", limit=2)]
        assert files == ours  # this key's files only, newest first, over pages of two
        gone = await client.files.delete(ours[0])
        assert gone.deleted is True
        with pytest.raises(openai.NotFoundError) as missing:
            await client.files.retrieve(ours[0])
        assert missing.value.code == "not_found"
        with pytest.raises(openai.NotFoundError):
            await client.batches.retrieve("batch_0123456789abcdef0123456789abcdef")
        upload = await client.files.content(ours[1])
        assert orjson.loads(upload.content.splitlines()[0])["custom_id"] == "x"

        async with sdk(svc) as stranger:  # another owner sees none of it
            with pytest.raises(openai.NotFoundError):
                await stranger.batches.retrieve(big.id)
            with pytest.raises(openai.NotFoundError):
                await stranger.files.content(ours[1])
            assert (await stranger.batches.list()).data == []
            with pytest.raises(openai.NotFoundError):
                await stranger.batches.cancel(others[0].id)


@pytest.mark.parametrize(
    ("content", "code", "line"),
    [
        (b"this is not json\n", "invalid_json_line", 1),
        (b"[1, 2]\n", "invalid_request", 1),
        (jsonl([chat_line("a", "x"), chat_line("a", "y")]), "duplicate_custom_id", 2),
        (jsonl([{**chat_line("a", "x"), "url": "/v1/embeddings"}]), "invalid_url", 1),
        (jsonl([chat_line("a", "x"), {**chat_line("b", "x"), "body": {"messages": []}}]), "invalid_body", 2),
        (
            jsonl(
                [
                    {
                        **chat_line("a", "x"),
                        "body": {"messages": [{"role": "user", "content": "x"}], "stream": True},
                    }
                ]
            ),
            "invalid_body",
            1,
        ),
        (jsonl([{**chat_line("a", "x"), "url": "/api/v1/requests"}]), "mismatched_endpoint", 1),
    ],
)
async def test_sdk_bad_input_fails_the_batch_with_line_errors(
    content: bytes, code: str, line: int, postgres_url: str, kafka_bootstrap: str
) -> None:
    settings = make_settings(postgres_url, kafka_bootstrap)
    async with running_service(settings, with_worker=False) as svc, sdk(svc) as client:
        batch = await create(client, content)
        assert batch.status == "failed" and batch.failed_at
        assert batch.errors is not None and batch.errors.data
        assert (batch.errors.data[0].code, batch.errors.data[0].line) == (code, line)
        assert batch.request_counts is not None and batch.request_counts.total == 0
        assert (await client.batches.retrieve(batch.id)).status == "failed"


async def test_sdk_upload_refusals(postgres_url: str, kafka_bootstrap: str) -> None:
    settings = make_settings(postgres_url, kafka_bootstrap, batch_max_bytes=1000)
    async with running_service(settings, with_worker=False) as svc, sdk(svc) as client:
        with pytest.raises(openai.APIStatusError) as too_big:
            await client.files.create(file=("big.jsonl", b"x" * 1001), purpose="batch")
        assert too_big.value.status_code == 413 and too_big.value.code == "file_too_large"
        with pytest.raises(openai.UnprocessableEntityError) as wrong_purpose:
            await client.files.create(file=("a.jsonl", b"{}"), purpose="fine-tune")
        assert wrong_purpose.value.code == "validation_error"
        with pytest.raises(openai.UnprocessableEntityError):
            await client.files.create(file=("a.jsonl", b""), purpose="batch")
        uploaded = await client.files.create(file=("a.jsonl", jsonl([chat_line("a", "x")])), purpose="batch")
        with pytest.raises(openai.UnprocessableEntityError) as bad_endpoint:
            await client.batches.create(
                input_file_id=uploaded.id, endpoint="/v1/embeddings", completion_window="24h"
            )
        assert "endpoint" in str(bad_endpoint.value)
        assert (await client.files.list()).data[0].id == uploaded.id  # the refused uploads left nothing
