"""The script client and CLI end to end: a real uvicorn server and worker, the CLI in a subprocess."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import uvicorn

from service.app import create_app
from service.client import GigaOfficeClient
from service.config import Settings
from tests.conftest import fresh_postgres_database
from tests.support import SEED_EXAMPLE, issue_key, make_settings
from workers.main import Worker


@pytest.fixture(scope="module", name="postgres_url")
async def batches_database() -> AsyncIterator[str]:
    """This module's batches live in a database of their own: a worker's batch feeder releases the
    lines of every open batch it finds, which would reach the backends of other tests."""
    async with fresh_postgres_database() as url:
        yield url


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@asynccontextmanager
async def served(settings: Settings) -> AsyncIterator[str]:
    """The API on a free loopback port, and a worker, in this event loop."""
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    serving = asyncio.create_task(server.serve())
    worker = Worker(settings)
    working = asyncio.create_task(worker.run())
    while not server.started:
        assert not serving.done(), "the server did not start"
        await asyncio.sleep(0.05)
    try:
        # The CLI authenticates with a real key (GIGAOFFICE_API_KEY), created as the keys CLI does.
        os.environ["GIGAOFFICE_API_KEY"] = await issue_key(settings, name="cli")
        yield f"http://127.0.0.1:{port}"
    finally:
        os.environ.pop("GIGAOFFICE_API_KEY", None)
        server.should_exit = True
        worker.stop()
        await asyncio.gather(serving, working)


async def cli(url: str, *args: str, interrupt_after: str | None = None) -> tuple[int, str, str]:
    env = {**os.environ, "GIGAOFFICE_URL": url, "COLUMNS": "160"}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "service", *args, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert process.stdout and process.stderr
    if interrupt_after is not None:
        seen = b""
        while interrupt_after.encode() not in seen:
            chunk = await asyncio.wait_for(process.stderr.read(200), 60)
            assert chunk, f"the CLI ended before printing {interrupt_after!r}: {seen!r}"
            seen += chunk
        process.send_signal(signal.SIGINT)
        out, rest = await asyncio.wait_for(process.communicate(), 60)
        return process.returncode or 0, out.decode(), (seen + rest).decode()
    out, err = await asyncio.wait_for(process.communicate(), 120)
    return process.returncode or 0, out.decode(), err.decode()


def write_jsonl(path: Path, items: list[Any]) -> Path:
    path.write_bytes(b"".join(orjson.dumps(item) + b"\n" for item in items))
    return path


async def test_batch_submit_wait_writes_results_and_errors(
    postgres_url: str, kafka_bootstrap: str, tmp_path: Path
) -> None:
    settings = make_settings(postgres_url, kafka_bootstrap, dryrun_failure_rate=0.2, llm_max_attempts=1)
    items = [
        {"custom_id": f"r{n}", "kind": "chat", "messages": [{"role": "user", "content": f"n {n}"}]}
        for n in range(25)
    ]
    source = write_jsonl(tmp_path / "in.jsonl", items)
    out, errors = tmp_path / "out.jsonl", tmp_path / "errors.jsonl"
    async with served(settings) as url:
        code, stdout, stderr = await cli(
            url, "batch", "submit", str(source), "--wait", "--out", str(out), "--errors", str(errors)
        )
        assert "25/25" in stderr, stderr  # the progress bar's last state
        assert "failed" in stderr
        assert code == 0, stderr
        done = [orjson.loads(line) for line in out.read_bytes().splitlines()]
        failed = [orjson.loads(line) for line in errors.read_bytes().splitlines()]
        assert done and failed and len(done) + len(failed) == 25
        assert all(line["status"] == "completed" for line in done)
        assert [line["line"] for line in done] == sorted(line["line"] for line in done)
        batch_id = stderr.split("batch ", 1)[1].split(":", 1)[0]

        code, stdout, _ = await cli(url, "batch", "status", batch_id)
        assert code == 0 and orjson.loads(stdout)["status"] == "completed"
        code, stdout, _ = await cli(url, "batch", "results", batch_id)
        assert code == 0 and len(stdout.splitlines()) == 25
        code, _, stderr = await cli(url, "batch", "cancel", batch_id)
        assert code == 2 and "not_cancellable" in stderr


async def test_openai_format_file_and_single_requests(
    postgres_url: str, kafka_bootstrap: str, tmp_path: Path
) -> None:
    settings = make_settings(postgres_url, kafka_bootstrap)
    lines = [
        {"custom_id": f"o{n}", "method": "POST", "url": "/v1/chat/completions",
         "body": {"messages": [{"role": "user", "content": f"q {n}"}]}}
        for n in range(3)
    ]  # fmt: skip
    source = write_jsonl(tmp_path / "openai.jsonl", lines)
    body = tmp_path / "request.json"
    body.write_bytes(orjson.dumps({"kind": "spreadsheet", **SEED_EXAMPLE}))
    async with served(settings) as url:
        code, _, stderr = await cli(
            url, "batch", "submit", str(source), "--wait", "--out", str(tmp_path / "o.jsonl")
        )
        assert code == 0, stderr
        assert [orjson.loads(x)["custom_id"] for x in (tmp_path / "o.jsonl").read_bytes().splitlines()] == [
            "o0",
            "o1",
            "o2",
        ]

        code, stdout, stderr = await cli(url, "request", "submit", str(body), "--wait")
        assert code == 0, stderr
        answer = orjson.loads(stdout)
        assert answer["status"] == "completed" and answer["result"]["values"]
        code, stdout, _ = await cli(url, "request", "submit", str(body))
        request_id = orjson.loads(stdout)["id"]
        code, stdout, _ = await cli(url, "request", "status", request_id)
        assert code == 0 and orjson.loads(stdout)["id"] == request_id

        bad = write_jsonl(tmp_path / "bad.jsonl", [{"custom_id": "a", "kind": "nope"}])
        code, _, stderr = await cli(url, "batch", "submit", str(bad))
        assert code == 2 and "invalid_batch" in stderr and "line 1" in stderr


async def test_ctrl_c_detaches_without_cancelling(
    postgres_url: str, kafka_bootstrap: str, tmp_path: Path
) -> None:
    settings = make_settings(
        postgres_url, kafka_bootstrap, dryrun_latency_ms=500, batch_owner_window=2, worker_batch_concurrency=2
    )
    items = [
        {"custom_id": f"s{n}", "kind": "chat", "messages": [{"role": "user", "content": "slow"}]}
        for n in range(80)
    ]
    source = write_jsonl(tmp_path / "slow.jsonl", items)
    async with served(settings) as url:
        code, _, stderr = await cli(url, "batch", "submit", str(source), "--wait", interrupt_after="80 lines")
        assert code == 130, stderr
        assert "Detached" in stderr and "python -m service batch status" in stderr
        batch_id = stderr.split("batch ", 1)[1].split(":", 1)[0]
        code, stdout, _ = await cli(url, "batch", "status", batch_id)
        assert orjson.loads(stdout)["status"] == "in_progress"  # still running, not cancelled
        code, stdout, _ = await cli(url, "batch", "cancel", batch_id)
        assert code == 0 and orjson.loads(stdout)["status"] == "cancelling"


def test_client_retries_429_and_503_honouring_retry_after() -> None:
    answers = iter(
        [
            httpx.Response(
                429, headers={"Retry-After": "2"}, json={"error": {"code": "rate_limited", "message": "slow"}}
            ),
            httpx.Response(
                503,
                headers={"Retry-After": "1"},
                json={"error": {"code": "queue_unavailable", "message": "x"}},
            ),
            httpx.Response(202, json={"id": "abc", "status": "queued"}),
        ]
    )
    slept: list[float] = []
    transport = httpx.MockTransport(lambda request: next(answers))
    with GigaOfficeClient("http://service", "k", transport=transport, sleep=slept.append) as client:
        assert client.submit({"kind": "chat"})["id"] == "abc"
    assert slept == [2.0, 1.0]


def test_client_gives_up_with_the_service_error() -> None:
    transport = httpx.MockTransport(
        lambda request: httpx.Response(
            503,
            headers={"Retry-After": "0"},
            json={"error": {"code": "queue_unavailable", "message": "down"}},
        )
    )
    with GigaOfficeClient(
        "http://service", transport=transport, max_retries=2, sleep=lambda _: None
    ) as client:
        try:
            client.submit({})
        except Exception as exc:
            assert getattr(exc, "code", None) == "queue_unavailable" and getattr(exc, "status", None) == 503
        else:
            raise AssertionError("no error raised")
