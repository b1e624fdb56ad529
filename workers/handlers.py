"""The request handler: one Kafka record → one unit of work on one request row."""

from __future__ import annotations

import asyncio

from loguru import logger
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from service import monitoring, tracing
from service.config import Settings
from service.db import requests_repo
from service.db.requests_repo import ClaimRef, LLMAccounting, StateChange
from service.db.worker_store import WorkerStore
from service.messaging.kafka import RequestPublisher
from service.schemas.envelope import RequestEnvelope
from service.schemas.events import StatusEvent
from service.usecases import conversations
from service.usecases.processing import Outcome, Processor, Turn

_FINISH_ATTEMPTS = 5


class RequestHandler:
    """claim → process → complete/fail. Each database step is one conditional UPDATE that commits
    on its own (service/db/worker_store.py); no connection is held while the model thinks."""

    def __init__(
        self,
        settings: Settings,
        store: WorkerStore,
        processor: Processor,
        events: RequestPublisher,
        sessions: async_sessionmaker[AsyncSession] | None = None,
    ) -> None:
        self._lease_seconds = settings.worker_lease_seconds
        # Leave time to store the outcome before the lease runs out.
        self._processing_budget = max(1.0, settings.worker_lease_seconds * 0.9 - 5)
        self._store = store
        self._processor = processor
        self._events = events
        self._sessions = sessions  # for completions that join a conversation
        self._topic_requests = settings.kafka_topic_requests
        self._topic_responses = settings.kafka_topic_responses

    async def __call__(self, envelope: RequestEnvelope) -> None:
        # Decoded and validated by the runner: a record that is no envelope never gets here.
        # The trace continues from the context the message carried (the API's publish span).
        with tracing.span(
            f"process {self._topic_requests}",
            context=tracing.extract(envelope.traceparent),
            kind=tracing.SpanKind.CONSUMER,
            attributes={
                "messaging.system": "kafka",
                "messaging.destination.name": self._topic_requests,
                "gigaoffice.request.id": str(envelope.request_id),
                "gigaoffice.request.kind": envelope.kind,
            },
        ):
            await self._handle(envelope)

    async def _handle(self, envelope: RequestEnvelope) -> None:
        # The claim is the exactly-once gate: only one delivery ever moves a row out of `queued`.
        with tracing.span("worker.claim") as current:
            row = await self._store.claim(envelope.request_id, self._lease_seconds)
            current.set_attribute("gigaoffice.claimed", row is not None)
        if row is None:
            logger.debug(
                "request {} is not queued (duplicate delivery or cancelled); skipped", envelope.request_id
            )
            return
        await self._events.publish_event(StatusEvent.of(row.state()))

        monitoring.IN_FLIGHT.inc()
        try:
            # The lease bounds processing: past it the sweeper would hand the row to another worker.
            async with asyncio.timeout(self._processing_budget):
                outcome = await self._processor.process(row)
        except TimeoutError:
            outcome = Outcome(
                accounting=LLMAccounting(),
                error_code="processing_timeout",
                error_message=f"Processing took longer than {self._processing_budget:.0f} s.",
            )
        except asyncio.CancelledError:
            # Shutdown mid-flight: hand the row back so the re-delivered record can claim it again.
            await asyncio.shield(self._store.release(row.ref))
            raise
        except Exception as exc:
            logger.exception("processing request {} failed unexpectedly", envelope.request_id)
            outcome = Outcome(
                accounting=LLMAccounting(),
                error_code="internal_error",
                error_message=f"Processing failed unexpectedly ({type(exc).__name__}).",
            )
        finally:
            monitoring.IN_FLIGHT.dec()
        monitoring.llm_used(outcome.accounting)
        await self._finish(row.ref, outcome)

    async def _finish(self, claim: ClaimRef, outcome: Outcome) -> None:
        # The answer is paid for: a database blip must not throw it away. Retried here, because a
        # re-run of the whole handler would find the row claimed and skip it.
        changed: StateChange | None = None
        for attempt in range(_FINISH_ATTEMPTS):
            try:
                changed = await self._store_outcome(claim, outcome)
                break
            except Exception:
                if attempt == _FINISH_ATTEMPTS - 1:
                    raise
                logger.warning("storing the outcome of {} failed; retrying", claim.request_id)
                await asyncio.sleep(0.2 * 2**attempt)
        if changed is None:
            return  # cancelled or taken back meanwhile: whoever did that announces it
        # The completion event carries the trace on to the webhook delivery.
        with tracing.span(
            f"publish {self._topic_responses}",
            kind=tracing.SpanKind.PRODUCER,
            attributes={
                "messaging.system": "kafka",
                "messaging.destination.name": self._topic_responses,
                "gigaoffice.request.status": changed.status,
            },
        ) as current:
            if not outcome.ok:
                current.set_status(tracing.Status(tracing.StatusCode.ERROR, outcome.error_code))
            await self._events.publish_event(StatusEvent.of(changed, traceparent=tracing.inject()))
        monitoring.request_finished(changed)
        # Success is the common case and is counted by the metrics endpoint: an INFO line (a
        # formatted, flushed write) per request is log volume, not information. Failures stay at INFO.
        if outcome.ok:
            logger.debug(
                "request {} completed ({} tokens)", claim.request_id, outcome.accounting.total_tokens
            )
        else:
            logger.info("request {} failed: {}", claim.request_id, outcome.error_code)

    async def _store_outcome(self, claim: ClaimRef, outcome: Outcome) -> StateChange | None:
        if outcome.ok and outcome.turn is not None and self._sessions is not None:
            return await self._complete_in_conversation(claim, outcome, outcome.turn)
        if outcome.ok:
            return await self._store.complete(
                claim,
                result=outcome.result,
                category=outcome.category,
                accounting=outcome.accounting,
                template_version=outcome.template_version,
            )
        return await self._store.fail(
            claim,
            code=outcome.error_code or "failed",
            message=outcome.error_message or "",
            accounting=outcome.accounting,
        )

    async def _complete_in_conversation(
        self, claim: ClaimRef, outcome: Outcome, turn: Turn
    ) -> StateChange | None:
        """processing → completed and the answer joining its conversation, in one transaction: a
        follow-up submitted as soon as this one reads completed already sees the turn."""
        assert self._sessions is not None
        async with self._sessions.begin() as session:
            changed = await requests_repo.complete(
                await session.connection(),
                claim,
                result=outcome.result,
                category=outcome.category,
                accounting=outcome.accounting,
                template_version=outcome.template_version,
            )
            if changed is not None:  # cancelled meanwhile: no answer, nothing joins
                await conversations.add_answer(
                    session, turn.conversation_id, claim.request_id, turn.question, turn.answer
                )
            return changed
