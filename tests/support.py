"""Test helpers around the real service: settings, a running API + worker, and observable backends."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from loguru import logger
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from service.app import create_app
from service.config import Settings
from service.db.models import AnalysisRequest
from service.db.session import create_engine, create_session_factory
from service.llm.base import ChatRequest, ChatResponse, LLMBackend
from service.llm.dryrun import DryrunBackend
from service.messaging.kafka import RequestPublisher
from workers.main import Worker
from workers.sweeper import Sweeper

S = TypeVar("S")

# The seed document's curl body, written out here on purpose: the contract tests must not take it
# from the code they check.
SEED_EXAMPLE = {
    "query_text": "Проанализируй данные продаж и найди тренды",
    "input_range": "A1:D10",
    "category": "analysis",
    "input_data": [
        ["Товар", "Январь", "Февраль", "Март"],
        ["Товар A", 100, 120, 110],
        ["Товар B", 80, 90, 95],
    ],
}


PROCESS_EXAMPLE = {
    "kind": "process_analysis",
    "title": "Invoice approval",
    "description": "Invoices arrive by email, an accountant types them into Excel manually, "
    "then two managers approve each one by email. About 300 invoices a month.",
    "company_size": "50-200",
}


def make_settings(database_url: str, bootstrap: str, **overrides: Any) -> Settings:
    """Settings isolated per test: own topics and consumer group on the shared broker."""
    suffix = uuid.uuid4().hex[:8]
    values: dict[str, Any] = {
        "database_url": database_url,
        "kafka_bootstrap_servers": bootstrap,
        "kafka_topic_requests": f"test.requests.{suffix}",
        "kafka_topic_dead_letter": f"test.requests.dlq.{suffix}",
        "kafka_topic_requests_batch": f"test.requests.batch.{suffix}",
        "batch_feed_interval_seconds": 0.05,
        "kafka_topic_responses": f"test.responses.{suffix}",
        "kafka_consumer_group": f"test-group-{suffix}",
        "kafka_topic_partitions": 3,
        "llm_backend": "dryrun",
        "worker_concurrency": 32,
        # Several engines share one PostgreSQL server (max_connections is often 100).
        "db_pool_size": 5,
        "worker_commit_interval_ms": 100,
        "sweep_interval_seconds": 3600,
        # The database is shared by the whole session: never pick up other tests' leftover rows.
        "requeue_after_seconds": 86_400,
        "worker_shutdown_grace_seconds": 5,
        # The tests from before API keys call without one; the callers' tests (test_callers*.py)
        # turn this off and use keys.
        "allow_anonymous": True,
        # Load-shaped tests submit hundreds at once; the rate-limit tests set their own figures.
        "anonymous_requests_per_minute": 0,
        # The database outlives a test: a cached answer from an earlier test would answer a later
        # one's request without the call that test counts. The cache's tests turn it on.
        "answer_cache": False,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


class CountingBackend:
    """Wraps a real backend and records calls and the peak number running at once."""

    def __init__(self, inner: LLMBackend) -> None:
        self.inner = inner
        self.name = inner.name
        self.calls: list[ChatRequest] = []
        self.in_flight = 0
        self.peak_in_flight = 0
        self.call_started = asyncio.Event()

    async def start(self) -> None:
        await self.inner.start()

    async def close(self) -> None:
        await self.inner.close()

    async def health(self) -> dict[str, Any]:
        return await self.inner.health()

    async def models(self) -> list[str]:
        return await self.inner.models()

    async def chat(self, request: ChatRequest) -> ChatResponse:
        self.calls.append(request)
        self.in_flight += 1
        self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
        self.call_started.set()
        try:
            return await self.inner.chat(request)
        finally:
            self.in_flight -= 1


@dataclass
class RunningService:
    settings: Settings
    client: httpx.AsyncClient
    sessions: async_sessionmaker[AsyncSession]
    backend: CountingBackend
    worker: Worker | None
    worker_task: asyncio.Task[None] | None
    app: Any = None  # the FastAPI application under test

    async def submit(self, body: dict[str, Any], path: str = "/api/v1/requests") -> httpx.Response:
        return await self.client.post(path, json=body)

    async def wait_final(self, request_id: str, timeout: float = 30) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            response = await self.client.get(f"/api/v1/requests/{request_id}")
            body: dict[str, Any] = response.json()
            if body.get("status") in ("completed", "failed", "cancelled", "expired"):
                return body
            if loop.time() > deadline:
                raise AssertionError(f"request {request_id} still {body.get('status')} after {timeout}s")
            await asyncio.sleep(0.05)

    def start_worker(self) -> None:
        self.worker = Worker(self.settings, backend=self.backend)
        self.worker_task = asyncio.create_task(self.worker.run())

    async def stop_worker(self) -> None:
        if self.worker and self.worker_task:
            self.worker.stop()
            await self.worker_task
            self.worker = self.worker_task = None

    async def backdate(self, request_id: str, **values: Any) -> None:
        """Move a request's timestamps into the past (e.g. created_at beyond its TTL)."""
        async with self.sessions() as session:
            await session.execute(
                update(AnalysisRequest).where(AnalysisRequest.id == uuid.UUID(request_id)).values(**values)
            )
            await session.commit()

    async def sweep_once(self) -> int:
        """One pass of the sweeper as a worker runs it, with a publisher of its own."""
        publisher = RequestPublisher(self.settings)
        await publisher.start()
        try:
            return await Sweeper(self.settings, self.sessions, publisher).sweep_once()
        finally:
            await publisher.close()


