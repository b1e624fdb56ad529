"""All SQL about webhook endpoints and deliveries. Callers own the session and commit."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from service.db.models import utcnow
from service.db.webhook_models import DeliveryState, WebhookDelivery, WebhookEndpoint


def new_endpoint_row(
    *,
    url: str,
    events: list[str],
    owner_id: str | None,
    request_id: uuid.UUID | None = None,
    secret: str | None = None,
) -> dict[str, Any]:
    """An enabled endpoint's column values (also written by the submit path, request_store.py)."""
    now = utcnow()
    return {
        "id": uuid.uuid4(),
        "owner_id": owner_id,
        "request_id": request_id,
        "url": url,
        "events": events,
        "secret": secret,
        "previous_secret": None,
        "enabled": True,
        "disabled_reason": None,
        "created_at": now,
        "updated_at": now,
    }


async def add_endpoint(
    session: AsyncSession,
    *,
    url: str,
    events: list[str],
    owner_id: str | None,
    request_id: uuid.UUID | None = None,
    secret: str | None = None,
) -> WebhookEndpoint:
    row = new_endpoint_row(url=url, events=events, owner_id=owner_id, request_id=request_id, secret=secret)
    endpoint = WebhookEndpoint(**row)
    session.add(endpoint)
    await session.flush()
    return endpoint


async def get_endpoint(session: AsyncSession, endpoint_id: uuid.UUID) -> WebhookEndpoint | None:
    return await session.get(WebhookEndpoint, endpoint_id)


async def owner_endpoints(session: AsyncSession, owner_id: str | None) -> Sequence[WebhookEndpoint]:
    """An owner's default endpoints (not the per-request ones); every one without an owner filter."""
    stmt = select(WebhookEndpoint).where(WebhookEndpoint.request_id.is_(None))
    if owner_id is not None:
        stmt = stmt.where(WebhookEndpoint.owner_id == owner_id)
    return (await session.execute(stmt.order_by(WebhookEndpoint.created_at))).scalars().all()


async def count_enabled_owner_endpoints(session: AsyncSession, owner_id: str | None) -> int:
    """How many default endpoints of an owner still receive events."""
    same_owner = (
        WebhookEndpoint.owner_id.is_(None) if owner_id is None else WebhookEndpoint.owner_id == owner_id
    )
    stmt = select(func.count()).where(
        same_owner, WebhookEndpoint.request_id.is_(None), WebhookEndpoint.enabled.is_(True)
    )
    return int((await session.execute(stmt)).scalar_one())


async def endpoints_for_event(
    session: AsyncSession, request_id: uuid.UUID, owner_id: str | None
) -> Sequence[WebhookEndpoint]:
    """Enabled endpoints interested in a request: its own, and its owner's defaults (without API
    keys every request is owner-less, and so are the endpoints registered then)."""
    same_owner = (
        WebhookEndpoint.owner_id.is_(None) if owner_id is None else WebhookEndpoint.owner_id == owner_id
    )
    interested = [
        WebhookEndpoint.request_id == request_id,
        same_owner & WebhookEndpoint.request_id.is_(None),
    ]
    stmt = select(WebhookEndpoint).where(WebhookEndpoint.enabled.is_(True), or_(*interested))
    return (await session.execute(stmt)).scalars().all()


async def enqueue(session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    """New pending deliveries; one that exists for the same endpoint and event is left alone, so an
    event consumed twice (a dispatcher restart) never yields a second message id."""
    if not rows:
        return
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    stmt = dialect.insert(WebhookDelivery).values(rows)
    await session.execute(stmt.on_conflict_do_nothing(index_elements=["endpoint_id", "event_key"]))


async def claim_due(
    session: AsyncSession, now: datetime, limit: int, lease_seconds: float
) -> list[tuple[WebhookDelivery, WebhookEndpoint]]:
    """Pending deliveries that are due, leased to this dispatcher (their next attempt moves past the
    lease, so another dispatcher skips them; a crashed one's lease simply runs out)."""
    stmt = (
        select(WebhookDelivery)
        .where(WebhookDelivery.state == DeliveryState.PENDING, WebhookDelivery.next_attempt_at <= now)
        .order_by(WebhookDelivery.next_attempt_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    deliveries = (await session.execute(stmt)).scalars().all()
    claimed = []
    for delivery in deliveries:
        delivery.next_attempt_at = now + timedelta(seconds=lease_seconds)
        endpoint = await session.get(WebhookEndpoint, delivery.endpoint_id)
        if endpoint is not None:
            claimed.append((delivery, endpoint))
    await session.flush()
    return claimed


async def record_attempt(
    session: AsyncSession,
    delivery_id: str,
    *,
    state: str,
    next_attempt_at: datetime | None,
    status_code: int | None,
    error: str | None,
) -> None:
    values: dict[str, Any] = {
        "state": state,
        "attempts": WebhookDelivery.attempts + 1,
        "last_status_code": status_code,
        "last_error": error[:500] if error else None,
    }
    if next_attempt_at is not None:
        values["next_attempt_at"] = next_attempt_at
    if state != DeliveryState.PENDING:
        values["finished_at"] = utcnow()
    await session.execute(update(WebhookDelivery).where(WebhookDelivery.id == delivery_id).values(**values))


async def disable_endpoint(session: AsyncSession, endpoint_id: uuid.UUID, reason: str) -> None:
    await session.execute(
        update(WebhookEndpoint)
        .where(WebhookEndpoint.id == endpoint_id)
        .values(enabled=False, disabled_reason=reason, updated_at=utcnow())
    )


async def deliveries_of(
    session: AsyncSession, endpoint_id: uuid.UUID, limit: int
) -> Sequence[WebhookDelivery]:
    stmt = (
        select(WebhookDelivery)
        .where(WebhookDelivery.endpoint_id == endpoint_id)
        .order_by(WebhookDelivery.created_at.desc())
        .limit(limit)
    )
    return (await session.execute(stmt)).scalars().all()


async def get_delivery(session: AsyncSession, delivery_id: str) -> WebhookDelivery | None:
    return await session.get(WebhookDelivery, delivery_id)


async def schedule_replay(session: AsyncSession, delivery: WebhookDelivery) -> None:
    """Send a delivery again, now, with its own message id (receivers may already know it)."""
    delivery.state = DeliveryState.PENDING
    delivery.next_attempt_at = utcnow()
    delivery.finished_at = None
    await session.flush()
