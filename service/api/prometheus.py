"""`GET /metrics`: the Prometheus text format (operators' scrape target; not under /api)."""

from __future__ import annotations

from fastapi import APIRouter, Response

from service.monitoring import exposition

router = APIRouter(tags=["health"])


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def prometheus_metrics() -> Response:
    body, content_type = exposition()
    return Response(body, media_type=content_type)
