"""The runtime: every long-lived client of a process, opened once at start and closed once at exit.

The API's lifespan (service/app.py), the worker (workers/main.py) and CLI commands each open ONE
`Runtime` with `open_runtime(settings, role=...)`. Use-cases and routes take what they need from it
(`rt.sessions`, `rt.publisher`, `rt.requests`, ...) and never build clients of their own, never read
`app.state` (which holds nothing but the runtime) and never import the `api` package.

Roles:
- "api": database (engine, sessions, the asyncpg request store), Redis, the LLM backend, the broker
  monitor, the publisher, the status hub, and the callers' authenticator, rate limiter and budgets.
- "worker": the same minus the status hub and the callers' front door, plus the worker store.
- "cli": the database only (an admin command needs no broker and no LLM).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from service.callers.auth import Authenticator
from service.callers.budgets import Budgets
from service.callers.connections import ConnectionCaps
from service.callers.ratelimit import RequestRateLimiter
from service.config import Settings
from service.db.request_store import RequestStore, open_request_store
from service.db.session import create_engine, create_session_factory
from service.db.worker_store import WorkerStore, open_worker_store
from service.llm.base import LLMBackend
from service.llm.model_list import ModelList
from service.llm.registry import backend_health, build_backend
from service.messaging.hub import StatusHub
from service.messaging.kafka import RequestPublisher, ensure_topics
from service.messaging.monitor import BrokerMonitor
from service.redis_client import open_redis
from service.tracing import setup as setup_tracing

Role = Literal["api", "worker", "cli"]
ReadinessCheck = Callable[[], dict[str, Any]]


class NotInThisRole(RuntimeError):
    """A client asked for in a process whose role does not open it (a programming error)."""


@dataclass(frozen=True, slots=True)
class Runtime:
    """The clients of one process. A client only some roles open is stored in an underscored field
    (None in the other roles) and read through the property of the same name, which is typed
    non-optional and fails loudly in a role that lacks it."""

    role: Role
    settings: Settings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    redis: Redis | None = None  # None without REDIS_URL: limits then hold per process
    _publisher: RequestPublisher | None = None
    _monitor: BrokerMonitor | None = None
    _llm: LLMBackend | None = None
    _store: RequestStore | None = None  # the API's asyncpg fast path (submit, status reads)
    _worker_store: WorkerStore | None = None  # the worker's asyncpg fast path (claim, finish)
    _hub: StatusHub | None = None  # API only: wakes waiters on status events
    _authenticator: Authenticator | None = None
    _rate_limiter: RequestRateLimiter | None = None
    _budgets: Budgets | None = None
    _models: ModelList | None = None
    _connections: ConnectionCaps | None = None  # API only: per-owner caps on held connections
    # Readiness of parts that run next to this one in the same process (the worker under `up`).
    readiness_checks: Mapping[str, ReadinessCheck] = field(default_factory=dict)

    @property
    def publisher(self) -> RequestPublisher:
        if self._publisher is None:
            raise NotInThisRole(f"a {self.role} runtime has no publisher")
        return self._publisher

    @property
    def monitor(self) -> BrokerMonitor:
        if self._monitor is None:
            raise NotInThisRole(f"a {self.role} runtime has no broker monitor")
        return self._monitor

    @property
    def llm(self) -> LLMBackend:
        if self._llm is None:
            raise NotInThisRole(f"a {self.role} runtime has no LLM backend")
        return self._llm

    @property
    def store(self) -> RequestStore:
        if self._store is None:
            raise NotInThisRole(f"a {self.role} runtime has no request store")
        return self._store

    @property
    def worker_store(self) -> WorkerStore:
        if self._worker_store is None:
            raise NotInThisRole(f"a {self.role} runtime has no worker store")
        return self._worker_store

    @property
    def hub(self) -> StatusHub:
        if self._hub is None:
            raise NotInThisRole(f"a {self.role} runtime has no status hub")
        return self._hub

    @property
    def authenticator(self) -> Authenticator:
        if self._authenticator is None:
            raise NotInThisRole(f"a {self.role} runtime has no authenticator")
        return self._authenticator

    @property
    def rate_limiter(self) -> RequestRateLimiter:
        if self._rate_limiter is None:
            raise NotInThisRole(f"a {self.role} runtime has no rate limiter")
        return self._rate_limiter

    @property
    def budgets(self) -> Budgets:
        if self._budgets is None:
            raise NotInThisRole(f"a {self.role} runtime has no budgets")
        return self._budgets

    @property
    def connections(self) -> ConnectionCaps:
        if self._connections is None:
            raise NotInThisRole(f"a {self.role} runtime has no connection caps")
        return self._connections

    @property
    def models(self) -> ModelList:
        if self._models is None:
            raise NotInThisRole(f"a {self.role} runtime has no model list")
        return self._models

    async def llm_health(self) -> dict[str, Any]:
        """The LLM backend's health (cached LLM_HEALTH_CACHE_SECONDS; spends no tokens)."""
        return await backend_health(self.llm, max_age_seconds=self.settings.llm_health_cache_seconds)


