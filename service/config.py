"""The one settings object. Every field is an environment variable listed in `.env.example`."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

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
    # How often a worker looks for lost requests (queued but never delivered, or abandoned).
    sweep_interval_seconds: float = Field(30.0, ge=0.5)
    # A queued request untouched for this long is re-published (e.g. the broker lost it).
    requeue_after_seconds: int = Field(60, ge=1)
    # A request not finished within this many seconds of submission ends as `expired`.
    request_ttl_seconds: int = Field(86_400, ge=60)

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
    # Budgets per backend and worker process; 0 disables the limit.
    llm_requests_per_minute: int = Field(0, ge=0)
    llm_tokens_per_minute: int = Field(0, ge=0)
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

    # --- prompts and classification --------------------------------------------------------------
    classifier_llm_threshold: float = Field(0.55, ge=0, le=1)
    prompt_table_token_budget: int = Field(3_000, ge=100)

    # --- batches (issue 10) -----------------------------------------------------------------------
    # Batch lines travel on their own topic, so interactive requests never queue behind them.
    kafka_topic_requests_batch: str = "ai.requests.batch"
    # Batch lines one worker runs at once (None: three quarters of WORKER_CONCURRENCY), and the
    # lower cap while interactive requests are being served (one arrived within the last second).
    worker_batch_concurrency: int | None = Field(None, ge=1, le=10_000)
    worker_batch_concurrency_busy: int = Field(4, ge=1, le=10_000)
    # Lines of one owner released to the batch lane at once; owners are served round-robin, so a
    # small batch waits behind at most this many lines of each other owner.
    batch_owner_window: int = Field(500, ge=1, le=100_000)
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
