"""The batch lane: fair release per owner, interactive requests first, and a sweeper that leaves a
backlog alone but recovers lines the broker lost."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from service.db.batch_models import Lane
from service.db.models import AnalysisRequest, RequestStatus, utcnow
from service.db.unit_of_work import transaction
from service.messaging.kafka import RequestPublisher, ensure_topics
from service.usecases import batches as batch_service
from service.usecases.batch_lines import NATIVE_REQUESTS, check_items
from tests.conftest import fresh_postgres_database
from tests.support import make_settings, running_service
from tests.test_batches_native import lines, wait_batch
from workers.feeder import BatchFeeder
from workers.sweeper import Sweeper


@pytest.fixture(scope="module", name="postgres_url")
async def batches_database() -> AsyncIterator[str]:
    """This module's batches live in a database of their own: a worker's batch feeder releases the
    lines of every open batch it finds, which would reach the backends of other tests."""
    async with fresh_postgres_database() as url:
        yield url


async def _store(svc, settings, owner: str, count: int) -> uuid.UUID:  # type: ignore[no-untyped-def]
    parsed = check_items(lines(count), batch_service.checker(settings, NATIVE_REQUESTS))
    async with svc.sessions() as session:
        batch_id = await batch_service.store_batch(
            session,
            parsed,
            owner_id=owner,
            endpoint=NATIVE_REQUESTS,
            surface="native",
            completion_window="24h",
        )
        await session.commit()
    return batch_id


async def _lanes(svc, batch_id: uuid.UUID) -> dict[str, int]:  # type: ignore[no-untyped-def]
    async with svc.sessions() as session:
        rows = (
            await session.execute(
                select(AnalysisRequest.priority).where(AnalysisRequest.batch_id == batch_id)
            )
        ).all()
    counts: dict[str, int] = {}
    for (priority,) in rows:
        counts[priority] = counts.get(priority, 0) + 1
    return counts


async def test_feeder_releases_a_window_per_owner_so_a_small_batch_is_not_starved(
    postgres_url: str, kafka_bootstrap: str
) -> None:
    settings = make_settings(postgres_url, kafka_bootstrap, batch_owner_window=10)
    owner_a, owner_b = f"a-{uuid.uuid4().hex[:6]}", f"b-{uuid.uuid4().hex[:6]}"
    async with running_service(settings, with_worker=False) as svc:
        big = await _store(svc, settings, owner_a, 50)
        small = await _store(svc, settings, owner_b, 5)
        publisher = RequestPublisher(settings)
        await publisher.start()
        try:
            feeder = BatchFeeder(settings, svc.sessions, publisher)
            await feeder.release_once()
            assert await _lanes(svc, big) == {Lane.BATCH: 10, Lane.BATCH_HELD: 40}
            assert await _lanes(svc, small) == {Lane.BATCH: 5}  # all of it, at once
            await feeder.release_once()
            assert (await _lanes(svc, big))[Lane.BATCH] == 10  # the window is full: nothing more
            async with svc.sessions() as session:  # five of the big batch's lines finish
                in_lane = select(AnalysisRequest.id).where(
                    AnalysisRequest.batch_id == big, AnalysisRequest.priority == Lane.BATCH
                )
                done = (await session.execute(in_lane.limit(5))).scalars().all()
                await session.execute(
                    update(AnalysisRequest)
                    .where(AnalysisRequest.id.in_(done))
                    .values(status=RequestStatus.COMPLETED)
                )
                await session.commit()
            # The small batch's lines are still queued in the lane: the big one is not topped up
            # yet, so its next lines cannot overtake them in another partition.
            await feeder.release_once()
            assert await _lanes(svc, big) == {Lane.BATCH: 10, Lane.BATCH_HELD: 40}
            async with svc.sessions() as session:  # the small batch's lines start
                await session.execute(
                    update(AnalysisRequest)
                    .where(AnalysisRequest.batch_id == small)
                    .values(status=RequestStatus.PROCESSING)
                )
                await session.commit()
            await feeder.release_once()
            assert await _lanes(svc, big) == {Lane.BATCH: 15, Lane.BATCH_HELD: 35}
        finally:
            await publisher.close()


async def test_sweeper_leaves_a_backlog_alone_and_recovers_lost_lines(
    postgres_url: str, kafka_bootstrap: str
) -> None:
    settings = make_settings(postgres_url, kafka_bootstrap, batch_owner_window=4, requeue_after_seconds=1)
    await ensure_topics(settings)
    async with running_service(settings, with_worker=False) as svc:
        batch_id = await _store(svc, settings, f"o-{uuid.uuid4().hex[:6]}", 8)
        publisher = RequestPublisher(settings)
        await publisher.start()
        try:
            await BatchFeeder(settings, svc.sessions, publisher).release_once()  # 4 published, 4 held
            past = utcnow() - timedelta(minutes=5)
            async with svc.sessions() as session:
                await session.execute(
                    update(AnalysisRequest)
                    .where(AnalysisRequest.batch_id == batch_id)
                    .values(updated_at=past)
                )
                await session.commit()

            async def touched() -> dict[str, int]:
                columns = select(AnalysisRequest.priority, AnalysisRequest.updated_at)
                async with svc.sessions() as session:
                    rows = (await session.execute(columns.where(AnalysisRequest.batch_id == batch_id))).all()
                counts: dict[str, int] = {}
                for priority, updated_at in rows:
                    if updated_at > past:
                        counts[priority] = counts.get(priority, 0) + 1
                return counts

            # Published and not consumed (no worker): waiting in the lane, not lost.
            await Sweeper(settings, svc.sessions, publisher).sweep_once()
            assert await touched() == {}

            # The broker loses them: a fresh batch topic, as after an in-memory broker restart.
            lost_settings = settings.model_copy(
                update={"kafka_topic_requests_batch": f"{settings.kafka_topic_requests_batch}.new"}
            )
            await ensure_topics(lost_settings)
            await Sweeper(lost_settings, svc.sessions, publisher).sweep_once()
            assert await touched() == {Lane.BATCH: 4}  # re-published; the held lines stay with the feeder
        finally:
            await publisher.close()


async def test_interactive_requests_are_served_while_a_batch_fills_its_lane(
    postgres_url: str, kafka_bootstrap: str
) -> None:
    settings = make_settings(postgres_url, kafka_bootstrap, dryrun_latency_ms=200, worker_batch_concurrency=2)
    async with running_service(settings) as svc:
        batch_id = (await svc.client.post("/api/v1/batches", json=lines(30))).json()["id"]
        await svc.client.get(f"/api/v1/batches/{batch_id}")
        request_id = (
            await svc.submit({"kind": "chat", "messages": [{"role": "user", "content": "now"}]})
        ).json()["id"]
        final = await svc.wait_final(request_id)
        assert final["status"] == "completed"
        batch = (await svc.client.get(f"/api/v1/batches/{batch_id}")).json()
        # The interactive request did not wait for the batch: most of the batch is still to do.
        assert batch["counts"]["completed"] < 20, batch["counts"]
        assert (await wait_batch(svc, batch_id, ("completed",)))["counts"]["completed"] == 30


async def test_feeder_never_releases_lines_of_a_cancelled_batch(
    postgres_url: str, kafka_bootstrap: str
) -> None:
    settings = make_settings(postgres_url, kafka_bootstrap, batch_owner_window=10)
    owner = f"c-{uuid.uuid4().hex[:6]}"
    async with running_service(settings, with_worker=False) as svc:
        batch_id = await _store(svc, settings, owner, 30)
        publisher = RequestPublisher(settings)
        await publisher.start()
        try:
            feeder = BatchFeeder(settings, svc.sessions, publisher)
            assert await feeder.release_once() >= 10
            async with transaction(svc.sessions) as session:  # the route's unit of work
                await batch_service.cancel(session, publisher, batch_id, owner)
            # The cancelled lines are no longer waiting for the feeder: nothing of this batch is released.
            await feeder.release_once()
            assert await _lanes(svc, batch_id) == {Lane.BATCH: 30}
            async with svc.sessions() as session:
                statuses = (
                    await session.execute(
                        select(AnalysisRequest.status).where(AnalysisRequest.batch_id == batch_id)
                    )
                ).scalars()
                assert set(statuses) == {RequestStatus.CANCELLED}
        finally:
            await publisher.close()
