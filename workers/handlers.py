"""The request handler: one Kafka record → one unit of work on one request row."""

from __future__ import annotations

import asyncio

from loguru import logger

from service import monitoring
from service.config import Settings
from service.db.requests_repo import ClaimRef, LLMAccounting, StateChange
from service.db.worker_store import WorkerStore
from service.messaging.kafka import RequestPublisher
from service.schemas.envelope import RequestEnvelope
from service.schemas.events import StatusEvent
from service.usecases.processing import Outcome, Processor

_FINISH_ATTEMPTS = 5


class RequestHandler:
    """claim → process → complete/fail. Each database step is one conditional UPDATE that commits
    on its own (service/db/worker_store.py); no connection is held while the model thinks."""

    def __init__(
        self, settings: Settings, store: WorkerStore, processor: Processor, events: RequestPublisher
    ) -> None:
        self._lease_seconds = settings.worker_lease_seconds
        # Leave time to store the outcome before the lease runs out.
        self._processing_budget = max(1.0, settings.worker_lease_seconds * 0.9 - 5)
        self._store = store
        self._processor = processor
        self._events = events

    async def __call__(self, envelope: RequestEnvelope) -> None:
        # Decoded and validated by the runner: a record that is no envelope never gets here.
        # The claim is the exactly-once gate: only one delivery ever moves a row out of `queued`.
        row = await self._store.claim(envelope.request_id, self._lease_seconds)
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
        await self._events.publish_event(StatusEvent.of(changed))
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
