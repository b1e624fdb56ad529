"""Rendering a batch's lines: OpenAI output/error file lines and native result lines, as JSONL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson
from sqlalchemy.ext.asyncio import AsyncSession

from service.db.batch_models import Batch
from service.db.models import RequestStatus
from service.kinds import kind_of
from service.usecases.batch_lines import CHAT_COMPLETIONS
from service.usecases.batches import lines_in_order, native_result_line

# How a line's error reads as the HTTP status the same call would have answered.
_STATUS_OF_ERROR = {
    "llm_bad_request": 400,
    "llm_content_rejected": 400,
    "llm_rate_limited": 429,
    "llm_auth_failed": 502,
}


def _usage(row: Any) -> dict[str, int]:
    return {
        "prompt_tokens": row.prompt_tokens,
        "completion_tokens": row.completion_tokens,
        "total_tokens": row.total_tokens,
    }


def _response_body(batch: Batch, row: Any) -> dict[str, Any]:
    if batch.endpoint == CHAT_COMPLETIONS:
        return kind_of(row.kind).chat_completion(row.id, row.result, row.finished_at or row.created_at)
    return {
        "id": str(row.id),
        "kind": row.kind,
        "status": row.status,
        "category": row.category,
        "result": row.result,
        "template_version": row.template_version,
        "usage": _usage(row),
    }


def openai_line(batch: Batch, custom_id: str, row: Any) -> tuple[str, dict[str, Any]]:
    """("output" | "error", the line) in OpenAI's batch output shape."""
    line: dict[str, Any] = {
        "id": f"batch_req_{row.id.hex}",
        "custom_id": custom_id,
        "response": None,
        "error": None,
    }
    if row.status == RequestStatus.COMPLETED:
        line["response"] = {"status_code": 200, "request_id": str(row.id), "body": _response_body(batch, row)}
        return "output", line
    code, message = row.error_code or row.status, row.error_message or f"The request ended as {row.status}."
    if row.status == RequestStatus.FAILED:
        error = {"message": message, "type": "server_error", "param": None, "code": code}
        status_code = _STATUS_OF_ERROR.get(code, 500)
        line["response"] = {"status_code": status_code, "request_id": str(row.id), "body": {"error": error}}
    else:  # cancelled or expired before it ran: no call was made
        line["error"] = {"code": code, "message": message}
    return "error", line


async def openai_file_lines(session: AsyncSession, batch: Batch, which: str) -> AsyncIterator[bytes]:
    async for number, custom_id, row in lines_in_order(session, batch):
        del number
        kind, line = openai_line(batch, custom_id, row)
        if kind == which:
            yield orjson.dumps(line) + b"\n"


async def openai_file_sizes(session: AsyncSession, batch: Batch) -> dict[str, int]:
    """The bytes the output and error files will have when downloaded (one pass over the lines)."""
    sizes = {"output": 0, "error": 0}
    async for _number, custom_id, row in lines_in_order(session, batch):
        kind, line = openai_line(batch, custom_id, row)
        sizes[kind] += len(orjson.dumps(line)) + 1
    return sizes


async def native_lines(session: AsyncSession, batch: Batch) -> AsyncIterator[bytes]:
    async for number, custom_id, row in lines_in_order(session, batch):
        yield orjson.dumps(native_result_line(number, custom_id, row)) + b"\n"
