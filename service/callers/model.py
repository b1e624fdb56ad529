"""Who is calling: the value every route gets from `CallerDep` (service/api/deps.py)."""

from __future__ import annotations

from dataclasses import dataclass

from service.config import Settings
from service.db.key_models import ApiKey, Role

ANONYMOUS_OWNER = "anonymous"


@dataclass(frozen=True, slots=True)
class Limits:
    """A caller's own figures; None means the settings' default (rpm) or no limit (the others)."""

    requests_per_minute: int | None = None
    tokens_per_minute: int | None = None
    daily_tokens: int | None = None
    monthly_tokens: int | None = None
    allowed_models: tuple[str, ...] | None = None  # None: any the settings allow

    @property
    def has_token_limits(self) -> bool:
        return any(v is not None for v in (self.tokens_per_minute, self.daily_tokens, self.monthly_tokens))


@dataclass(frozen=True, slots=True)
class Caller:
    owner_id: str
    key_id: str | None  # None: anonymous
    role: str
    limits: Limits
    # Whom a rate limit counts: the key, or the client address of an anonymous caller.
    rate_key: str

    @property
    def is_admin(self) -> bool:
        return self.role == Role.ADMIN

    @property
    def is_anonymous(self) -> bool:
        return self.key_id is None


def limits_of(row: ApiKey) -> Limits:
    allowed = tuple(row.allowed_models) if row.allowed_models is not None else None
    return Limits(
        row.requests_per_minute, row.tokens_per_minute, row.daily_tokens, row.monthly_tokens, allowed
    )


def caller_of(row: ApiKey) -> Caller:
    # A key is its own owner (docs/callers.md, "Owner = key"): owner_id of its requests is the key id.
    return Caller(
        owner_id=row.id, key_id=row.id, role=row.role, limits=limits_of(row), rate_key=f"key:{row.id}"
    )


def anonymous_limits(settings: Settings) -> Limits:
    return Limits(
        requests_per_minute=settings.anonymous_requests_per_minute,
        daily_tokens=settings.anonymous_daily_tokens,
        monthly_tokens=settings.anonymous_monthly_tokens,
    )


def anonymous_caller(settings: Settings, client_address: str | None) -> Caller:
    return Caller(
        owner_id=ANONYMOUS_OWNER,
        key_id=None,
        role=Role.USER,
        limits=anonymous_limits(settings),
        rate_key=f"addr:{client_address or 'unknown'}",
    )
