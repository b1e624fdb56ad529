"""The webhook dispatcher: turns completion events into signed, durable, retried deliveries.

Two loops in one process (`python -m service webhooks`; `up` runs one beside the worker):
- intake: a consumer of the responses topic in its own group (WEBHOOK_CONSUMER_GROUP), on the one
  consumer loop (service/messaging/runner.py). For each completion event it writes one pending
  delivery per interested endpoint and commits the database; the runner commits an offset only
  past events whose handling finished: a crash re-reads events, and the unique (endpoint, event) key
  makes that a no-op, so no event is lost and none gets a second message id;
- delivery: leases due deliveries from the database (any number of dispatchers share the work),
  re-checks the target against the SSRF guard, POSTs the signed payload without following
  redirects, and records the outcome: 2xx done; 410 disables the endpoint; anything else is retried
  on an exponential schedule with jitter (429/5xx honour Retry-After) until WEBHOOK_MAX_ATTEMPTS.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
import uuid
from datetime import timedelta
from typing import Any

import httpx
from loguru import logger
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from service import monitoring, tracing
from service.config import Settings
from service.db import webhooks_repo as repo
from service.db.models import utcnow
from service.db.webhook_models import DeliveryState, WebhookDelivery, WebhookEndpoint
from service.messaging.kafka import ensure_topics
from service.messaging.runner import ConsumerRunner, Subscription
from service.retry_after import parse_retry_after
from service.runtime import open_runtime
from service.schemas.events import StatusEvent
from service.webhooks.signing import signed_headers
from service.webhooks.ssrf import UnsafeTarget, resolve_safe

_FINAL_STATUSES = ("completed", "failed", "cancelled", "expired")


def event_type(event: StatusEvent) -> str | None:
    """request.<status> or batch.<status> for a final status; None for anything else."""
    if event.status not in _FINAL_STATUSES:
        return None
    return f"{'batch' if event.is_batch else 'request'}.{event.status}"


# Events taken in at once: each is one short transaction; their order does not matter (the unique
# (endpoint, event) key makes each delivery once).
_INTAKE_CONCURRENCY = 8
_LEASE_SECONDS_EXTRA = 30  # a leased delivery is retried by another dispatcher after its timeout + this


def event_payload(event: StatusEvent) -> str:
    """{type, timestamp, data}: small on purpose; the receiver fetches the result by its link."""
    if event.is_batch:
        base = f"/api/v1/batches/{event.request_id}"
        links = {"status": base, "results": f"{base}/results"}
    else:
        base = f"/api/v1/requests/{event.request_id}"
        links = {"status": base, "result": f"{base}/result"}
    data = {
        "id": str(event.request_id),
        "kind": event.kind,
        "status": event.status,
        "batch_id": str(event.batch_id) if event.batch_id else None,
        "error_code": event.error_code,
        "created_at": event.created_at.isoformat(),
        "finished_at": event.finished_at.isoformat() if event.finished_at else None,
        "links": links,
    }
    body = {"type": event_type(event), "timestamp": event.published_at.isoformat(), "data": data}
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False)


def _wants(endpoint: WebhookEndpoint, event_type: str) -> bool:
    return not endpoint.events or event_type in endpoint.events


class WebhookDispatcher:
    def __init__(self, settings: Settings, sessions: async_sessionmaker[AsyncSession] | None = None) -> None:
        self._settings = settings
        self._sessions = sessions
        self._stopping = asyncio.Event()
        self._due = asyncio.Event()  # new deliveries were written: look now, not at the next poll
        self._shared_secrets = [
            secret.strip()
            for secret in (
                settings.webhook_secrets.get_secret_value() if settings.webhook_secrets else ""
            ).split(",")
            if secret.strip()
        ]

    def stop(self) -> None:
        self._stopping.set()
        self._due.set()

    async def run(self) -> None:
        settings = self._settings
        async with contextlib.AsyncExitStack() as opened:
            if self._sessions is None:
                # The database is all the dispatcher's own runtime holds; its consumer is its loop's.
                rt = await opened.enter_async_context(open_runtime(settings, role="cli"))
                self._sessions = rt.sessions
            await ensure_topics(settings)
            intake = ConsumerRunner(
                settings,
                Subscription(
                    [settings.kafka_topic_responses],
                    group=settings.webhook_consumer_group,
                    start="earliest",
                    role="webhooks",
                ),
                StatusEvent.from_bytes,
                self.take_in,
                concurrency=_INTAKE_CONCURRENCY,
                # A database outage is waited out (with back-off): dropping the event would lose
                # its webhooks, and the offset stays behind it meanwhile.
                retries=None,
                shutdown_grace=5.0,
            )
            client = httpx.AsyncClient(
                follow_redirects=False, timeout=settings.webhook_timeout_seconds, trust_env=False
            )
            opened.push_async_callback(client.aclose)
            logger.info("webhook dispatcher consuming {} as group {}", settings.kafka_topic_responses,
                        settings.webhook_consumer_group)  # fmt: skip
            intake_task = asyncio.create_task(intake.run(), name="webhook-intake")
            try:
                await self._deliver_loop(client)
            finally:
                self._stopping.set()
                intake.stop()
                await intake_task
        logger.info("webhook dispatcher stopped")

    # --- intake: events → pending deliveries ----------------------------------------------------

    async def take_in(self, event: StatusEvent) -> None:
        """The intake's handler: the deliveries of one event, committed before its offset is."""
        if event_type(event) is None:
            return
        await self.enqueue([event])
        self._due.set()

    async def enqueue(self, events: list[StatusEvent]) -> None:
        assert self._sessions is not None
        async with self._sessions() as session:
            rows: list[dict[str, Any]] = []
            for event in events:
                kind = event_type(event)
                assert kind is not None
                # The completion event's trace ends here: the delivery is queued for its endpoints.
                with tracing.span(
                    "webhook.enqueue",
                    kind=tracing.SpanKind.CONSUMER,
                    context=tracing.extract(event.traceparent),
                    attributes={"gigaoffice.request.id": str(event.request_id), "gigaoffice.event": kind},
                ):
                    endpoints = await repo.endpoints_for_event(session, event.request_id, event.owner_id)
                for endpoint in endpoints:
                    if not _wants(endpoint, kind):
                        continue
                    rows.append(
                        {
                            "id": f"msg_{uuid.uuid4().hex}",
                            "endpoint_id": endpoint.id,
                            "event_key": f"{event.request_id}:{event.status}",
                            "event_type": kind,
                            "request_id": event.request_id,
                            "payload": event_payload(event),
                            "state": DeliveryState.PENDING,
                            "attempts": 0,
                            "next_attempt_at": utcnow(),
                            "created_at": utcnow(),
                        }
                    )
            await repo.enqueue(session, rows)
            await session.commit()

    # --- delivery ----------------------------------------------------------------------------------

    async def _deliver_loop(self, client: httpx.AsyncClient) -> None:
        """Keeps up to WEBHOOK_CONCURRENCY deliveries in flight: a slow receiver holds one slot, not
        the others; a freed slot (or new work from the intake) looks for due deliveries at once."""
        settings = self._settings
        assert self._sessions is not None
        lease = settings.webhook_timeout_seconds + _LEASE_SECONDS_EXTRA
        in_flight: set[asyncio.Task[str]] = set()

        def finished(task: asyncio.Task[str]) -> None:
            in_flight.discard(task)
            self._due.set()

        try:
            while not self._stopping.is_set():
                self._due.clear()
                room = settings.webhook_concurrency - len(in_flight)
                claimed: list[tuple[WebhookDelivery, WebhookEndpoint]] = []
                if room > 0:
                    try:
                        async with self._sessions() as session:
                            claimed = await repo.claim_due(session, utcnow(), room, lease)
                            await session.commit()
                    except Exception:
                        logger.exception("webhook delivery: could not read due deliveries")
                for delivery, endpoint in claimed:
                    task = asyncio.create_task(self.deliver(client, delivery, endpoint))
                    in_flight.add(task)
                    task.add_done_callback(finished)
                if claimed and len(claimed) == room:
                    continue  # there may be more due right now
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._due.wait(), settings.webhook_poll_seconds)
        finally:
            # Deliveries under way finish (each is bounded by its timeout); a lost one's lease runs out.
            if in_flight:
                await asyncio.wait(set(in_flight), timeout=settings.webhook_timeout_seconds + 5)

    def _secrets(self, endpoint: WebhookEndpoint) -> list[str]:
        own = [secret for secret in (endpoint.secret, endpoint.previous_secret) if secret]
        return own or self._shared_secrets

    async def deliver(
        self, client: httpx.AsyncClient, delivery: WebhookDelivery, endpoint: WebhookEndpoint
    ) -> str:
        settings = self._settings
        status_code: int | None = None
        retry_after: float | None = None
        secrets = self._secrets(endpoint)
        try:
            if not endpoint.enabled:
                raise UnsafeTarget(f"the endpoint is disabled ({endpoint.disabled_reason})")
            if not secrets:
                raise UnsafeTarget("no signing secret is configured for this endpoint")
            target = await resolve_safe(endpoint.url, allow_private=settings.webhook_allow_private_targets)
        except UnsafeTarget as exc:
            return await self._record(delivery, endpoint, "refused", DeliveryState.FAILED, None, str(exc))
        body = delivery.payload.encode()
        headers = signed_headers(secrets, delivery.id, int(time.time()), body)
        headers["host"] = target.host_header
        headers["user-agent"] = "gigaoffice-webhooks/1"
        try:
            async with client.stream(
                "POST",
                target.connect_url,
                content=body,
                headers=headers,
                extensions={"sni_hostname": target.host},  # TLS checks the name, not the address
            ) as response:
                status_code = response.status_code
                retry_after = parse_retry_after(response.headers.get("retry-after"))
            error = None if 200 <= status_code < 300 else f"HTTP {status_code}"
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"[:500] or type(exc).__name__
        if status_code is not None and 200 <= status_code < 300:
            return await self._record(
                delivery, endpoint, "delivered", DeliveryState.DELIVERED, status_code, None
            )
        if status_code == 410:
            return await self._record(delivery, endpoint, "gone", DeliveryState.FAILED, status_code, error)
        if delivery.attempts + 1 >= settings.webhook_max_attempts:
            return await self._record(delivery, endpoint, "failed", DeliveryState.FAILED, status_code, error)
        delay = self._backoff(delivery.attempts)
        if retry_after is not None and status_code in (429, 500, 502, 503, 504):
            delay = min(retry_after, settings.webhook_retry_max_seconds)
        return await self._record(
            delivery,
            endpoint,
            "retry",
            DeliveryState.PENDING,
            status_code,
            error,
            utcnow() + timedelta(seconds=delay),
        )

    def _backoff(self, attempts: int) -> float:
        ceiling = min(
            self._settings.webhook_retry_max_seconds, self._settings.webhook_retry_base_seconds * 2**attempts
        )
        return ceiling * random.uniform(0.5, 1.0)  # jitter: retries of many deliveries spread out

    async def _record(
        self,
        delivery: WebhookDelivery,
        endpoint: WebhookEndpoint,
        outcome: str,
        state: str,
        status_code: int | None,
        error: str | None,
        next_attempt_at: Any = None,
    ) -> str:
        assert self._sessions is not None
        monitoring.WEBHOOK_DELIVERIES.labels(outcome).inc()
        async with self._sessions() as session:
            await repo.record_attempt(
                session,
                delivery.id,
                state=state,
                next_attempt_at=next_attempt_at,
                status_code=status_code,
                error=error,
            )
            if outcome == "gone":
                await repo.disable_endpoint(session, endpoint.id, "the receiver answered 410 Gone")
            await session.commit()
        if outcome != "delivered":
            logger.info("webhook {} to endpoint {}: {} ({})", delivery.id, endpoint.id, outcome, error)
        return outcome
