"""Health: database, broker and LLM backend reachability (never secrets, never spending tokens)."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text

router = APIRouter(prefix="/api/v1", tags=["health"])


async def _database(app: FastAPI) -> dict[str, Any]:
    try:
        async with app.state.clients.sessions() as session:
            await asyncio.wait_for(session.execute(text("SELECT 1")), 3)
        return {"ok": True}
    except Exception as exc:
        return {"ok": False, "detail": type(exc).__name__}


async def _broker(app: FastAPI) -> dict[str, Any]:
    try:
        partitions = await asyncio.wait_for(app.state.clients.publisher.partitions(), 3)
        return {"ok": bool(partitions), "partitions": len(partitions)}
    except Exception as exc:
        return {"ok": False, "detail": type(exc).__name__}


async def _llm(app: FastAPI) -> dict[str, Any]:
    try:  # the probe caches its answer briefly (LLM_HEALTH_CACHE_SECONDS) and spends no tokens
        return await asyncio.wait_for(app.state.llm_health(), 10)
    except Exception as exc:
        return {"ok": False, "backend": app.state.clients.settings.llm_backend, "detail": type(exc).__name__}


async def health_report(app: FastAPI) -> dict[str, Any]:
    database, broker, llm = await asyncio.gather(_database(app), _broker(app), _llm(app))
    core_ok = database["ok"] and broker["ok"]
    return {
        "status": "ok" if core_ok and llm["ok"] else ("degraded" if core_ok else "unavailable"),
        "version": app.version,
        "components": {"database": database, "broker": broker, "llm": llm},
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
