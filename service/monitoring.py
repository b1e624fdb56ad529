"""Prometheus metrics (prometheus-client), shared by the API, the worker and the webhook dispatcher.

Label values are bounded sets only — kind, lane, category, status, backend, model, outcome,
reason — never an owner, key or request id. With several API processes (`API_WORKERS` > 1) the
CLI points PROMETHEUS_MULTIPROC_DIR at a fresh directory before uvicorn forks, and `/metrics`
aggregates every process's files (prometheus-client's multi-process mode).
"""

from __future__ import annotations

import os
from datetime import datetime
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

from service.db.models import utcnow
from service.db.request_stats_repo import lane_of

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900, 3600)

REQUESTS_SUBMITTED = Counter(
    "gigaoffice_requests_submitted_total", "Requests accepted", ["kind", "lane", "category"]
)
REQUESTS_FINISHED = Counter(
    "gigaoffice_requests_finished_total",
    "Requests that reached a final status",
    ["kind", "lane", "category", "status"],
)
REQUEST_DURATION = Histogram(
    "gigaoffice_request_duration_seconds",
    "Submit to final status",
    ["kind", "status"],
    buckets=_LATENCY_BUCKETS,
)
LLM_LATENCY = Histogram(
    "gigaoffice_llm_call_seconds",
    "Time spent in LLM calls per request (all attempts)",
    ["backend", "model"],
    buckets=_LATENCY_BUCKETS,
)
LLM_TOKENS = Counter("gigaoffice_llm_tokens_total", "Tokens used", ["backend", "model", "type"])
LLM_RETRIES = Counter("gigaoffice_llm_retries_total", "LLM calls beyond the first per request", ["backend"])
QUEUE_DEPTH = Gauge("gigaoffice_queue_depth", "Queued requests per lane", ["lane"], multiprocess_mode="max")
# The retention purge (service/usecases/retention.py): rows removed by kind, and run durations.
PURGED_ROWS = Counter("gigaoffice_purged_rows_total", "Rows removed by the retention purge", ["kind"])
PURGE_SECONDS = Histogram("gigaoffice_purge_seconds", "Duration of one purge run", buckets=_LATENCY_BUCKETS)
CONSUMER_LAG = Gauge(
    "gigaoffice_consumer_lag", "Messages not yet consumed per topic", ["topic"], multiprocess_mode="max"
)
IN_FLIGHT = Gauge("gigaoffice_worker_in_flight", "Requests being processed", multiprocess_mode="livesum")
WEBHOOK_DELIVERIES = Counter(
    "gigaoffice_webhook_deliveries_total", "Webhook delivery attempts by outcome", ["outcome"]
)
# hit: answered from the answer cache; miss: made the LLM call; takeover: made it after a lost lead.
ANSWER_CACHE_LOOKUPS = Counter("gigaoffice_answer_cache_lookups_total", "Answer cache look-ups", ["outcome"])
REFUSALS = Counter("gigaoffice_refusals_total", "Requests refused by a rate limit or budget", ["reason"])
# Broker loss and readiness (issue 7): a standalone worker's health view is its metrics port.
BROKER_UP = Gauge(
    "gigaoffice_broker_up",
    "1 while the broker monitor finds the broker usable",
    ["role"],
    multiprocess_mode="min",
)
WORKER_CONSUMING = Gauge(
    "gigaoffice_worker_consuming",
    "1 once the worker joined its group and holds partitions",
    multiprocess_mode="min",
)
WAITERS = Gauge(
    "gigaoffice_status_waiters", "Long-polls, SSE streams and chat calls waiting", multiprocess_mode="livesum"
)


def _category(value: str | None) -> str:
    return value or "auto"


# Model names come from the provider's answers, and a chat or batch caller may name a model: a
# provider that echoes whatever it is asked would otherwise let callers mint label values without
# end (every one a time series, in this process and in Prometheus). The first few are kept.
MAX_MODEL_LABELS = 32
_MODEL_LABEL_LENGTH = 64
_models_seen: set[str] = set()


def _model(value: str | None) -> str:
    name = (value or "unknown")[:_MODEL_LABEL_LENGTH]
    if name in _models_seen:
        return name
    if len(_models_seen) >= MAX_MODEL_LABELS:
        return "other"
    _models_seen.add(name)
    return name


def request_submitted(kind: str, lane: str, category: str | None) -> None:
    REQUESTS_SUBMITTED.labels(kind, lane, _category(category)).inc()


def request_finished(change: Any) -> None:
    """From a requests_repo.StateChange, where the final state was committed."""
    lane = lane_of(change.batch_id)
    REQUESTS_FINISHED.labels(change.kind, lane, _category(change.category), change.status).inc()
    finished: datetime = change.finished_at or utcnow()
    REQUEST_DURATION.labels(change.kind, change.status).observe(
        max(0.0, (finished - change.created_at).total_seconds())
    )


def llm_used(accounting: Any) -> None:
    """From a requests_repo.LLMAccounting of a processed request."""
    if not accounting.calls or not accounting.backend:
        return
    backend, model = accounting.backend, _model(accounting.model)
    if accounting.latency_ms is not None:
        LLM_LATENCY.labels(backend, model).observe(accounting.latency_ms / 1000)
    LLM_TOKENS.labels(backend, model, "prompt").inc(accounting.prompt_tokens)
    LLM_TOKENS.labels(backend, model, "completion").inc(accounting.completion_tokens)
    if accounting.calls > 1:
        LLM_RETRIES.labels(backend).inc(accounting.calls - 1)


def exposition() -> tuple[bytes, str]:
    """The text format of this process's metrics, or of every process's in multi-process mode."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(), CONTENT_TYPE_LATEST


def serve_worker_metrics(port: int, host: str) -> tuple[Any, Any]:
    """A worker's own /metrics (prometheus-client's HTTP server, in a thread). No authentication,
    hence loopback by default (WORKER_METRICS_HOST). Returns (server, thread)."""
    from prometheus_client import start_http_server

    return start_http_server(port, addr=host)
