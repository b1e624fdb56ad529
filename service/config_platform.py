"""Settings groups of the platform the service runs on: server, database, Redis, Kafka, workers,
metrics, logging. `service.config.Settings` inherits them (see its docstring for why mixins).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, Field, SecretStr, field_validator
from pydantic_settings import NoDecode


class ServerSettings(BaseModel):
    """HTTP server: where the API listens and what it lets in."""

    host: str = Field("127.0.0.1", description="Address the API listens on.")
    port: int = Field(8000, ge=1, le=65535, description="Port the API listens on.")
    api_workers: int = Field(1, ge=1, le=64, description="uvicorn processes for `python -m service api`.")
    cors_allow_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Browser origins allowed to call the API (CORS), comma-separated, e.g. "
        "`https://office.example.org`; `*` for any. Empty: no CORS headers (browser plugins run "
        "in the editor's page).",
    )
    cors_allow_credentials: bool = Field(
        False, description="Let those origins send cookies/credentials. Refused with `*`."
    )
    public_url: str = Field(
        "",
        max_length=2_000,
        pattern=r"^(https?://[^\s]+)?$",
        description="The service's address as users' editors reach it "
        "(e.g. `https://gigaoffice.example.org`), written into the plugin package served at "
        "`/plugin/gigaoffice.plugin`. Empty: the address the package was downloaded from.",
    )
    # 8 MiB holds the largest valid JSON input many times.
    max_request_body_bytes: int = Field(
        8 * 1024 * 1024,
        ge=1024,
        description="Bodies are read before the API key is checked: larger ones get 413 "
        "(multipart uploads excepted, their routes have limits of their own).",
    )

    @field_validator("cors_allow_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                return json.loads(text)
            return [part.strip().rstrip("/") for part in text.split(",") if part.strip()]
        return value


class DatabaseSettings(BaseModel):
    """Database: the source of truth (PostgreSQL in production, SQLite embedded)."""

    database_url: str = Field(
        "sqlite+aiosqlite:///./data/gigaoffice.db",
        description="SQLAlchemy URL. Embedded default: a SQLite file. Production: "
        "`postgresql+asyncpg://user:pass@host/db`.",
    )
    db_pool_size: int = Field(
        20,
        ge=1,
        le=500,
        description="Connections per pool. On PostgreSQL an API process has two pools (SQLAlchemy, "
        "plus asyncpg for submits and status reads) and may overflow the first by as much again; "
        "size `max_connections` for it (see Operations, capacity).",
    )
    db_echo: bool = Field(False, description="Log every SQL statement (debugging only).")
    test_database_url: str = Field(
        "postgresql+asyncpg://postgres@127.0.0.1:5432/test",
        description="Tests only: the PostgreSQL server on which the suite creates (and drops) a "
        "throw-away database.",
    )
    # The seed's database settings: they build DATABASE_URL (PostgreSQL) when it is not set.
    db_host: str | None = Field(
        None,
        description="Seed name: with DB_PORT, DB_NAME, DB_USER, DB_PASSWORD it makes "
        "`postgresql+asyncpg://DB_USER:DB_PASSWORD@DB_HOST:DB_PORT/DB_NAME` when DATABASE_URL is not set.",
    )
    db_port: int = Field(5432, ge=1, le=65535, description="Seed name: see DB_HOST.")
    db_name: str | None = Field(None, description="Seed name: see DB_HOST.")
    db_user: str | None = Field(None, description="Seed name: see DB_HOST.")
    db_password: SecretStr | None = Field(None, description="Seed name: see DB_HOST. Secret.")


class RedisSettings(BaseModel):
    """Redis (optional): limits that must hold across processes."""

    redis_url: str | None = Field(
        None,
        description="e.g. `redis://127.0.0.1:6379/0`. Per-key rate limits and the LLM backend's "
        "shared concurrency and rates keep their counters here. Unset: they hold per process only.",
    )


class KafkaSettings(BaseModel):
    """Kafka: topics, consumer groups and the broker probe."""

    kafka_bootstrap_servers: str = Field(
        "",
        description="Comma-separated brokers. Empty means no external broker: `python -m service up` "
        "(make run) then starts an embedded Tansu broker; `api` and `worker` require it.",
    )
    kafka_topic_requests: str = Field(
        "ai.requests", description="Topic of interactive requests (served before batch lines)."
    )
    # Batch lines travel on their own topic, so interactive requests never queue behind them.
    kafka_topic_requests_batch: str = Field(
        "ai.requests.batch", description="Topic of batch lines (the batch lane)."
    )
    kafka_topic_dead_letter: str = Field(
        "ai.requests.dlq", description="Messages that cannot be processed (undecodable, out of attempts)."
    )
    kafka_topic_responses: str = Field(
        "ai.responses",
        description="Completion events: one per request that reached a final status, keyed by request "
        "id (the seed's name).",
    )
    kafka_consumer_group: str = Field("gigaoffice-workers", description="Consumer group of the workers.")
    kafka_topic_partitions: int = Field(
        6,
        ge=1,
        le=1000,
        description="Partitions of the topics the service creates: the upper bound of useful worker "
        "processes per lane.",
    )
    kafka_replication_factor: int = Field(1, ge=1, le=10, description="Replication of created topics.")
    kafka_client_id: str = Field("gigaoffice", description="Client id sent to the broker.")
    kafka_request_timeout_ms: int = Field(10_000, ge=100, description="Timeout of one broker request.")
    # Kafka's floor is 6000 by default; Tansu lets a member join after half of it.
    kafka_session_timeout_ms: int = Field(
        6_000,
        ge=1_000,
        le=300_000,
        description="Consumer-group session: a member silent this long is dropped. Tansu lets a member "
        "join after half of it, so it bounds a worker's start (6000: ~3 s).",
    )
    broker_probe_interval_seconds: float = Field(
        1.0,
        gt=0,
        le=60,
        description="Every process asks the broker for its metadata this often; one failed probe "
        "reports it down (readiness 503, submits 503 at once) until a probe succeeds and the topics "
        "exist again.",
    )
    broker_probe_timeout_seconds: float = Field(2.0, gt=0, le=60, description="Timeout of one probe.")

    @field_validator("kafka_bootstrap_servers")
    @classmethod
    def _strip_servers(cls, value: str) -> str:
        return ",".join(part.strip() for part in value.split(",") if part.strip())


class WorkerSettings(BaseModel):
    """Workers: concurrency, attempts, leases and the sweeper."""

    worker_concurrency: int = Field(
        64,
        ge=1,
        le=10_000,
        description="Requests one worker process handles at once (LLM calls overlap; rows are claimed "
        "one by one).",
    )
    worker_max_attempts: int = Field(
        3,
        ge=1,
        le=50,
        description="Processing attempts of one request (after a worker died mid-way) before it fails.",
    )
    worker_commit_interval_ms: int = Field(
        500, ge=10, description="How often consumed offsets are committed."
    )
    worker_shutdown_grace_seconds: float = Field(
        20.0,
        ge=0,
        description="On SIGTERM, how long in-flight requests may finish before they are handed back "
        "to the queue.",
    )
    worker_lease_seconds: int = Field(
        300,
        ge=5,
        description="A `processing` request whose worker vanished is taken back after this long. "
        "Processing itself is cut off at 90 % of it minus 5 s (error `processing_timeout`).",
    )
    # Tansu always waits this long; each empty fetch costs a little CPU when idle.
    worker_fetch_max_wait_ms: int = Field(
        10,
        ge=1,
        le=5000,
        description="How long a worker lets the broker hold an empty fetch: bounds how late an idle "
        "worker sees a new request (lower: faster answers, more idle fetches).",
    )
    sweep_interval_seconds: float = Field(
        30.0,
        ge=0.5,
        description="How often a worker looks for lost requests (queued but never delivered, or abandoned).",
    )
    requeue_after_seconds: int = Field(
        60,
        ge=1,
        description="A queued request untouched this long is published again (e.g. the broker lost it).",
    )
    request_ttl_seconds: int = Field(
        86_400, ge=60, description="A request not finished this long after submission ends as `expired`."
    )
    # Data lifecycle (docs/lifecycle.md), run by the sweeper.
    retention_days: int = Field(
        90, ge=1, le=36_500, description="Days a finished request is kept (a key may set fewer)."
    )
    purge_batch_rows: int = Field(1_000, ge=1, le=50_000, description="Rows per purge transaction.")
    purge_max_rows_per_sweep: int = Field(
        50_000, ge=0, description="Requests purged per sweep at most (0: only `python -m service purge`)."
    )


class MetricsSettings(BaseModel):
    """Metrics and tracing: Prometheus endpoints and gauges, OpenTelemetry export."""

    worker_metrics_port: int = Field(
        0,
        ge=0,
        le=65535,
        description="A worker serves its Prometheus metrics on this port; 0: not served (`up` shows all "
        "at /metrics).",
    )
    # The port has no authentication (docker-compose and deploy/ set 0.0.0.0 on a private network).
    worker_metrics_host: str = Field(
        "127.0.0.1",
        description="Address of the worker's metrics port: loopback unless a scraper on another host "
        "needs it.",
    )
    metrics_refresh_seconds: float = Field(
        15.0, gt=0, description="How often a worker refreshes the queue-depth and consumer-lag gauges."
    )
    metrics_public: bool = Field(
        False,
        description="`GET /metrics` shows service-wide figures and needs an admin key unless this is "
        "true (a scraper on a private network without credentials).",
    )
    # Unset: no SDK provider is installed and nothing is carried in messages (service/tracing.py).
    otel_exporter_otlp_endpoint: str | None = Field(
        None,
        description="OTLP/HTTP collector for OpenTelemetry traces, e.g. http://127.0.0.1:4318; unset: "
        "tracing is off.",
    )
    otel_service_name: str = Field(
        "gigaoffice", description="`service.name` of the exported spans (the resource attribute)."
    )


class LoggingSettings(BaseModel):
    """Logging."""

    log_level: str = Field(
        "INFO", description="TRACE, DEBUG, INFO, WARNING, ERROR or CRITICAL, in any case (the seed's `info`)."
    )
    log_json: bool = Field(
        False, description="One JSON object per log line (for log shippers) instead of human-readable lines."
    )
    log_file: Path | None = Field(
        None,
        description="Also log to this file (stderr stays on), rotated and pruned, "
        "e.g. `logs/gigaoffice.log`.",
    )
    log_rotation: str = Field(
        "00:00",
        description='When the file is rotated: a time of day ("00:00" = daily, as the seed did), a size '
        '("100 MB") or a period ("1 week").',
    )
    log_retention: str = Field(
        "14 days", description='How long rotated files are kept ("14 days") or how many ("10").'
    )
    log_repeat_interval_seconds: float = Field(
        10.0,
        ge=0,
        description="A repeated log line (same condition) is written at most once per interval, with "
        "the count of the ones suppressed.",
    )

    @field_validator("log_level", mode="before")
    @classmethod
    def _level_any_case(cls, value: object) -> object:
        # The seed's .env says LOG_LEVEL=info; loguru wants INFO, uvicorn info (levels both know).
        if isinstance(value, str):
            level = value.strip().upper()
            level = {"WARN": "WARNING", "FATAL": "CRITICAL"}.get(level, level)
            if level not in ("TRACE", "DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
                raise ValueError(f"unknown log level {value!r}")
            return level
        return value
