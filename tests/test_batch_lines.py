"""Reading batch input: any chunking gives the same lines and line numbers; over-long lines and
bad lines are reported per line without stopping the rest."""

from __future__ import annotations

from collections.abc import AsyncIterator

import orjson
import pytest

from service.config import Settings
from service.usecases import batch_lines
from service.usecases.batch_lines import CHAT_COMPLETIONS, LineChecker, check_jsonl


def line(custom_id: str) -> bytes:
    body = {"messages": [{"role": "user", "content": f"question {custom_id}"}]}
    return orjson.dumps({"custom_id": custom_id, "method": "POST", "url": CHAT_COMPLETIONS, "body": body})


async def chunks_of(data: bytes, size: int) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


async def parse(data: bytes, size: int) -> batch_lines.ParsedBatch:
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    return await check_jsonl(chunks_of(data, size), LineChecker(settings, CHAT_COMPLETIONS))


async def test_any_chunking_gives_the_same_lines() -> None:
    data = line("a") + b"\n\n" + line("b") + b"\nnot json\n" + line("c")  # no final newline
    for size in (1, 7, 64, len(data)):
        parsed = await parse(data, size)
        assert [(valid.line, valid.custom_id) for valid in parsed.lines] == [(1, "a"), (3, "b"), (5, "c")]
        assert [(error["line"], error["code"]) for error in parsed.errors] == [(4, "invalid_json_line")]
        assert parsed.lines[1].values["kind"] == "chat"


async def test_an_over_long_line_is_refused_and_the_next_lines_still_count(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(batch_lines, "MAX_LINE_BYTES", 150)
    data = line("a") + b"\n" + b"x" * 500 + b"\n" + line("b") + b"\n"
    parsed = await parse(data, 16)
    assert [(valid.line, valid.custom_id) for valid in parsed.lines] == [(1, "a"), (3, "b")]
    assert [(error["line"], error["code"]) for error in parsed.errors] == [(2, "line_too_long")]
