"""Settings groups of the LLM backends: common (choice, retries, budgets, models), dryrun, GigaChat,
OpenAI-compatible. `service.config.Settings` inherits them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, Field, SecretStr, field_validator
from pydantic_settings import NoDecode

BackendName = Literal["dryrun", "gigachat-cloud", "gigachat-mtls", "openai"]


class LlmSettings(BaseModel):
    """LLM, common to every backend: choice, retries, budgets and models."""

    llm_backend: BackendName = Field(
        "dryrun",
        description="dryrun | gigachat-cloud | gigachat-mtls | openai. The seed's GIGACHAT_RUN_MODE "
        "applies when this is not set.",
    )
    llm_fallback_backend: BackendName | None = Field(
        None, description="Used when the primary keeps failing with retryable errors (empty: none)."
    )
    llm_timeout_seconds: float = Field(60.0, gt=0, description="Timeout of one LLM call.")
    llm_temperature: float = Field(0.2, ge=0, le=2, description="Default sampling temperature.")
    llm_max_tokens: int = Field(
        2048,
        ge=1,
        description="Default answer length in tokens; GIGACHAT_MAX_TOKENS_PER_REQUEST sets it when "
        "this is not set.",
    )
    llm_retry_base_seconds: float = Field(
        0.5, ge=0, description="First back-off of a retried call (with jitter)."
    )
    llm_retry_max_seconds: float = Field(30.0, ge=0, description="Longest back-off between retried calls.")
    llm_max_attempts: int = Field(
        4,
        ge=1,
        le=20,
        description="Calls per request and backend (first try included) for retryable errors; then the "
        "request fails with the last error.",
    )
    llm_fallback_cooldown_seconds: float = Field(
        30.0,
        ge=0,
        description="After the primary fails retryably on all attempts, calls go to the fallback for "
        "this long.",
    )
    llm_requests_per_minute: int = Field(
        0,
        ge=0,
        description="Calls per minute per backend; 0 = unlimited. GIGACHAT_MAX_REQUESTS_PER_MINUTE sets "
        "it. With REDIS_URL it holds across all processes (workers and API together), else per process.",
    )
    llm_tokens_per_minute: int = Field(
        0, ge=0, description="Tokens per minute per backend; 0 = unlimited. Shared like the above."
    )
    llm_max_concurrency: int = Field(
        0,
        ge=0,
        le=10_000,
        description="Calls in flight per backend (GigaChat: 10 streams per company, 1 per person); "
        "0 = no cap. Shared like the above.",
    )
    llm_capacity_key_prefix: str = Field(
        "gigaoffice:llm-capacity",
        min_length=1,
        max_length=200,
        description="Redis key prefix of the shared capacity; deployments sharing one Redis need "
        "distinct prefixes.",
    )
    llm_health_cache_seconds: float = Field(
        30.0, ge=0, description="How long a backend's health check result is reused."
    )
    llm_classify_model: str | None = Field(
        None,
        description="Model for classification calls on the primary backend; empty: its configured "
        "model (GIGACHAT_MODEL, OPENAI_MODEL). Seed name: GIGACHAT_CLASSIFY_MODEL.",
    )
    llm_generate_model: str | None = Field(
        None,
        description="Model for answers on the primary backend; empty: its configured model. The "
        "fallback always uses its own. Seed name: GIGACHAT_GENERATE_MODEL.",
    )
    llm_model_by_category: dict[str, str] = Field(
        default_factory=dict,
        description='JSON object {category: model}, e.g. `{"process-analysis": "GigaChat-Max"}`; '
        "wins over LLM_GENERATE_MODEL.",
    )
    llm_price_per_1k_tokens: dict[str, float] = Field(
        default_factory=dict,
        description='JSON object: model -> price per 1000 tokens, e.g. `{"GigaChat": 0.2}`; gives '
        "`/api/v1/usage` a cost.",
    )


class DryrunSettings(BaseModel):
    """LLM backend `dryrun`: deterministic answers derived from the input, no model."""

    dryrun_latency_ms: int = Field(0, ge=0, description="Simulated latency of each call.")
    dryrun_failure_rate: float = Field(
        0.0,
        ge=0,
        le=1,
        description="Share of calls that fail with a retryable error (deterministic per input), to "
        "exercise retries.",
    )


class GigaChatSettings(BaseModel):
    """LLM backend GigaChat: cloud (credentials) or mTLS (client certificate)."""

    gigachat_run_mode: Literal["dryrun", "cloud", "mtls"] | None = Field(
        None,
        description="Seed name for LLM_BACKEND: dryrun | cloud | mtls mean dryrun | gigachat-cloud | "
        "gigachat-mtls; applies when LLM_BACKEND is not set.",
    )
    gigachat_credentials: SecretStr | None = Field(
        None,
        description="Authorization key (base64 of client_id:client_secret) for the OAuth endpoint. Secret.",
    )
    gigachat_scope: str = Field("GIGACHAT_API_PERS", description="OAuth scope of the key.")
    gigachat_model: str = Field("GigaChat", description="Model used unless a call names another.")
    gigachat_base_url: str = Field(
        "https://gigachat.devices.sberbank.ru/api/v1", description="API base URL (v1 or v2 paths)."
    )
    gigachat_auth_url: str = Field(
        "https://ngw.devices.sberbank.ru:9443/api/v2/oauth", description="OAuth token endpoint (cloud)."
    )
    # v1 serves older on-premises installations.
    gigachat_api_version: Literal["auto", "v1", "v2"] = Field(
        "auto",
        description="Chat contract: v2 (`/api/v2/chat/completions`), v1 (`/api/v1/chat/completions`, older "
        "on-premises servers), or auto: v2, and v1 for the rest of the process once v2's path answers 404.",
    )
    gigachat_ca_bundle_file: Path | None = Field(
        None,
        description="CA bundle that signs the GigaChat servers' certificates (e.g. the Russian Trusted "
        "Root CA).",
    )
    gigachat_verify_ssl_certs: bool = Field(
        True, description="Leave true. false disables TLS verification (only for a lab; logged as a warning)."
    )
    gigachat_mtls_ca_bundle_file: Path | None = Field(None, description="mTLS: CA bundle of the server.")
    gigachat_mtls_cert_file: Path | None = Field(None, description="mTLS: client certificate (PEM).")
    gigachat_mtls_key_file: Path | None = Field(None, description="mTLS: client private key (PEM).")
    gigachat_mtls_key_file_password: SecretStr | None = Field(
        None, description="mTLS: password of the private key. Secret."
    )
    gigachat_max_requests_per_minute: int | None = Field(
        None, ge=0, description="Seed name for LLM_REQUESTS_PER_MINUTE (used when that is not set)."
    )
    gigachat_max_tokens_per_request: int | None = Field(
        None, ge=1, description="Seed name for LLM_MAX_TOKENS (used when that is not set)."
    )
    gigachat_classify_model: str | None = Field(
        None, description="Seed name for LLM_CLASSIFY_MODEL (used when that is not set)."
    )
    gigachat_generate_model: str | None = Field(
        None, description="Seed name for LLM_GENERATE_MODEL (used when that is not set)."
    )


class OpenAISettings(BaseModel):
    """LLM backend OpenAI-compatible: OpenAI, OpenRouter, vLLM, Ollama, LiteLLM."""

    openai_base_url: str = Field("https://api.openai.com/v1", description="API base URL.")
    openai_api_key: SecretStr | None = Field(None, description="Bearer key. Secret.")
    openai_model: str = Field("gpt-4o-mini", description="Model used unless a call names another.")
    openai_organization: str | None = Field(None, description="OpenAI-Organization header.")
    openai_extra_headers: dict[str, str] = Field(
        default_factory=dict,
        description='JSON object of extra HTTP headers, e.g. `{"HTTP-Referer": "https://example.org"}` '
        "for OpenRouter.",
    )
    openai_ca_bundle_file: Path | None = Field(
        None,
        description="PEM trust store for this backend only (e.g. a private CA in front of vLLM); "
        "empty: the system's.",
    )
    openai_verify_ssl_certs: bool = Field(
        True,
        description="false disables server certificate verification for this backend (logged as a "
        "warning). Never in production.",
    )


class CostSettings(BaseModel):
    """Cost: the answer cache, GigaChat prompt caching, model policy and prices."""

    answer_cache: bool = Field(
        True,
        description="Same backend, model, rendered messages and sampling parameters: the first validated "
        "answer is reused without an LLM call.",
    )
    answer_cache_scope: Literal["owner", "shared"] = Field(
        "owner", description="owner: only the same owner's answers are reused; shared: everyone's."
    )
    answer_cache_ttl_seconds: float = Field(3600.0, gt=0, description="How long a cached answer lives.")
    answer_cache_lease_seconds: float = Field(
        90.0,
        gt=0,
        description="How long the request that makes the one LLM call for identical requests in flight "
        "holds the lead before a waiting one takes over (a killed worker's lease runs out).",
    )
    answer_cache_poll_seconds: float = Field(
        0.05, gt=0, description="How often the waiting identical requests look for the leader's answer."
    )
    gigachat_session_cache: bool = Field(
        True, description="GigaChat prompt caching: a stable X-Session-ID per (owner, template version)."
    )
    llm_allowed_models: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Models a caller may name, comma-separated (empty: any); a key's own list "
        "(allowed_models) narrows it.",
    )
    llm_prices: dict[str, dict[str, float]] = Field(
        default_factory=dict,
        description='JSON `{model: {"prompt": p, "completion": c, "cached_prompt": k}}`, prices per 1000 '
        "tokens; wins over LLM_PRICE_PER_1K_TOKENS for the models it names.",
    )

    @field_validator("llm_allowed_models", mode="before")
    @classmethod
    def _split_models(cls, value: object) -> object:
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                return json.loads(text)
            return [part.strip() for part in text.split(",") if part.strip()]
        return value
