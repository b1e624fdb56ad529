"""`GET /metrics`: the Prometheus text format (operators' scrape target; not under /api).

The figures are service-wide (traffic, refusals, spend by model), so scraping needs an admin key
unless METRICS_PUBLIC is on; owner ids are never label values."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Response

from service.api.deps import require_metrics_reader
from service.monitoring import exposition

router = APIRouter(tags=["health"])


@router.get(
    "/metrics",
    summary="Prometheus metrics (admin key unless METRICS_PUBLIC)",
    response_class=Response,
    dependencies=[Depends(require_metrics_reader)],
)
async def prometheus_metrics() -> Response:
    body, content_type = exposition()
    return Response(body, media_type=content_type)
