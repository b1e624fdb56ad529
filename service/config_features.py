"""Settings groups of the product's features: request limits, prompts, callers, batches, live status,
the OpenAI-compatible surface, webhooks, the operator console. `service.config.Settings` inherits them.
"""

from __future__ import annotations

from pydantic import BaseModel, Field, SecretStr


class RequestLimitSettings(BaseModel):
    """Request limits: inputs beyond them get 422."""

    max_query_chars: int = Field(4_000, ge=1, description="Characters of a spreadsheet query.")
    max_input_cells: int = Field(10_000, ge=1, description="Cells of a spreadsheet input range.")
    max_cell_chars: int = Field(2_000, ge=1, description="Characters of one cell.")
    max_input_chars: int = Field(200_000, ge=1, description="Characters of a whole input.")
    max_description_chars: int = Field(20_000, ge=1, description="Characters of a process description.")
    long_poll_max_seconds: float = Field(
        30.0, ge=0, description="Upper bound of `?wait=` on `GET /api/v1/requests/{id}` (long-poll)."
    )


class PromptSettings(BaseModel):
    """Prompts and classification."""

    classifier_llm_threshold: float = Field(
        0.65, ge=0, le=1, description="Below this confidence of the local classifier, the LLM is asked."
    )
    prompt_table_token_budget: int = Field(
        3_000,
        ge=100,
        description="Token budget of the range table in a prompt; larger ranges are truncated with a note.",
    )
    conversation_token_budget: int = Field(
        6_000,
        ge=100,
        description="A request in a conversation: tokens its prompt may take with the earlier turns "
        "(the oldest are dropped first; the request's own range data never).",
    )


class CallerSettings(BaseModel):
    """Callers: API keys, anonymous access, rate limits and budgets."""

    # `python -m service up` turns anonymous access on when it listens on loopback; on any other
    # address start-up is refused unless the override is set too.
    allow_anonymous: bool = Field(
        False,
        description="Key-less callers are let in and share the owner `anonymous` and the ANONYMOUS_* "
        "limits; off, they get 401. `python -m service up` turns it on when HOST is loopback.",
    )
    allow_anonymous_on_public_host: bool = Field(
        False, description="Allow anonymous access when HOST is not a loopback address."
    )
    anonymous_requests_per_minute: int = Field(60, ge=0, description="Rate limit of anonymous callers.")
    anonymous_daily_tokens: int | None = Field(
        None, ge=0, description="Daily token budget of anonymous callers."
    )
    anonymous_monthly_tokens: int | None = Field(
        None, ge=0, description="Monthly token budget of anonymous callers."
    )
    api_key_cache_seconds: float = Field(
        30.0,
        ge=0,
        description="A verified key is trusted this long without a database read: the longest a "
        "revocation made in another process takes to reach this one.",
    )
    auth_failures_per_minute: int = Field(
        30,
        ge=0,
        description="401s for wrong keys (malformed, unknown, revoked) one client address may collect per "
        "minute (per API process); then 429 with Retry-After for the rest of the minute, without any key "
        "lookup. 0: off.",
    )
    api_key_last_used_flush_seconds: float = Field(
        30.0, gt=0, description="How often the last use of keys is written (one batched UPDATE)."
    )
    rate_limit_requests_per_minute: int = Field(
        600,
        ge=0,
        description="Requests per minute on submit and classify for keys without their own figure; "
        "0 = no limit. Counted in Redis when REDIS_URL is set (all processes), else per process.",
    )
    rate_limit_fail_open: bool = Field(
        True, description="Redis unreachable: true lets requests through unlimited, false answers 503."
    )
    rate_limit_key_prefix: str = Field("gigaoffice-ratelimit", description="Redis key prefix of rate limits.")
    budget_reserve_tokens_per_request: int = Field(
        1000,
        ge=0,
        description="Tokens each queued or processing request counts against a budget until its real "
        "figure is known.",
    )


class BatchSettings(BaseModel):
    """Batches: the batch lane and the Files + Batches API."""

    worker_batch_concurrency: int | None = Field(
        None,
        ge=1,
        le=10_000,
        description="Batch lines one worker runs at once (empty: 3/4 of WORKER_CONCURRENCY).",
    )
    worker_batch_concurrency_busy: int = Field(
        8,
        ge=1,
        le=10_000,
        description="The lower cap while interactive requests are being served (one arrived within "
        "the last second).",
    )
    batch_owner_window: int = Field(
        200,
        ge=1,
        le=100_000,
        description="Lines of one owner in the batch lane at once; owners are released round-robin, so "
        "a small batch waits behind at most this many lines of each other owner.",
    )
    batch_feed_interval_seconds: float = Field(
        0.1, ge=0.01, le=60, description="How often the feeder releases lines and finalises batches."
    )
    batch_max_lines: int = Field(50_000, ge=1, description="Lines of one batch (OpenAI's limit).")
    batch_max_bytes: int = Field(200 * 1024 * 1024, ge=1, description="Size of one batch input file.")


