"""The FastAPI application factory. Clients are opened in the lifespan and closed after it."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from functools import partial

from fastapi import Depends, FastAPI
from redis.asyncio import Redis

from service.api import (
    batch_events,
    batches,
    compat,
    feedback,
    health,
    keys,
    metrics,
    openai_batches,
    openai_chat,
    prometheus,
    prompts,
    prompts_compat,
    reports,
    requests,
    usage,
    webhooks,
)
from service.api.deps import Clients, get_caller
from service.api.errors import CONFLICT_RESPONSE, ERROR_RESPONSES, install_error_handlers
from service.api.plugin import install_plugin
from service.api.web import ServiceApp, install_web
from service.callers.auth import Authenticator, check_anonymous_exposure
from service.callers.budgets import Budgets
from service.callers.ratelimit import RequestRateLimiter
from service.config import Settings, get_settings
from service.db.request_store import open_request_store
from service.db.session import create_engine, create_session_factory
from service.llm.registry import backend_health, build_backend
from service.logging import configure_logging
from service.messaging.hub import StatusHub
from service.messaging.kafka import RequestPublisher, ensure_topics
from service.messaging.monitor import BrokerMonitor
from service.redis_client import open_redis
from service.schemas.batches import OPENAI_ERROR_RESPONSES, TOO_LARGE
from service.usecases.chat import ModelList

VERSION = "0.1.0"


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    check_anonymous_exposure(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Every client is closed on shutdown, and also when start-up fails half-way.
        async with AsyncExitStack() as opened:
            engine = create_engine(settings)
            opened.push_async_callback(engine.dispose)
            await ensure_topics(settings)
            # The process's one Redis client (None without REDIS_URL): callers' rate limits, and the
            # LLM capacity shared with the workers.
            redis = open_redis(settings)
            if redis is not None:
                opened.push_async_callback(redis.aclose)
            # The API's own backend serves health probes and LLM-assisted classification; it fails
            # fast on unusable configuration (missing certificate, credentials) but does no I/O here.
            backend = build_backend(settings, redis)
            await backend.start()
            opened.push_async_callback(backend.close)
            store = await open_request_store(settings, engine)
            opened.push_async_callback(store.close)
            monitor = BrokerMonitor(settings, "api")
            await monitor.start()
            opened.push_async_callback(monitor.close)
            app.state.broker_monitor = monitor
            publisher = RequestPublisher(settings, monitor)
            await publisher.start()
            opened.push_async_callback(publisher.close)
            hub = StatusHub(settings)
            await hub.start()
            opened.push_async_callback(hub.close)
            app.state.clients = Clients(settings, create_session_factory(engine), store, publisher, hub)
            open_callers(app, settings, opened, redis)
            app.state.llm_backend = backend
            app.state.model_list = ModelList(backend, settings.models_cache_seconds)
            app.state.llm_health = partial(
                backend_health, backend, max_age_seconds=settings.llm_health_cache_seconds
            )
            # Everything built so far lives as long as the process: move it out of the cyclic
            # collector's sight, so the collections that request garbage triggers stay cheap.
            gc.collect()
            gc.freeze()
            yield

    app = ServiceApp(
        # No OpenTelemetry pipeline is configured; the native hooks would cost CPU on every request.
        telemetry={"tracing": False, "metrics": False, "logs": False},
        title="GigaOffice AI Service",
        version=VERSION,
        description="Asynchronous AI analysis of spreadsheet ranges and business processes. "
        "Submit a request, then poll (or long-poll) its status and fetch its result.",
        lifespan=lifespan,
        # Served by install_web from the service's own files (offline deployments).
        docs_url=None,
        redoc_url=None,
    )
    install_error_handlers(app)
    install_web(app, settings)
    for module in (requests, reports, health, metrics, compat, keys, usage, feedback, prometheus, webhooks):
        # Every operation documents the error envelope for the statuses any route can answer.
        app.include_router(module.router, responses=ERROR_RESPONSES)
    app.include_router(batch_events.router, responses=ERROR_RESPONSES)
    # The OpenAI-compatible surface answers errors in OpenAI's shape, documented by its own routes.
    app.include_router(openai_chat.router, responses=OPENAI_ERROR_RESPONSES)
    # Batches (issue 10): the native routes, and the OpenAI-compatible files + batches.
    app.include_router(batches.router, responses={**ERROR_RESPONSES, **CONFLICT_RESPONSE, **TOO_LARGE})
    app.include_router(openai_batches.router, responses=OPENAI_ERROR_RESPONSES)
    # Routes that do not take the caller themselves still need one (open to any caller; writes
    # additionally ask for an admin key). Health and the docs stay open.
    for module in (prompts, prompts_compat):
        app.include_router(module.router, dependencies=[Depends(get_caller)], responses=ERROR_RESPONSES)
    # The spreadsheet plugin's files and package (open: an editor loads them before a key is typed).
    install_plugin(app, settings)
    return app


def open_callers(app: FastAPI, settings: Settings, opened: AsyncExitStack, redis: Redis | None) -> None:
    """Authentication, rate limits and budgets of an API process (service/callers)."""
    sessions = app.state.clients.sessions
    authenticator = Authenticator(settings, sessions)
    authenticator.start()
    opened.push_async_callback(authenticator.close)
    app.state.authenticator = authenticator
    app.state.rate_limiter = RequestRateLimiter(settings, redis)
    app.state.budgets = Budgets(settings, sessions)


def create_app_from_env() -> FastAPI:
    """Entry point for uvicorn's factory mode (one per API worker process)."""
    settings = get_settings()
    configure_logging(settings)
    return create_app(settings)
