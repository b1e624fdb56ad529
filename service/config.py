"""The one settings object. Every field is an environment variable listed in `.env.example`.

The settings are declared in groups by concern, each a small pydantic model of fields
(`KafkaSettings`, `LlmSettings`, … in config_platform.py, config_llm.py, config_features.py),
and `Settings` inherits them all. We chose mixins over nested models
(`settings.kafka.bootstrap_servers`) because they keep, with no extra code:
- the flat attribute access the whole code base uses (`settings.kafka_bootstrap_servers`),
  type-checked by mypy like any field (nested models would need ~130 forwarding properties);
- the flat environment names (`KAFKA_BOOTSTRAP_SERVERS`), with no aliases or nested delimiter;
- one `model_fields_set`, on which the seed's legacy names (DB_HOST…, GIGACHAT_RUN_MODE) rely.
`SETTING_GROUPS` orders the groups for the documentation: its configuration page is generated from
them (`service.settings_doc`), so it cannot drift. A new setting goes into the group of its
concern, with a `description`, and into `.env.example`.
"""

from __future__ import annotations

from functools import lru_cache

from pydantic import BaseModel, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict, SettingsError
from sqlalchemy.engine import URL

from service.config_features import (
    BatchSettings,
    CallerSettings,
    ConsoleSettings,
    LiveStatusSettings,
    OpenAISurfaceSettings,
    PromptSettings,
    RequestLimitSettings,
    WebhookSettings,
)
from service.config_llm import (
    BackendName,
    CostSettings,
    DryrunSettings,
    GigaChatSettings,
    LlmSettings,
    OpenAISettings,
)
from service.config_platform import (
    DatabaseSettings,
    KafkaSettings,
    LoggingSettings,
    MetricsSettings,
    RedisSettings,
    ServerSettings,
    WorkerSettings,
)

__all__ = ["SETTING_GROUPS", "BackendName", "Settings", "get_settings", "settings_problems"]

# The seed's GIGACHAT_RUN_MODE values and the backend each one means.
RUN_MODE_TO_BACKEND: dict[str, BackendName] = {
    "dryrun": "dryrun",
    "cloud": "gigachat-cloud",
    "mtls": "gigachat-mtls",
}


class Settings(
    ServerSettings,
    DatabaseSettings,
    RedisSettings,
    KafkaSettings,
    WorkerSettings,
    RequestLimitSettings,
    LlmSettings,
    DryrunSettings,
    GigaChatSettings,
    OpenAISettings,
    CostSettings,
    PromptSettings,
    CallerSettings,
    BatchSettings,
    LiveStatusSettings,
    OpenAISurfaceSettings,
    WebhookSettings,
    ConsoleSettings,
    MetricsSettings,
    LoggingSettings,
    BaseSettings,
):
    """Every setting, flat: `settings.kafka_bootstrap_servers` reads `KAFKA_BOOTSTRAP_SERVERS`."""

    # Empty values mean "not set", so a copied .env.example with blank secrets works as is.
    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", env_ignore_empty=True
    )

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

    def answer_model(self, category: str | None) -> str | None:
        """The model for a request's answer: per category, else the generate model, else None."""
        return self.llm_model_by_category.get(category or "") or self.llm_generate_model

    @property
    def batch_concurrency(self) -> int:
        return self.worker_batch_concurrency or max(1, self.worker_concurrency * 3 // 4)

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


# The documentation's order (the bases' order: how a reader meets them, from starting the service to
# tuning it); its configuration page is generated from these groups.
SETTING_GROUPS: tuple[type[BaseModel], ...] = tuple(
    base for base in Settings.__bases__ if issubclass(base, BaseModel) and base is not BaseSettings
)


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
