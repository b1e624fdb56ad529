"""API key use-cases shared by the CLI (`python -m service keys …`) and /api/v1/keys."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from loguru import logger
from sqlalchemy.ext.asyncio import AsyncSession

from service.callers.secrets import digest, new_key, visible_prefix
from service.db import api_keys_repo as repo
from service.db.key_models import ApiKey, Role
from service.db.models import utcnow
from service.errors import NotFound, ValidationFailed
from service.usecases import audit


@dataclass(frozen=True, slots=True)
class NewKey:
    row: ApiKey
    secret: str  # shown once, never stored


def _check(values: dict[str, Any]) -> None:
    role = values.get("role")
    if role is not None and role not in Role.ALL:
        raise ValidationFailed(
            f"role must be one of {list(Role.ALL)}", details=[{"loc": "role", "msg": "invalid"}]
        )
    for name in (
        "requests_per_minute",
        "tokens_per_minute",
        "daily_tokens",
        "monthly_tokens",
        "retention_days",
    ):
        value = values.get(name)
        if value is not None and value < 0:
            raise ValidationFailed(f"{name} must be 0 or more", details=[{"loc": name, "msg": "negative"}])
    if "name" in values and not (values["name"] or "").strip():
        raise ValidationFailed("name must not be empty", details=[{"loc": "name", "msg": "empty"}])


async def create_key(
    session: AsyncSession, name: str, role: str = Role.USER, *, actor: str = audit.CLI, **limits: int | None
) -> NewKey:
    values: dict[str, Any] = {"name": name, "role": role, **limits}
    _check(values)
    key_id, secret = new_key()
    row = ApiKey(
        id=key_id,
        key_hash=digest(secret),
        prefix=visible_prefix(key_id),
        created_at=utcnow(),
        **values,
    )
    await repo.add_key(session, row)
    audit.record(session, actor, "key.created", "api_key", key_id, after=audit.key_snapshot(row))
    logger.info("API key {} ({}) created with role {}", key_id, name, role)
    return NewKey(row, secret)


async def list_keys(session: AsyncSession, *, include_revoked: bool = False) -> Sequence[ApiKey]:
    return await repo.list_keys(session, include_revoked=include_revoked)


async def get_key(session: AsyncSession, key_id: str) -> ApiKey:
    row = await repo.get_key(session, key_id)
    if row is None:
        raise NotFound(f"No API key with id {key_id}.")
    return row


async def update_key(
    session: AsyncSession, key_id: str, values: dict[str, Any], *, actor: str = audit.CLI
) -> ApiKey:
    _check(values)
    row = await get_key(session, key_id)
    before = audit.key_snapshot(row)
    row = await repo.update_key(session, row, values)
    audit.record(
        session, actor, "key.updated", "api_key", key_id, before=before, after=audit.key_snapshot(row)
    )
    logger.info("API key {} updated: {}", key_id, sorted(values))
    return row


async def revoke_key(session: AsyncSession, key_id: str, *, actor: str = audit.CLI) -> ApiKey:
    row = await get_key(session, key_id)
    if row.revoked_at is None:
        before = audit.key_snapshot(row)
        row.revoked_at = utcnow()
        audit.record(
            session, actor, "key.revoked", "api_key", key_id, before=before, after=audit.key_snapshot(row)
        )
        await session.flush()
        logger.info("API key {} revoked", key_id)
    return row
