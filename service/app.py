"""The FastAPI application factory. The runtime (service/runtime.py) is opened in the lifespan and
closed after it; it is the only thing on `app.state`."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI

from service.api import (
    audit,
    batch_events,
    batches,
    compat,
    conversations,
    feedback,
    health,
    keys,
    metrics,
    openai_batches,
    openai_chat,
    owners,
    prometheus,
    prompts,
    prompts_compat,
    reports,
    requests,
    usage,
    webhooks,
)
from service.api.deps import get_caller
from service.api.errors import CONFLICT_RESPONSE, ERROR_RESPONSES, install_error_handlers
from service.api.openapi_auth import declare_security
from service.api.plugin import install_plugin
from service.api.web import ServiceApp, install_web
from service.callers.auth import check_anonymous_exposure
from service.config import Settings, get_settings
from service.console import install_console
from service.logging import configure_logging
from service.runtime import ReadinessCheck, open_runtime
from service.schemas.batches import OPENAI_ERROR_RESPONSES, TOO_LARGE

VERSION = "0.1.0"


def create_app(
    settings: Settings | None = None, *, readiness_checks: Mapping[str, ReadinessCheck] | None = None
) -> FastAPI:
    """The API. `readiness_checks` report on parts running in the same process (the worker under
    `python -m service up`); the readiness probe includes them."""
    settings = settings or get_settings()
    check_anonymous_exposure(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # The process's one runtime: every client, closed on shutdown and when start-up fails half-way.
        async with open_runtime(settings, role="api", readiness_checks=readiness_checks) as runtime:
            app.state.runtime = runtime
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
    for module in (
        requests,
        reports,
        health,
        metrics,
        compat,
        keys,
        usage,
        feedback,
        prometheus,
        webhooks,
        audit,
        owners,
        conversations,
    ):
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
    install_console(app)  # the operator console at /console (its own sign-in and sessions)
    declare_security(app, settings)
    return app


def create_app_from_env() -> FastAPI:
    """Entry point for uvicorn's factory mode (one per API worker process)."""
    settings = get_settings()
    configure_logging(settings)
    return create_app(settings)
