"""Worker guarantees against the real broker: concurrency, exactly-once effect, dead letters, shutdown."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

from aiokafka import AIOKafkaConsumer, TopicPartition
from sqlalchemy import func, select, update

from service.callers.model import ANONYMOUS_OWNER
from service.db import requests_repo as repo
from service.db.models import AnalysisRequest, RequestStatus, utcnow
from service.messaging.embedded import EmbeddedBroker
from service.messaging.lag import drained_partitions
from service.schemas.envelope import RequestEnvelope
from tests.support import SEED_EXAMPLE, make_settings, produce_raw, read_topic, running_service

SPREADSHEET = {"kind": "spreadsheet", **SEED_EXAMPLE}


async def test_hundreds_in_flight_at_once_with_a_slow_backend(
    postgres_url: str, kafka_bootstrap: str
) -> None:
    total = 300
    settings = make_settings(
        postgres_url,
        kafka_bootstrap,
        dryrun_latency_ms=1000,
        worker_concurrency=total,
        kafka_topic_partitions=6,
    )
    async with running_service(settings, with_worker=False) as svc:
        ids = [r.json()["id"] for r in await asyncio.gather(*(svc.submit(SPREADSHEET) for _ in range(total)))]
        svc.start_worker()  # a full backlog: the worker alone decides how many run at once
        wanted = [uuid.UUID(i) for i in ids]
        for _ in range(600):  # one cheap query per 0.2 s, so polling does not starve the worker
            async with svc.sessions() as session:
                done = await session.scalar(
                    select(func.count()).where(
                        AnalysisRequest.id.in_(wanted), AnalysisRequest.status == "completed"
                    )
                )
            if done == total:
                break
            await asyncio.sleep(0.2)
        assert done == total
        assert len(svc.backend.calls) == total
        # Serial handling would never have more than one call open; the runner overlaps them.
        assert svc.backend.peak_in_flight >= total // 3, svc.backend.peak_in_flight


async def test_redelivered_message_does_not_call_the_llm_again(
    postgres_url: str, kafka_bootstrap: str
) -> None:
    settings = make_settings(postgres_url, kafka_bootstrap)
    async with running_service(settings) as svc:
        request_id = (await svc.submit(SPREADSHEET)).json()["id"]
        first = await svc.wait_final(request_id)
        assert len(svc.backend.calls) == 1
        # Deliver the same pointer twice more, as a broker would after a lost commit.
        envelope = RequestEnvelope(
            request_id=uuid.UUID(request_id),
            kind="spreadsheet",
            trace_id="t",
            created_at=utcnow(),
            published_at=utcnow(),
            attempt=2,
        )
        for _ in range(2):
            await produce_raw(
                kafka_bootstrap, settings.kafka_topic_requests, envelope.to_bytes(), envelope.key
            )
        marker = (await svc.submit(SPREADSHEET)).json()["id"]  # processed after the duplicates per partition
        await svc.wait_final(marker)
        await asyncio.sleep(0.5)
        assert len(svc.backend.calls) == 2  # the original and the marker, nothing for the duplicates
        again = (await svc.client.get(f"/api/v1/requests/{request_id}")).json()
        assert again["status"] == "completed" and again["attempts"] == 1
        assert again["finished_at"] == first["finished_at"]


async def test_poison_message_goes_to_dead_letter_and_work_goes_on(
    postgres_url: str, kafka_bootstrap: str
) -> None:
    settings = make_settings(postgres_url, kafka_bootstrap, kafka_topic_partitions=1)
    async with running_service(settings) as svc:
        await produce_raw(kafka_bootstrap, settings.kafka_topic_requests, b"\x00not json at all", b"k")
        await produce_raw(kafka_bootstrap, settings.kafka_topic_requests, b'{"schema_version": 1}', b"k")
        request_id = (await svc.submit(SPREADSHEET)).json()["id"]
        assert (await svc.wait_final(request_id))["status"] == "completed"

        dead = await read_topic(kafka_bootstrap, settings.kafka_topic_dead_letter, expected=2)
        assert sorted(record.value for record in dead) == sorted(
            [b"\x00not json at all", b'{"schema_version": 1}']
        )
        headers = dict(dead[0].headers)
        assert headers["dlq-reason"] == b"poison"
        assert headers["dlq-source"].startswith(settings.kafka_topic_requests.encode())


async def test_failed_produce_leaves_no_queued_row(postgres_url: str) -> None:
    broker = EmbeddedBroker()
    broker.start()
    settings = make_settings(postgres_url, broker.bootstrap_servers, kafka_request_timeout_ms=1500)
    try:
        async with running_service(settings, with_worker=False) as svc:
            assert (await svc.submit(SPREADSHEET)).status_code == 202
            broker.stop()
            response = await svc.submit({**SPREADSHEET, "idempotency_key": "retry-me"})
            assert response.status_code == 503, response.text
            assert response.json()["error"]["code"] == "queue_unavailable"
            assert response.headers["retry-after"]
            async with svc.sessions() as session:
                failed = (
                    (
                        await session.execute(
                            select(AnalysisRequest).where(AnalysisRequest.error_code == "broker_unavailable")
                        )
                    )
                    .scalars()
                    .all()
                )
                queued = await session.scalar(
                    select(func.count())
                    .select_from(AnalysisRequest)
                    .where(
                        AnalysisRequest.status == "queued", AnalysisRequest.created_at > failed[0].created_at
                    )
                )
            assert len(failed) == 1 and failed[0].status == "failed" and failed[0].finished_at
            assert queued == 0
            # The 503 asks for a retry: the key is free again, so the retry is not the dead request.
            assert failed[0].idempotency_key is None
    finally:
        broker.stop()


async def test_sweeper_republishes_lost_and_abandoned_requests(
    own_postgres_url: str, kafka_bootstrap: str
) -> None:
    # A database of its own: the sweeper looks at every stale row, and the shared one holds other
    # tests' (thousands of batch lines, say) that would crowd ours out of a sweep.
    settings = make_settings(
        own_postgres_url, kafka_bootstrap, requeue_after_seconds=1, worker_max_attempts=3
    )
    async with running_service(settings) as svc:
        # The worker's own sweeper runs once at start-up: let that pass before making lost rows.
        await svc.wait_final((await svc.submit(SPREADSHEET)).json()["id"])
        lost_id, abandoned_id, exhausted_id = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
        past = utcnow() - timedelta(minutes=5)
        async with svc.sessions() as session:
            for request_id in (lost_id, abandoned_id, exhausted_id):
                await repo.insert_request(
                    session,
                    # The owner the test client (anonymous) reads as.
                    {
                        "id": request_id,
                        "kind": "spreadsheet",
                        "query_text": "sum",
                        "input_data": [[1, 2]],
                        "owner_id": ANONYMOUS_OWNER,
                    },
                )
            # lost: queued, never published; abandoned: its worker died mid-processing.
            await session.execute(
                update(AnalysisRequest).where(AnalysisRequest.id == lost_id).values(updated_at=past)
            )
            for request_id, attempts in ((abandoned_id, 1), (exhausted_id, 3)):
                await session.execute(
                    update(AnalysisRequest)
                    .where(AnalysisRequest.id == request_id)
                    .values(
                        status=RequestStatus.PROCESSING,
                        attempts=attempts,
                        lease_expires_at=past,
                        updated_at=past,
                    )
                )
            await session.commit()

        # The worker's own first sweep may have re-published other tests' stale rows (the database
        # is shared): a queued row counts as lost only once its partition has no lag, so let the
        # worker work that backlog off first.
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 60
        while True:
            lag = await drained_partitions(settings, settings.kafka_topic_requests)
            if (lag is not None and len(lag[1]) == lag[0]) or loop.time() > deadline:
                break
            await asyncio.sleep(0.2)

        assert await svc.sweep_once() == 2
        assert (await svc.wait_final(str(lost_id)))["status"] == "completed"
        abandoned = await svc.wait_final(str(abandoned_id))
        assert abandoned["status"] == "completed" and abandoned["attempts"] == 2
        exhausted = await svc.wait_final(str(exhausted_id))
        assert exhausted["status"] == "failed" and exhausted["error"]["code"] == "worker_lost"


async def test_expired_requests_end_as_expired(postgres_url: str, kafka_bootstrap: str) -> None:
    settings = make_settings(postgres_url, kafka_bootstrap, request_ttl_seconds=60)
    async with running_service(settings, with_worker=False) as svc:
        request_id = (await svc.submit(SPREADSHEET)).json()["id"]
        await svc.backdate(request_id, created_at=utcnow() - timedelta(minutes=2))
        await svc.sweep_once()
        body = (await svc.client.get(f"/api/v1/requests/{request_id}")).json()
        assert body["status"] == "expired" and body["error"]["code"] == "expired"


async def test_graceful_stop_finishes_in_flight_work_and_commits(
    postgres_url: str, kafka_bootstrap: str
) -> None:
    settings = make_settings(
        postgres_url,
        kafka_bootstrap,
        dryrun_latency_ms=700,
        worker_shutdown_grace_seconds=10,
        kafka_topic_partitions=2,
    )
    async with running_service(settings) as svc:
        ids = [(await svc.submit(SPREADSHEET)).json()["id"] for _ in range(10)]
        await asyncio.wait_for(svc.backend.call_started.wait(), 30)
        await svc.stop_worker()  # what SIGTERM does
        async with svc.sessions() as session:
            statuses = (
                (
                    await session.execute(
                        select(AnalysisRequest.status).where(
                            AnalysisRequest.id.in_([uuid.UUID(i) for i in ids])
                        )
                    )
                )
                .scalars()
                .all()
            )
        # In-flight requests finished; the rest are still queued for the next worker; none is stuck.
        assert "processing" not in statuses
        assert statuses.count("completed") >= 1

        consumer = AIOKafkaConsumer(
            bootstrap_servers=kafka_bootstrap,
            group_id=settings.kafka_consumer_group,
            enable_auto_commit=False,
        )
        await consumer.start()
        try:
            partitions = [TopicPartition(settings.kafka_topic_requests, p) for p in range(2)]
            committed = [await consumer.committed(tp) or 0 for tp in partitions]
        finally:
            await consumer.stop()
        assert sum(committed) == statuses.count("completed")


async def test_shutdown_cancellation_hands_the_claim_back(postgres_url: str, kafka_bootstrap: str) -> None:
    settings = make_settings(
        postgres_url, kafka_bootstrap, dryrun_latency_ms=30_000, worker_shutdown_grace_seconds=0.2
    )
    async with running_service(settings) as svc:
        request_id = (await svc.submit(SPREADSHEET)).json()["id"]
        await asyncio.wait_for(svc.backend.call_started.wait(), 30)
        await svc.stop_worker()
        body = (await svc.client.get(f"/api/v1/requests/{request_id}")).json()
        assert body["status"] == "queued"  # ready for redelivery, not stuck in processing


async def test_processing_longer_than_the_lease_allows_fails_before_the_lease_runs_out(
    postgres_url: str, kafka_bootstrap: str
) -> None:
    # Past its lease the sweeper would hand the row to another worker (a second LLM call), so the
    # handler gives up first and the request ends failed, with a clear reason.
    settings = make_settings(postgres_url, kafka_bootstrap, worker_lease_seconds=5, dryrun_latency_ms=4000)
    async with running_service(settings) as svc:
        request_id = (await svc.submit(SPREADSHEET)).json()["id"]
        final = await svc.wait_final(request_id)
        assert final["status"] == "failed"
        assert final["error"]["code"] == "processing_timeout"