@asynccontextmanager
async def open_runtime(
    settings: Settings,
    *,
    role: Role,
    llm: LLMBackend | None = None,
    readiness_checks: Mapping[str, ReadinessCheck] | None = None,
) -> AsyncIterator[Runtime]:
    """Open the clients of `role` in order; close them in reverse on exit, and also when opening
    fails half-way (only what was opened is closed). `llm` replaces the configured backend (tests,
    the benches); it is started and closed here like the configured one."""
    async with AsyncExitStack() as opened:
        # First in, last out: spans of the closing clients are still exported.
        provider = setup_tracing(settings)
        if provider is not None:
            opened.callback(provider.shutdown)
        engine = create_engine(settings)
        opened.push_async_callback(engine.dispose)
        sessions = create_session_factory(engine)
        if role == "cli":
            yield Runtime(role, settings, engine, sessions)
            return
        await ensure_topics(settings)
        # The process's one Redis client (None without REDIS_URL): callers' rate limits, and the
        # LLM capacity shared between processes.
        redis = open_redis(settings)
        if redis is not None:
            opened.push_async_callback(redis.aclose)
        # Fails fast on unusable configuration (missing certificate, credentials); no I/O here.
        backend = llm if llm is not None else build_backend(settings, redis)
        await backend.start()
        opened.push_async_callback(backend.close)
        monitor = BrokerMonitor(settings, role)
        await monitor.start()
        opened.push_async_callback(monitor.close)
        publisher = RequestPublisher(settings, monitor)
        await publisher.start()
        opened.push_async_callback(publisher.close)
        parts: dict[str, Any] = {}
        if role == "worker":
            worker_store = await open_worker_store(settings, engine)
            opened.push_async_callback(worker_store.close)
            parts["_worker_store"] = worker_store
            parts["_budgets"] = Budgets(settings, sessions)
        else:
            store = await open_request_store(settings, engine)
            opened.push_async_callback(store.close)
            hub = StatusHub(settings, monitor)
            await hub.start()
            opened.push_async_callback(hub.close)
            authenticator = Authenticator(settings, sessions)
            authenticator.start()
            opened.push_async_callback(authenticator.close)
            parts.update(
                _store=store,
                _hub=hub,
                _authenticator=authenticator,
                _rate_limiter=RequestRateLimiter(settings, redis),
                _budgets=Budgets(settings, sessions),
                _models=ModelList(backend, settings.models_cache_seconds),
                _connections=ConnectionCaps(settings),
            )
        yield Runtime(
            role,
            settings,
            engine,
            sessions,
            redis=redis,
            _llm=backend,
            _monitor=monitor,
            _publisher=publisher,
            readiness_checks=dict(readiness_checks or {}),
            **parts,
        )
