"""The one settings object. Every field is an environment variable listed in `.env.example`."""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict, SettingsError
from sqlalchemy.engine import URL

BackendName = Literal["dryrun", "gigachat-cloud", "gigachat-mtls", "openai"]

# The seed's GIGACHAT_RUN_MODE values and the backend each one means.
RUN_MODE_TO_BACKEND: dict[str, BackendName] = {
    "dryrun": "dryrun",
    "cloud": "gigachat-cloud",
    "mtls": "gigachat-mtls",
}


class Settings(BaseSettings):
    # Empty values mean "not set", so a copied .env.example with blank secrets works as is.
    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", env_ignore_empty=True
    )

    # --- service -------------------------------------------------------------------------------
    log_level: str = "INFO"
    log_json: bool = False
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    api_workers: int = Field(1, ge=1, le=64)

    # --- database --------------------------------------------------------------------------------
    database_url: str = "sqlite+aiosqlite:///./data/gigaoffice.db"
    db_pool_size: int = Field(20, ge=1, le=500)
    db_echo: bool = False
    # Only read by the test-suite: the server on which it creates a throw-away database.
    test_database_url: str = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"

    # --- redis -----------------------------------------------------------------------------------
    # Optional. When set, limits that must hold across processes (per-key rate limits, backend
    # concurrency and rates) keep their counters here; unset, they hold per process only.
    redis_url: str | None = None

    # --- kafka -----------------------------------------------------------------------------------
    # Empty means "no external broker": `python -m service up` then starts an embedded Tansu broker.
    kafka_bootstrap_servers: str = ""
    kafka_topic_requests: str = "ai.requests"
    kafka_topic_dead_letter: str = "ai.requests.dlq"
    # Completion events (a request reached a final status), keyed by request id: the seed's name.
    kafka_topic_responses: str = "ai.responses"
    kafka_consumer_group: str = "gigaoffice-workers"
    kafka_topic_partitions: int = Field(6, ge=1, le=1000)
    kafka_replication_factor: int = Field(1, ge=1, le=10)
    kafka_client_id: str = "gigaoffice"
    kafka_request_timeout_ms: int = Field(10_000, ge=100)

    # --- worker ----------------------------------------------------------------------------------
    worker_concurrency: int = Field(64, ge=1, le=10_000)
    worker_max_attempts: int = Field(3, ge=1, le=50)
    worker_commit_interval_ms: int = Field(500, ge=10)
    worker_shutdown_grace_seconds: float = Field(20.0, ge=0)
    # A `processing` row whose worker vanished is taken back after this long.
    worker_lease_seconds: int = Field(300, ge=5)
    # How long a worker lets the broker hold an empty fetch (Tansu always waits this long, so it
    # bounds how late an idle worker sees a new request; each fetch costs a little CPU when idle).
    worker_fetch_max_wait_ms: int = Field(10, ge=1, le=5000)
    # How often a worker looks for lost requests (queued but never delivered, or abandoned).
    sweep_interval_seconds: float = Field(30.0, ge=0.5)
    # A queued request untouched for this long is re-published (e.g. the broker lost it).
    requeue_after_seconds: int = Field(60, ge=1)
    # A request not finished within this many seconds of submission ends as `expired`.
    request_ttl_seconds: int = Field(86_400, ge=60)

    # --- data lifecycle (docs/lifecycle.md) -----------------------------------------------------
    # Days a request's input and result are kept after it ended (a key may set fewer); finished
    # batches go with their output and error files. Usage survives as daily aggregates.
    retention_days: int = Field(90, ge=1, le=36_500)
    # Rows deleted per purge transaction (each one is short: bounded lock time).
    purge_batch_rows: int = Field(1_000, ge=1, le=50_000)
    # Rows the sweeper's purge deletes at most per sweep (the rest waits for the next sweep).
    purge_max_rows_per_sweep: int = Field(50_000, ge=0)

    # --- request limits --------------------------------------------------------------------------
    max_query_chars: int = Field(4_000, ge=1)
    max_input_cells: int = Field(10_000, ge=1)
    max_cell_chars: int = Field(2_000, ge=1)
    max_input_chars: int = Field(200_000, ge=1)
    max_description_chars: int = Field(20_000, ge=1)
    long_poll_max_seconds: float = Field(30.0, ge=0)

    # --- LLM: common -----------------------------------------------------------------------------
    llm_backend: BackendName = "dryrun"
    llm_fallback_backend: BackendName | None = None
    llm_timeout_seconds: float = Field(60.0, gt=0)
    llm_temperature: float = Field(0.2, ge=0, le=2)
    llm_max_tokens: int = Field(2048, ge=1)
    llm_retry_base_seconds: float = Field(0.5, ge=0)
    llm_retry_max_seconds: float = Field(30.0, ge=0)
    # Calls per request and backend (first try included); then the request fails with the last error.
    llm_max_attempts: int = Field(4, ge=1, le=20)
    # After the primary fails retryably on all attempts, send calls to the fallback for this long.
    llm_fallback_cooldown_seconds: float = Field(30.0, ge=0)
    # Budgets per backend; 0 disables the limit. With REDIS_URL they hold across all processes
    # (workers and API together), otherwise per process.
    llm_requests_per_minute: int = Field(0, ge=0)
    llm_tokens_per_minute: int = Field(0, ge=0)
    # Calls in flight per backend (e.g. GigaChat's concurrent streams); 0 = no cap. Shared like the above.
    llm_max_concurrency: int = Field(0, ge=0, le=10_000)
    # Redis key prefix of the shared capacity; deployments sharing one Redis need distinct prefixes.
    llm_capacity_key_prefix: str = Field("gigaoffice:llm-capacity", min_length=1, max_length=200)
    llm_health_cache_seconds: float = Field(30.0, ge=0)

    # --- LLM: dryrun -----------------------------------------------------------------------------
    dryrun_latency_ms: int = Field(0, ge=0)
    dryrun_failure_rate: float = Field(0.0, ge=0, le=1)

    # --- LLM: GigaChat (cloud and mTLS) ----------------------------------------------------------
    gigachat_run_mode: Literal["dryrun", "cloud", "mtls"] | None = None  # seed name for LLM_BACKEND
    gigachat_credentials: SecretStr | None = None
    gigachat_scope: str = "GIGACHAT_API_PERS"
    gigachat_model: str = "GigaChat"
    gigachat_base_url: str = "https://gigachat.devices.sberbank.ru/api/v1"
    gigachat_auth_url: str = "https://ngw.devices.sberbank.ru:9443/api/v2/oauth"
    # Chat contract: v2 (/api/v2/chat/completions), v1 (/api/v1/chat/completions, older on-premises
    # servers), or auto: v2, and v1 for the rest of the process once v2's path answers 404.
    gigachat_api_version: Literal["auto", "v1", "v2"] = "auto"
    gigachat_ca_bundle_file: Path | None = None
    gigachat_verify_ssl_certs: bool = True
    gigachat_mtls_ca_bundle_file: Path | None = None
    gigachat_mtls_cert_file: Path | None = None
    gigachat_mtls_key_file: Path | None = None
    gigachat_mtls_key_file_password: SecretStr | None = None
    gigachat_max_requests_per_minute: int | None = Field(None, ge=0)
    gigachat_max_tokens_per_request: int | None = Field(None, ge=1)

    # --- LLM: OpenAI-compatible ------------------------------------------------------------------
    openai_base_url: str = "https://api.openai.com/v1"
    openai_api_key: SecretStr | None = None
    openai_model: str = "gpt-4o-mini"
    openai_organization: str | None = None
    # JSON object of extra HTTP headers, e.g. {"HTTP-Referer": "https://example.org"} for OpenRouter.
    openai_extra_headers: dict[str, str] = Field(default_factory=dict)
    # Trust store for this backend only (PEM), e.g. a private CA in front of vLLM; unset: the system's.
    openai_ca_bundle_file: Path | None = None
    openai_verify_ssl_certs: bool = True

    # --- front door: status events, live status, webhooks, Prometheus (issue 11) ----------------
    # How long the API's status hub lets the broker hold an empty fetch: bounds how late a waiter
    # wakes (Tansu always waits this long), and costs that many empty fetches a second when idle.
    events_fetch_max_wait_ms: int = Field(5, ge=1, le=5000)
    # SSE status streams: a keep-alive comment this often; a stream ends after this long (the client
    # reconnects with Last-Event-ID), which is also when it re-reads the row in case an event was lost.
    sse_keepalive_seconds: float = Field(15.0, gt=0)
    sse_max_seconds: float = Field(300.0, gt=0)
    # Connections one owner may hold open at once in an API process: SSE streams (status, batch and
    # streamed chat) and long-polls (`?wait=`, `Prefer: wait`, a chat completion's wait); past the
    # cap, 429 with Retry-After. 0: no cap.
    sse_max_streams_per_owner: int = Field(20, ge=0)
    long_poll_max_per_owner: int = Field(100, ge=0)
    # A worker serves its Prometheus metrics on this port (0: not served; `up` shows them at /metrics).
    worker_metrics_port: int = Field(0, ge=0, le=65535)
    # ... on this address. The port has no authentication: loopback unless a scraper elsewhere needs
    # it (docker-compose sets 0.0.0.0 on its private network).
    worker_metrics_host: str = "127.0.0.1"
    # How often a worker refreshes the queue-depth and consumer-lag gauges.
    metrics_refresh_seconds: float = Field(15.0, gt=0)
    # Webhooks. Per-request webhooks are signed with these `whsec_…` secrets (comma-separated; all
    # sign during a rotation); unset, per-request webhooks are refused. Owner endpoints have their own.
    webhook_secrets: SecretStr | None = None
    # On-premises receivers on private networks; off, such targets are refused (SSRF guard).
    webhook_allow_private_targets: bool = False
    webhook_consumer_group: str = "gigaoffice-webhooks"
    webhook_timeout_seconds: float = Field(10.0, gt=0, le=60)
    webhook_max_attempts: int = Field(8, ge=1, le=50)
    webhook_retry_base_seconds: float = Field(5.0, ge=0)
    webhook_retry_max_seconds: float = Field(3600.0, ge=0)
    webhook_concurrency: int = Field(32, ge=1, le=1000)
    # How often an idle dispatcher looks for retries that became due.
    webhook_poll_seconds: float = Field(1.0, gt=0)
    # GET /v1/models: the backends' model lists are fetched at most this often per API process.
    models_cache_seconds: float = Field(300.0, ge=0)
    # GET /v1/models without a key (only the model names; chat still needs one).
    models_public: bool = False
    # POST /v1/chat/completions holds the call this long for the answer (a stream sends keep-alives
    # meanwhile), then answers OpenAI's 504 `timeout`; the request goes on.
    chat_wait_seconds: float = Field(180.0, gt=0, le=3600)

    # --- prompts and classification --------------------------------------------------------------
    classifier_llm_threshold: float = Field(0.65, ge=0, le=1)
    prompt_table_token_budget: int = Field(3_000, ge=100)

    # --- broker loss and recovery ----------------------------------------------------------------
    # Every process asks the broker for its metadata this often; one failed probe reports it down
    # (readiness 503, submits 503 at once) until a probe succeeds and the topics exist again.
    broker_probe_interval_seconds: float = Field(1.0, gt=0, le=60)
    broker_probe_timeout_seconds: float = Field(2.0, gt=0, le=60)
    # A repeated log line (same condition) is written at most once per this interval, with a count.
    log_repeat_interval_seconds: float = Field(10.0, ge=0)
    # Consumer-group session: a member silent this long is dropped. Kafka's floor is 6000 by
    # default; Tansu lets a member join after half of it, so it also bounds the worker's start.
    kafka_session_timeout_ms: int = Field(6_000, ge=1_000, le=300_000)
    # --- callers: API keys, anonymous access, rate limits, budgets -------------------------------
    # Without a key a caller gets 401, unless anonymous access is on: then key-less callers share
    # the owner "anonymous" and the anonymous_* limits. `python -m service up` turns it on when it
    # listens on loopback; on any other address start-up is refused unless the override is set too.
    allow_anonymous: bool = False
    allow_anonymous_on_public_host: bool = False
    anonymous_requests_per_minute: int = Field(60, ge=0)
    anonymous_daily_tokens: int | None = Field(None, ge=0)
    anonymous_monthly_tokens: int | None = Field(None, ge=0)
    # A verified key is trusted for this long without a database read; a revocation made in another
    # process takes effect within this time (at once in the process that revoked it).
    api_key_cache_seconds: float = Field(30.0, ge=0)
    # 401s for wrong keys (malformed, unknown, revoked) one client address may collect per minute (per
    # API process); then 429 with Retry-After until the minute is over, without key lookups. 0: off.
    auth_failures_per_minute: int = Field(30, ge=0)
    # last_used_at of keys is written in one batched UPDATE this often, not on every request.
    api_key_last_used_flush_seconds: float = Field(30.0, gt=0)
    # Requests per minute on submit and classify for keys without a figure of their own; 0 = none.
    rate_limit_requests_per_minute: int = Field(600, ge=0)
    # Redis (REDIS_URL) unreachable: True lets requests through unlimited, False answers 503.
    rate_limit_fail_open: bool = True
    rate_limit_key_prefix: str = "gigaoffice-ratelimit"
    # Tokens each queued or processing request counts against a budget before its real figure is
    # known (see README, "Budgets").
    budget_reserve_tokens_per_request: int = Field(1000, ge=0)
    # JSON object: model name -> price per 1000 tokens, for the cost figure of /api/v1/usage.
    llm_price_per_1k_tokens: dict[str, float] = Field(default_factory=dict)

    # --- operator console (/console, issue 16) ----------------------------------------------------
    # A signed-in console session ends this long after sign-in (signing out ends it at once).
    console_session_minutes: int = Field(480, ge=1, le=43_200)
    # Failed console sign-ins allowed per client address per minute; more answer 429.
    console_signin_failures_per_minute: int = Field(5, ge=1)
    # How long the overview reuses the broker's figures (consumer lag, DLQ depth): one look-up per
    # process per period, however many operators watch.
    console_broker_cache_seconds: float = Field(5.0, ge=0)

    # --- seed compatibility and deployment (issue 8) ---------------------------------------------
    # The seed's database settings: they build DATABASE_URL (PostgreSQL) when it is not set.
    db_host: str | None = None
    db_port: int = Field(5432, ge=1, le=65535)
    db_name: str | None = None
    db_user: str | None = None
    db_password: SecretStr | None = None
    # Also log to this file (stderr stays on), rotated and pruned by loguru, e.g. logs/gigaoffice.log.
    log_file: Path | None = None
    log_rotation: str = "00:00"  # daily at midnight, as the seed did; or "100 MB", "1 week"
    log_retention: str = "14 days"  # or a count of files, e.g. "10"
    # Browser plugins run in the editor's page. Comma-separated origins; empty = no CORS headers.
    cors_allow_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    cors_allow_credentials: bool = False
    # The service's address as users' editors reach it, pre-filled in the packaged plugin
    # (GET /plugin/gigaoffice.plugin); empty = the base URL of the request that downloads it.
    public_url: str = Field("", max_length=2_000, pattern=r"^(https?://[^\s]+)?$")
    # Model names sent to the primary backend; empty = its configured model (GIGACHAT_MODEL, ...).
    llm_classify_model: str | None = None  # seed name: GIGACHAT_CLASSIFY_MODEL
    llm_generate_model: str | None = None  # seed name: GIGACHAT_GENERATE_MODEL
    # JSON object {category: model}, e.g. {"process-analysis": "GigaChat-Max"}; wins over the above.
    llm_model_by_category: dict[str, str] = Field(default_factory=dict)
    gigachat_classify_model: str | None = None
    gigachat_generate_model: str | None = None

    # --- security review ---------------------------------------------------------------------------
    # GET /metrics shows service-wide figures (traffic, refusals, spend by model): it needs an admin
    # key unless this is on (a scraper on a private network without credentials).
    metrics_public: bool = False
    # Each of an owner's default webhook endpoints gets a POST for every request of theirs that ends:
    # without a cap, one key could make the service flood any public URL (N endpoints × requests).
    webhook_max_endpoints_per_owner: int = Field(10, ge=1, le=1000)
    # Bodies are read before the API key is checked: larger ones get 413 (multipart uploads excepted,
    # their routes have limits of their own). 8 MiB holds the largest valid JSON input many times.
    max_request_body_bytes: int = Field(8 * 1024 * 1024, ge=1024)

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

    @field_validator("cors_allow_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                return json.loads(text)
            return [part.strip().rstrip("/") for part in text.split(",") if part.strip()]
        return value

    @model_validator(mode="after")
    def _apply_seed_deployment(self) -> Settings:
        if "database_url" not in self.model_fields_set and self.db_host:
            self.database_url = URL.create(
                "postgresql+asyncpg",
                username=self.db_user,
                password=self.db_password.get_secret_value() if self.db_password else None,
                host=self.db_host,
                port=self.db_port,
                database=self.db_name,
            ).render_as_string(hide_password=False)
        if self.gigachat_classify_model and "llm_classify_model" not in self.model_fields_set:
            self.llm_classify_model = self.gigachat_classify_model
        if self.gigachat_generate_model and "llm_generate_model" not in self.model_fields_set:
            self.llm_generate_model = self.gigachat_generate_model
        if "*" in self.cors_allow_origins and self.cors_allow_credentials:
            # A wildcard with credentials would let every site act with the user's cookies.
            raise ValueError("CORS_ALLOW_CREDENTIALS cannot be combined with CORS_ALLOW_ORIGINS=*")
        return self

    def answer_model(self, category: str | None) -> str | None:
        """The model for a request's answer: per category, else the generate model, else None."""
        return self.llm_model_by_category.get(category or "") or self.llm_generate_model

    # --- batches (issue 10) -----------------------------------------------------------------------
    # Batch lines travel on their own topic, so interactive requests never queue behind them.
    kafka_topic_requests_batch: str = "ai.requests.batch"
    # Batch lines one worker runs at once (None: three quarters of WORKER_CONCURRENCY), and the
    # lower cap while interactive requests are being served (one arrived within the last second).
    worker_batch_concurrency: int | None = Field(None, ge=1, le=10_000)
    worker_batch_concurrency_busy: int = Field(8, ge=1, le=10_000)
    # Lines of one owner released to the batch lane at once; owners are served round-robin, so a
    # small batch waits behind at most this many lines of each other owner.
    batch_owner_window: int = Field(200, ge=1, le=100_000)
    batch_feed_interval_seconds: float = Field(0.1, ge=0.01, le=60)
    batch_max_lines: int = Field(50_000, ge=1)
    batch_max_bytes: int = Field(200 * 1024 * 1024, ge=1)

    @property
    def batch_concurrency(self) -> int:
        return self.worker_batch_concurrency or max(1, self.worker_concurrency * 3 // 4)

    @field_validator("kafka_bootstrap_servers")
    @classmethod
    def _strip_servers(cls, value: str) -> str:
        return ",".join(part.strip() for part in value.split(",") if part.strip())

    @model_validator(mode="after")
    def _apply_seed_names(self) -> Settings:
        # The seed's GIGACHAT_RUN_MODE chooses the backend unless LLM_BACKEND is set explicitly.
        if self.gigachat_run_mode and "llm_backend" not in self.model_fields_set:
            self.llm_backend = RUN_MODE_TO_BACKEND[self.gigachat_run_mode]
        if self.gigachat_max_requests_per_minute is not None and "llm_requests_per_minute" not in (
            self.model_fields_set
        ):
            self.llm_requests_per_minute = self.gigachat_max_requests_per_minute
        if self.gigachat_max_tokens_per_request is not None and "llm_max_tokens" not in (
            self.model_fields_set
        ):
            self.llm_max_tokens = self.gigachat_max_tokens_per_request
        if self.llm_fallback_backend == self.llm_backend:
            raise ValueError("LLM_FALLBACK_BACKEND must differ from LLM_BACKEND")
        return self

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()


# --- start-up errors (input branch) ------------------------------------------------------------


def settings_problems(exc: ValidationError | SettingsError) -> list[str]:
    """One line per problem, naming the environment variable, for start-up to print instead of a
    traceback. A secret's value is never repeated."""
    if isinstance(exc, SettingsError):  # a value that is not valid JSON for a JSON-typed setting
        field = str(exc).split('"')[1] if str(exc).count('"') >= 2 else ""
        name = field.upper() or "settings"
        cause = f": {exc.__cause__}" if exc.__cause__ else ""
        return [f"{name}: not valid JSON{cause}"]
    lines = []
    for error in exc.errors():
        field = str(error["loc"][0]) if error["loc"] else ""
        info = Settings.model_fields.get(field)
        secret = info is not None and "SecretStr" in str(info.annotation)
        shown = "" if secret or "input" not in error or not field else f" (got {error['input']!r})"
        message = str(error["msg"]).removeprefix("Value error, ")
        lines.append(f"{field.upper() or 'settings'}: {message}{shown}")
    return lines
