"""Health: liveness, readiness, and the full report (never secrets, never spending tokens).

- `GET /api/v1/health/live`: the process is up and its event loop answers. It checks no dependency,
  so an orchestrator does not restart a healthy process because the broker or database is away.
- `GET /api/v1/health/ready`: this process can accept work now — the database answers, the broker is
  reachable and has its topics (the broker monitor's view, at most BROKER_PROBE_INTERVAL_SECONDS
  old), and any in-process worker (`python -m service up`) has joined its group. 503 otherwise.
- `GET /api/v1/health` (and the seed's `/api/health`): the same plus the LLM backend, as a report.
"""

from __future__ import annotations

import asyncio
from typing import Any, cast

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text

from service.runtime import Runtime

router = APIRouter(prefix="/api/v1", tags=["health"])

_NOT_READY_RETRY_AFTER = "5"


def _runtime(app: FastAPI) -> Runtime:
    return cast(Runtime, app.state.runtime)


async def _database(app: FastAPI) -> dict[str, Any]:
    try:
        async with _runtime(app).sessions() as session:
            await asyncio.wait_for(session.execute(text("SELECT 1")), 3)
        return {"ok": True}
    except Exception as exc:
        return {"ok": False, "detail": type(exc).__name__}


def _broker(app: FastAPI) -> dict[str, Any]:
    report: dict[str, Any] = _runtime(app).monitor.report()
    return report


async def _llm(app: FastAPI) -> dict[str, Any]:
    try:  # the probe caches its answer briefly (LLM_HEALTH_CACHE_SECONDS) and spends no tokens
        return await asyncio.wait_for(_runtime(app).llm_health(), 10)
    except Exception as exc:
        return {"ok": False, "backend": _runtime(app).settings.llm_backend, "detail": type(exc).__name__}


def _in_process(app: FastAPI) -> dict[str, dict[str, Any]]:
    """Readiness of parts running in this process besides the API (the worker, under `up`)."""
    return {name: check() for name, check in _runtime(app).readiness_checks.items()}


async def health_report(app: FastAPI) -> dict[str, Any]:
    database, llm = await asyncio.gather(_database(app), _llm(app))
    broker = _broker(app)
    core_ok = database["ok"] and broker["ok"]
    return {
        "status": "ok" if core_ok and llm["ok"] else ("degraded" if core_ok else "unavailable"),
        "version": app.version,
        "components": {"database": database, "broker": broker, "llm": llm, **_in_process(app)},
    }


@router.get(
    "/health",
    summary="Health of the service and its dependencies",
    # Not the error envelope: a 503 carries the same report as a 200, saying which part is down.
    responses={503: {"description": "The core (database or broker) is down; the body is the report"}},
)
async def health(request: Request) -> JSONResponse:
    report = await health_report(request.app)
    return JSONResponse(report, status_code=503 if report["status"] == "unavailable" else 200)


@router.get("/health/live", summary="Liveness: the process is up and its event loop answers")
async def live() -> dict[str, str]:
    return {"status": "alive"}


@router.get("/health/ready", summary="Readiness: database, broker and this process can take work")
async def ready(request: Request) -> JSONResponse:
    app = request.app
    components = {"database": await _database(app), "broker": _broker(app), **_in_process(app)}
    ok = all(part["ok"] for part in components.values())
    return JSONResponse(
        {"status": "ready" if ok else "not_ready", "components": components},
        status_code=200 if ok else 503,
        headers=None if ok else {"Retry-After": _NOT_READY_RETRY_AFTER},
    )
