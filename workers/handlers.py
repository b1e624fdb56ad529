"""The request handler: one Kafka record → one unit of work on one request row."""

from __future__ import annotations

import asyncio

from aiokafka import ConsumerRecord
from loguru import logger
from pydantic import ValidationError

from service.config import Settings
from service.db.requests_repo import LLMAccounting
from service.db.worker_store import WorkerStore
from service.schemas.envelope import RequestEnvelope
from service.services.processing import Outcome, Processor
from workers.runner import PoisonMessage


class RequestHandler:
    """claim → process → complete/fail. Each database step is one conditional UPDATE that commits
    on its own (service/db/worker_store.py); no connection is held while the model thinks."""

    def __init__(self, settings: Settings, store: WorkerStore, processor: Processor) -> None:
        self._lease_seconds = settings.worker_lease_seconds
        self._store = store
        self._processor = processor

    async def __call__(self, record: ConsumerRecord) -> None:
        try:
            envelope = RequestEnvelope.from_bytes(record.value)
        except ValidationError as exc:
            raise PoisonMessage(f"not a valid request envelope: {exc.errors(include_url=False)[:3]}") from exc

        # The claim is the exactly-once gate: only one delivery ever moves a row out of `queued`.
        row = await self._store.claim(envelope.request_id, self._lease_seconds)
        if row is None:
            logger.debug(
                "request {} is not queued (duplicate delivery or cancelled); skipped", envelope.request_id
            )
            return

        try:
            outcome = await self._processor.process(row)
        except asyncio.CancelledError:
            # Shutdown mid-flight: hand the row back so the re-delivered record can claim it again.
            await asyncio.shield(self._release(envelope))
            raise
        except Exception as exc:
            logger.exception("processing request {} failed unexpectedly", envelope.request_id)
            outcome = Outcome(
                accounting=LLMAccounting(),
                error_code="internal_error",
                error_message=f"Processing failed unexpectedly ({type(exc).__name__}).",
            )
        await self._finish(envelope, outcome)

    async def _finish(self, envelope: RequestEnvelope, outcome: Outcome) -> None:
        if outcome.ok:
            await self._store.complete(
                envelope.request_id,
                result=outcome.result,
                category=outcome.category,
                accounting=outcome.accounting,
                template_version=outcome.template_version,
            )
        else:
            await self._store.fail(
                envelope.request_id,
                code=outcome.error_code or "failed",
                message=outcome.error_message or "",
                accounting=outcome.accounting,
            )
        # Success is the common case and is counted by the metrics endpoint: an INFO line (a
        # formatted, flushed write) per request is log volume, not information. Failures stay at INFO.
        if outcome.ok:
            logger.debug(
                "request {} completed ({} tokens)", envelope.request_id, outcome.accounting.total_tokens
            )
        else:
            logger.info("request {} failed: {}", envelope.request_id, outcome.error_code)

    async def _release(self, envelope: RequestEnvelope) -> None:
        await self._store.release(envelope.request_id)