class LiveStatusSettings(BaseModel):
    """Live status: completion events, long-poll, SSE and the synchronous chat."""

    # Tansu always waits this long: each idle second costs that many empty fetches.
    events_fetch_max_wait_ms: int = Field(
        5,
        ge=1,
        le=5000,
        description="How long the API's status hub lets the broker hold an empty fetch: bounds how late "
        "a long-poll, SSE stream or `Prefer: wait` wakes after a request finishes.",
    )
    sse_keepalive_seconds: float = Field(
        15.0, gt=0, description="SSE status streams send a keep-alive comment this often."
    )
    sse_max_seconds: float = Field(
        300.0,
        gt=0,
        description="An SSE stream ends after this long (the client reconnects with Last-Event-ID), "
        "re-reading the row then in case an event was lost.",
    )
    sse_max_streams_per_owner: int = Field(
        20,
        ge=0,
        description="SSE streams (status, batch and streamed chat) one owner may hold open at once in an "
        "API process; past the cap, 429 with Retry-After. 0: no cap.",
    )
    long_poll_max_per_owner: int = Field(
        100,
        ge=0,
        description="Long-polls (`?wait=`, `Prefer: wait`, a chat completion's wait) one owner may hold "
        "open at once in an API process; past the cap, 429 with Retry-After. 0: no cap.",
    )


class OpenAISurfaceSettings(BaseModel):
    """The OpenAI-compatible surface under `/v1/`."""

    models_cache_seconds: float = Field(
        300.0,
        ge=0,
        description="`GET /v1/models`: the backends' own model lists are fetched at most this often per "
        "API process.",
    )
    models_public: bool = Field(
        False,
        description="`GET /v1/models` answers without a key (ONLYOFFICE's plugin lists models without "
        "sending its key when the provider is typed in by hand). Only the model names; chat completions "
        "still need one.",
    )
    chat_wait_seconds: float = Field(
        180.0,
        gt=0,
        le=3600,
        description="`POST /v1/chat/completions` waits this long for the answer (on the completion event; "
        "with `stream: true` it sends `: keep-alive` comments every SSE_KEEPALIVE_SECONDS meanwhile), then "
        "answers OpenAI's error 504 `timeout` naming the request, which goes on.",
    )


class WebhookSettings(BaseModel):
    """Webhooks: signing, targets, retries and the dispatcher."""

    webhook_secrets: SecretStr | None = Field(
        None,
        description="`whsec_…` secrets (comma-separated: all sign during a rotation) for per-request "
        "webhooks; empty: per-request webhooks are refused. Owner endpoints get their own. Secret.",
    )
    webhook_allow_private_targets: bool = Field(
        False,
        description="Allow targets on loopback/private/link-local networks (on-premises receivers); "
        "off: such targets are refused (SSRF guard).",
    )
    webhook_consumer_group: str = Field(
        "gigaoffice-webhooks", description="Consumer group of the webhook dispatcher."
    )
    webhook_timeout_seconds: float = Field(10.0, gt=0, le=60, description="Timeout of one delivery.")
    webhook_max_attempts: int = Field(8, ge=1, le=50, description="Deliveries tried before one is given up.")
    webhook_retry_base_seconds: float = Field(
        5.0,
        ge=0,
        description="Retries wait base * 2^attempt seconds with jitter, at most the max; a 429/5xx "
        "Retry-After wins.",
    )
    webhook_retry_max_seconds: float = Field(3600.0, ge=0, description="Longest wait between retries.")
    webhook_concurrency: int = Field(32, ge=1, le=1000, description="Deliveries one dispatcher runs at once.")
    webhook_poll_seconds: float = Field(
        1.0, gt=0, description="How often an idle dispatcher looks for retries that became due."
    )
    # Without a cap, one key could make the service flood any public URL (N endpoints × requests).
    webhook_max_endpoints_per_owner: int = Field(
        10,
        ge=1,
        le=1000,
        description="Enabled default webhook endpoints per owner (each gets every event of the owner's "
        "requests).",
    )


class ConsoleSettings(BaseModel):
    """Operator console: the server-rendered pages at `/console`."""

    console_session_minutes: int = Field(
        480,
        ge=1,
        le=43_200,
        description="A signed-in console session ends this long after sign-in (signing out ends it at once).",
    )
    console_signin_failures_per_minute: int = Field(
        5, ge=1, description="Failed console sign-ins allowed per client address per minute; more answer 429."
    )
    # One look-up per process per period, however many operators watch.
    console_broker_cache_seconds: float = Field(
        5.0,
        ge=0,
        description="How long the overview reuses the broker's figures (consumer lag, DLQ depth).",
    )
