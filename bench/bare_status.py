"""The yardstick of the status-read figure: a bare FastAPI endpoint doing the same one-row asyncpg
read as `GET /api/v1/requests/{id}` (same pool opener, same status columns, same uvicorn settings)
with nothing else — no authentication, no dependencies, no response model. The bench loads both
side by side; the API's share of this endpoint's rate is what per-request machinery costs.

    DATABASE_URL=postgresql+asyncpg://… PORT=8123 python -m bench.bare_status
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import orjson
import uvicorn
from fastapi import FastAPI, Request, Response

from service.db.pgpool import open_pool
from service.db.records import STATUS_FIELD_NAMES

SQL = f"SELECT {', '.join(STATUS_FIELD_NAMES)} FROM requests WHERE id = $1"


def create_bare_app(database_url: str, pool_size: int) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.pool = await open_pool(database_url, pool_size)
        yield
        await app.state.pool.close()

    app = FastAPI(lifespan=lifespan, telemetry={"tracing": False, "metrics": False, "logs": False})

    @app.get("/api/v1/requests/{request_id}")
    async def status(request_id: uuid.UUID, request: Request) -> Response:
        row = await request.app.state.pool.fetchrow(SQL, request_id)
        if row is None:
            return Response(b'{"error":"not found"}', 404, media_type="application/json")
        return Response(orjson.dumps(dict(row), default=str), media_type="application/json")

    @app.get("/api/v1/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    return app


def main() -> None:
    app = create_bare_app(os.environ["DATABASE_URL"], int(os.environ.get("DB_POOL_SIZE", "20")))
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=int(os.environ["PORT"]),
        log_level="warning",
        access_log=False,
        loop="uvloop",
        http="httptools",
    )


if __name__ == "__main__":
    main()
