"""The FastAPI application factory. Clients are opened in the lifespan and closed after it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from functools import partial

from fastapi import FastAPI

from service.api import (
    batches,
    compat,
    health,
    metrics,
    openai_batches,
    prompts,
    prompts_compat,
    reports,
    requests,
)
from service.api.deps import Clients
from service.api.errors import install_error_handlers
from service.config import Settings, get_settings
from service.db.request_store import open_request_store
from service.db.session import create_engine, create_session_factory
from service.llm.registry import backend_health, build_backend
from service.logging import configure_logging
from service.messaging.kafka import RequestPublisher, ensure_topics

VERSION = "0.1.0"


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Every client is closed on shutdown, and also when start-up fails half-way.
        async with AsyncExitStack() as opened:
            engine = create_engine(settings)
            opened.push_async_callback(engine.dispose)
            await ensure_topics(settings)
            # The API's own backend serves health probes and LLM-assisted classification; it fails
            # fast on unusable configuration (missing certificate, credentials) but does no I/O here.
            backend = build_backend(settings)
            await backend.start()
            opened.push_async_callback(backend.close)
            store = await open_request_store(settings, engine)
            opened.push_async_callback(store.close)
            publisher = RequestPublisher(settings)
            await publisher.start()
            opened.push_async_callback(publisher.close)
            app.state.clients = Clients(settings, create_session_factory(engine), store, publisher)
            app.state.llm_backend = backend
            app.state.llm_health = partial(
                backend_health, backend, max_age_seconds=settings.llm_health_cache_seconds
            )
            yield

    app = FastAPI(
        # No OpenTelemetry pipeline is configured; the native hooks would cost CPU on every request.
        telemetry={"tracing": False, "metrics": False, "logs": False},
        title="GigaOffice AI Service",
        version=VERSION,
        description="Asynchronous AI analysis of spreadsheet ranges and business processes. "
        "Submit a request, then poll (or long-poll) its status and fetch its result.",
        lifespan=lifespan,
    )
    install_error_handlers(app)
    for module in (requests, reports, prompts, health, metrics, compat, prompts_compat):
        app.include_router(module.router)
    for module in (batches, openai_batches):  # issue 10: batches and files
        app.include_router(module.router)
    return app


def create_app_from_env() -> FastAPI:
    """Entry point for uvicorn's factory mode (one per API worker process)."""
    settings = get_settings()
    configure_logging(settings)
    return create_app(settings)
