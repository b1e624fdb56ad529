"""Webhook use-cases behind the routes: register endpoints, read the delivery log, replay."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from service.config import Settings
from service.db import webhooks_repo as repo
from service.db.webhook_models import WebhookDelivery, WebhookEndpoint
from service.errors import Conflict, NotFound, ValidationFailed
from service.schemas.webhooks import WebhookSpec
from service.usecases import audit
from service.webhooks.signing import new_secret
from service.webhooks.ssrf import UnsafeTarget, resolve_safe


async def check_target(settings: Settings, url: str, loc: str) -> None:
    """Refuse an unsafe URL when it is registered (it is checked again at every delivery)."""
    try:
        await resolve_safe(url, allow_private=settings.webhook_allow_private_targets)
    except UnsafeTarget as exc:
        raise ValidationFailed(f"{loc}: {exc}", details=[{"loc": loc, "msg": str(exc)}]) from exc


async def request_webhook_row(
    settings: Settings, spec: WebhookSpec, request_id: uuid.UUID, owner_id: str | None
) -> dict[str, Any]:
    """A request's own endpoint, checked; the submit path stores it with the request row in one
    transaction (request_store.insert_with_webhook), so its completion cannot outrun it and a
    replayed idempotency key leaves none behind."""
    if settings.webhook_secrets is None:
        raise ValidationFailed(
            "webhook: per-request webhooks are not enabled on this service (WEBHOOK_SECRETS is unset).",
            details=[{"loc": "webhook", "msg": "not enabled"}],
        )
    await check_target(settings, spec.url, "webhook.url")
    return repo.new_endpoint_row(
        url=spec.url, events=list(spec.events), owner_id=owner_id, request_id=request_id
    )


async def create_endpoint(
    session: AsyncSession, settings: Settings, spec: WebhookSpec, owner_id: str | None
) -> WebhookEndpoint:
    """An owner's default endpoint (every request of theirs), with its own signing secret."""
    limit = settings.webhook_max_endpoints_per_owner
    if await repo.count_enabled_owner_endpoints(session, owner_id) >= limit:
        raise Conflict(
            f"You already have {limit} webhook endpoints (WEBHOOK_MAX_ENDPOINTS_PER_OWNER); "
            "delete one first.",
            code="webhook_endpoint_limit",
            details={"limit": limit},
        )
    await check_target(settings, spec.url, "url")
    endpoint = await repo.add_endpoint(
        session, url=spec.url, events=list(spec.events), owner_id=owner_id, secret=new_secret()
    )
    audit.record(
        session, owner_id, "webhook.created", "webhook_endpoint", str(endpoint.id), after=_snapshot(endpoint)
    )
    return endpoint


def _snapshot(endpoint: WebhookEndpoint) -> dict[str, object]:
    """An endpoint's settings as the audit log keeps them (never its signing secret)."""
    return {
        "url": endpoint.url,
        "events": list(endpoint.events or []),
        "owner_id": endpoint.owner_id,
        "enabled": endpoint.enabled,
        "disabled_reason": endpoint.disabled_reason,
    }


async def list_endpoints(session: AsyncSession, owner_id: str | None) -> Sequence[WebhookEndpoint]:
    return await repo.owner_endpoints(session, owner_id)


def _visible_endpoint(
    endpoint: WebhookEndpoint | None, owner_id: str | None, missing: NotFound
) -> WebhookEndpoint:
    """The endpoint if the owner may see it; else `missing`, the very error an unknown id gets (no
    existence oracle: another owner's delivery must not read "no endpoint" where unknown ones read
    "no delivery")."""
    if endpoint is None or (owner_id is not None and endpoint.owner_id != owner_id):
        raise missing
    return endpoint


async def _owner_endpoint(
    session: AsyncSession, endpoint_id: uuid.UUID, owner_id: str | None
) -> WebhookEndpoint:
    missing = NotFound(f"No webhook endpoint {endpoint_id}.")
    return _visible_endpoint(await repo.get_endpoint(session, endpoint_id), owner_id, missing)


async def delete_endpoint(
    session: AsyncSession, endpoint_id: uuid.UUID, owner_id: str | None
) -> WebhookEndpoint:
    """Stops an owner's endpoint for good; it stays listed (disabled) with its delivery log."""
    endpoint = await _owner_endpoint(session, endpoint_id, owner_id)
    before = _snapshot(endpoint)
    await repo.disable_endpoint(session, endpoint.id, "deleted by its owner")
    await session.refresh(endpoint)
    audit.record(
        session,
        owner_id,
        "webhook.deleted",
        "webhook_endpoint",
        str(endpoint.id),
        before=before,
        after=_snapshot(endpoint),
    )
    return endpoint


async def delivery_log(
    session: AsyncSession, endpoint_id: uuid.UUID, owner_id: str | None, limit: int
) -> Sequence[WebhookDelivery]:
    await _owner_endpoint(session, endpoint_id, owner_id)
    return await repo.deliveries_of(session, endpoint_id, limit)


async def replay(session: AsyncSession, delivery_id: str, owner_id: str | None) -> WebhookDelivery:
    missing = NotFound(f"No webhook delivery {delivery_id}.")
    delivery = await repo.get_delivery(session, delivery_id)
    if delivery is None:
        raise missing
    _visible_endpoint(await repo.get_endpoint(session, delivery.endpoint_id), owner_id, missing)
    await repo.schedule_replay(session, delivery)
    return delivery