@dataclass
class StoreUnderTest(Generic[S]):
    """A hot-path store on a test database, with a session factory to look at the rows."""

    store: S
    sessions: async_sessionmaker[AsyncSession]
    dialect: str


@asynccontextmanager
async def open_store(
    database_url: str, opener: Callable[[Settings, AsyncEngine], Awaitable[S]]
) -> AsyncIterator[StoreUnderTest[S]]:
    settings = Settings(_env_file=None, database_url=database_url, db_pool_size=2)  # type: ignore[call-arg]
    engine = create_engine(settings)
    store = await opener(settings, engine)
    try:
        yield StoreUnderTest(store, create_session_factory(engine), engine.dialect.name)
    finally:
        await store.close()  # type: ignore[attr-defined]
        await engine.dispose()


@asynccontextmanager
async def running_service(
    settings: Settings,
    *,
    with_worker: bool = True,
    backend: LLMBackend | None = None,
    api_key: str | None = None,
) -> AsyncIterator[RunningService]:
    """The API in-process (ASGI) with a worker; `api_key` is sent on every call of `client`."""
    app = create_app(settings)
    counting = CountingBackend(backend or DryrunBackend(settings))
    engine = create_engine(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        headers = bearer(api_key) if api_key else None
        async with httpx.AsyncClient(transport=transport, base_url="http://test", headers=headers) as client:
            service = RunningService(
                settings, client, create_session_factory(engine), counting, None, None, app
            )
            if with_worker:
                service.start_worker()
            try:
                yield service
            finally:
                await service.stop_worker()
                await engine.dispose()


async def read_topic(bootstrap: str, topic: str, expected: int, timeout: float = 20) -> list[Any]:
    """Everything on `topic` from the start, until `expected` records arrived or time ran out."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        group_id=f"reader-{uuid.uuid4().hex[:6]}",
    )
    await consumer.start()
    records: list[Any] = []
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while len(records) < expected and loop.time() < deadline:
            batches = await consumer.getmany(timeout_ms=300)
            for batch in batches.values():
                records.extend(batch)
    finally:
        await consumer.stop()
    return records


async def produce_raw(bootstrap: str, topic: str, value: bytes, key: bytes | None = None) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=False)
    await producer.start()
    try:
        await producer.send_and_wait(topic, value, key=key)
    finally:
        await producer.stop()


async def issue_key(settings: Settings, name: str = "test", role: str = "user", **limits: int | None) -> str:
    """A new API key's secret, created the way the CLI does it."""
    from service.usecases.keys import create_key

    engine = create_engine(settings)
    try:
        async with create_session_factory(engine)() as session:
            created = await create_key(session, name, role, **limits)
            await session.commit()
    finally:
        await engine.dispose()
    return created.secret


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@contextmanager
def captured_logs() -> Iterator[list[str]]:
    """Every log line written meanwhile (to prove what is, and is not, logged)."""
    lines: list[str] = []
    sink = logger.add(lambda message: lines.append(str(message)), level="TRACE")
    try:
        yield lines
    finally:
        logger.remove(sink)


@contextmanager
def live_service(settings: Settings) -> Iterator[str]:
    """The API (on a real loopback port) and a worker, on their own event loop in a thread: for
    clients that only speak to a real server (the `openai` SDK's synchronous client). Yields the
    base URL."""
    import socket
    import threading

    import uvicorn

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(create_app(settings), log_level="warning", lifespan="on", access_log=False)
    server = uvicorn.Server(config)
    worker = Worker(settings)
    failures: list[BaseException] = []

    async def main() -> None:
        worker_task = asyncio.create_task(worker.run())
        try:
            await server.serve(sockets=[sock])
        finally:
            worker.stop()
            await worker_task

    def run() -> None:
        try:
            asyncio.run(main())
        except BaseException as exc:  # reported to the test below
            failures.append(exc)

    thread = threading.Thread(target=run, name="live-service", daemon=True)
    thread.start()
    try:
        while not server.started:
            if not thread.is_alive():
                raise RuntimeError(f"the service did not start: {failures!r}")
            threading.Event().wait(0.02)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()
